"""``convzoo train``: train a classifier; with no arguments, a small CNN on scikit-learn's bundled digits.

    convzoo train                                           # embedded default: digits, < 2 minutes on a laptop CPU
    convzoo train --model resnet20 --data cifar10:DIR --epochs 30 --optimizer sgd --lr 0.1 --weight-decay 5e-4
    convzoo train --resume runs/resnet20-cifar10-20250101-120000
    torchrun --nproc-per-node 2 -m convzoo train --data mnist:DIR     # DistributedDataParallel
"""

from __future__ import annotations

import argparse
import dataclasses

from convzoo.train.config import DEFAULT_MODEL, TrainConfig
from convzoo.train.fit import fit

# Options that may change when resuming a run; every other option comes from the run's config.json.
RESUMABLE = ("epochs", "device", "workers", "threads", "progress")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,0.75, got {text!r}") from None


def register(subparsers) -> None:
    defaults = TrainConfig()
    p = subparsers.add_parser("train", help="train a classifier (default: a small CNN on the bundled digits)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              argument_default=argparse.SUPPRESS)
    a = p.add_argument
    a("--model", help=f"a registered model (`convzoo models`) or spec:STRING (default: {DEFAULT_MODEL})")
    a("--data", help="digits | mnist:DIR | fashion-mnist[:DIR] | cifar10:DIR | imagefolder:DIR | mnist1d:FILE "
      "(default: digits)")
    a("--epochs", type=int, help=f"default: {defaults.epochs}")
    a("--batch-size", type=int, help=f"the global batch over all processes (default: {defaults.batch_size})")
    a("--lr", type=float, help="peak learning rate (default: sgd 0.1, rmsprop 0.045, adam/adamw 1e-3)")
    a("--optimizer", choices=("sgd", "rmsprop", "adam", "adamw"), help=f"default: {defaults.optimizer}")
    a("--momentum", type=float, help=f"sgd and rmsprop momentum (default: {defaults.momentum})")
    a("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum for sgd (default: on)")
    a("--schedule", choices=("constant", "step", "cosine", "one-cycle"), help=f"default: {defaults.schedule}")
    a("--warmup", type=float, help="epochs of linear learning-rate warmup (default: 0)")
    a("--milestones", type=_floats, help="step schedule: fractions of training where lr *= gamma (default: 0.5,0.75)")
    a("--gamma", type=float, help=f"step schedule factor (default: {defaults.gamma})")
    a("--weight-decay", type=float, help="L2 / decoupled decay, not on BatchNorm parameters and biases (default: 0)")
    a("--label-smoothing", type=float, help="epsilon of label smoothing (Inception-v3 uses 0.1; default: 0)")
    a("--aux-weight", type=float, help="weight of auxiliary-classifier losses (default: the model's, e.g. 0.3)")
    a("--grad-clip", type=float, help="clip the global gradient norm to this value (default: off)")
    a("--seed", type=int, help=f"default: {defaults.seed}")
    a("--deterministic", action="store_true", help="deterministic kernels only (bit-exact resume on the CPU)")
    a("--out", help="run folder (default: runs/<model>-<data>-<time>)")
    a("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint; only "
      f"{', '.join('--' + k for k in RESUMABLE)} may change")
    a("--pretrained", metavar="FILE", help="initial weights: a convzoo, torchvision or timm checkpoint file")
    a("--pretrained-source", choices=("auto", "convzoo", "torchvision", "timm"), help="format of --pretrained")
    a("--freeze-backbone", action="store_true", help="train only the classifier; backbone BatchNorm in eval mode")
    a("--freeze-bn", action="store_true", help="replace every BatchNorm by a frozen one (fixed affine transform)")
    a("--channels-last", action="store_true", help="NHWC memory layout for 2D models")
    a("--compile", action="store_true", help="torch.compile the model")
    a("--amp", choices=("bf16", "fp16"), help="mixed precision (CUDA only)")
    a("--device", help="cpu | cuda | cuda:N (default: cuda if available)")
    a("--workers", type=int, help="data-loading processes (default: 0, in the main process)")
    a("--threads", type=int, help="CPU threads of each process (default: 1 for digits, else PyTorch's)")
    a("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA only)")
    a("--skip-bad-images", action="store_true", help="skip and count image files that cannot be decoded")
    a("--augment", action=argparse.BooleanOptionalAction, help="data augmentation (default: the data set's)")
    a("--image-size", type=int, help="resize images to this side (default: the data set's own, 224 for photos)")
    a("--progress", action=argparse.BooleanOptionalAction, help="progress bar (default: when on a terminal)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the options given on the command line (a resumed run: its saved one, updated)."""
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "debug")}
    if "resume" in given:
        config = TrainConfig.load(given["resume"])
        fixed = sorted(set(given) - set(RESUMABLE) - {"resume"})
        if fixed:
            raise ValueError(f"--{', --'.join(k.replace('_', '-') for k in fixed)} cannot change when resuming; "
                             f"only --{', --'.join(k.replace('_', '-') for k in RESUMABLE)} can")
        return dataclasses.replace(config, **given)
    return TrainConfig(**given)


def run(args: argparse.Namespace) -> dict:
    """Train; return the final metrics (``loss``, ``accuracy``, ``dev:*``, ``test:*``, ``run_dir``, ...)."""
    return fit(config_from_args(args))
