"""``convzoo evaluate RUN_DIR``: loss, accuracy and confusion matrix of a trained run's checkpoint on a split.

    convzoo evaluate runs/spec-digits-20250101-120000                 # best checkpoint, test split
    convzoo evaluate RUN_DIR --checkpoint last --split dev --data mnist:/elsewhere/mnist
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from convzoo.data import DataSplits, load_data
from convzoo.train.build import build_model, make_loader
from convzoo.train.checkpoint import load_checkpoint
from convzoo.train.config import TrainConfig
from convzoo.train.engine import StepOptions, evaluate, summarize
from convzoo.train.logging import plot_confusion_matrix


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a trained run on its test (or dev) split",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a folder written by `convzoo train`")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best (by dev accuracy)")
    p.add_argument("--split", default="test", choices=("test", "dev", "train"))
    p.add_argument("--data", help="evaluate on this data set instead of the run's (same classes)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--confusion", metavar="PNG", help="also write the confusion matrix to this PNG")
    p.set_defaults(func=run)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu",
             data: str | None = None) -> tuple[TrainConfig, torch.nn.Module, DataSplits]:
    """The config, the model with the checkpoint's weights (eval mode, on ``device``) and the data of a run."""
    config = TrainConfig.load(run_dir)
    splits = load_data(data or config.data, augment=False, image_size=config.image_size)
    # The architecture comes from the config; the weights from the checkpoint (no need for --pretrained's file).
    model = build_model(dataclasses.replace(config, pretrained=None), splits.num_classes, splits.input_size)
    load_checkpoint(run_dir, checkpoint, model)
    return config, model.to(device).eval(), splits


def run(args: argparse.Namespace) -> dict:
    """Print and return ``{split}:loss`` and ``{split}:accuracy`` of the checkpoint."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config, model, splits = load_run(args.run_dir, args.checkpoint, device, args.data)
    dataset = getattr(splits, args.split)
    loader = make_loader(dataset, args.batch_size, list(range(len(dataset))))
    options = StepOptions(device, channels_last=config.channels_last)
    sums, matrix = evaluate(model, loader, options, splits.num_classes)
    metrics = summarize(sums, f"{args.split}:")
    print(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()) + f" ({int(sums['count'])} images, {args.checkpoint})")
    if args.confusion:
        plot_confusion_matrix(matrix, splits.class_names, args.confusion, title=args.split)
    return {**metrics, "count": sums["count"]}
