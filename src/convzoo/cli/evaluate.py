"""convzoo evaluate RUN_DIR: the metrics of a trained run's checkpoint on a split, from the run folder alone.

Classification runs report loss and accuracy, detection runs COCO AP (bbox, segm, keypoints as the model has them)
and the VOC mAP.

examples:
  convzoo evaluate runs/spec-digits-20250101-120000                      best checkpoint, test split
  convzoo evaluate RUN_DIR --checkpoint last --split dev --data mnist:/elsewhere/mnist
  convzoo evaluate RUN_DIR --out report/          also the confusion matrix PNG or the detections JSON
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a trained run (any task) on its test or dev split",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluate_arguments(p)
    p.set_defaults(func=run)


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a folder written by convzoo train")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"),
                   help="best (by the task's dev score) or last (default: best)")
    p.add_argument("--split", default="test", choices=("test", "dev", "train"), help="default: test")
    p.add_argument("--data", help="evaluate on this data set instead of the run's, with the same classes "
                   "(default: the run's)")
    p.add_argument("--out", metavar="DIR", help="also write the task's artifacts of the split here "
                   "(confusion_SPLIT.png, detections_SPLIT.json) (default: none)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")


def run(args: argparse.Namespace) -> dict:
    """Print and return ``{split}:{metric}`` of the checkpoint (``test:accuracy``, ``test:bbox:AP``, ...)."""
    import torch

    from convzoo.train.run import load_run

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config, task, info, model = load_run(args.run_dir, args.checkpoint, device)
    print(f"convzoo evaluate: loading --data {args.data or config.data} ...", file=sys.stderr, flush=True)
    data = task.load_data(args.data)
    dataset = getattr(data, args.split)
    if dataset is None:
        raise ValueError(f"--split {args.split}: the data {args.data or config.data} has no {args.split} split; "
                         "use --split dev")
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    metrics = task.evaluate(model, dataset, device, out=out, split=args.split, info=info)
    count = int(metrics.pop("count", len(dataset)))
    metrics = {f"{args.split}:{k}": v for k, v in metrics.items()}
    print(" ".join(f"{k}={v:.4f}" for k, v in task.headline(metrics).items())
          + f" ({count} samples, {args.checkpoint} checkpoint)")
    return {**metrics, "count": count}
