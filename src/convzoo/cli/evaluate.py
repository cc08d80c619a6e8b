"""convzoo evaluate RUN_DIR: the metrics of a trained run's checkpoint on a split, from the run folder alone.

Classification runs report loss and accuracy, detection runs COCO AP (bbox, segm, keypoints as the model has them)
and the VOC mAP, segmentation runs mIoU and pixel accuracy, then the IoU of each class.

examples:
  convzoo evaluate runs/spec-digits-20250101-120000                      best checkpoint, test split
  convzoo evaluate RUN_DIR --checkpoint last --split dev --data mnist:/elsewhere/mnist
  convzoo evaluate RUN_DIR --out report/          also the confusion matrix PNG or the detections JSON
  convzoo evaluate --model faster_rcnn_r50_fpn --pretrained fasterrcnn_resnet50_fpn_coco.pth \
      --pretrained-source torchvision --label-ids category --data coco:instances_val2017.json:val2017

Without a run folder, --model and --pretrained name what to evaluate (a checkpoint made elsewhere).
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
    p.add_argument("run_dir", nargs="?", help="a folder written by convzoo train (default: none; then --model and "
                   "--pretrained)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"),
                   help="best (by the task's dev score) or last (default: best)")
    p.add_argument("--split", choices=("test", "dev", "train"), help="default: test, or dev where the data has none")
    p.add_argument("--model", help="without a run folder: the registered model (default: none)")
    p.add_argument("--pretrained", metavar="FILE", help="without a run folder: its weights (default: none)")
    p.add_argument("--pretrained-source", default="auto", choices=("auto", "convzoo", "torchvision", "timm"),
                   help="naming of --pretrained (default: auto)")
    p.add_argument("--label-ids", default="contiguous", choices=("contiguous", "category"),
                   help="detectors without a run folder: labels are the data's categories in order or their ids "
                   "(torchvision's COCO checkpoints) (default: contiguous)")
    p.add_argument("--val-size", type=int, default=0, help="detection without a run folder: the first N images "
                   "of coco/voc data, 0 for all (default: 0)")
    p.add_argument("--min-size", type=int, help="detection without a run folder: shorter image side after resizing "
                   "(default: the model's)")
    p.add_argument("--max-size", type=int, help="detection without a run folder: longest image side (default: the "
                   "model's)")
    p.add_argument("--data", help="evaluate on this data set instead of the run's, with the same classes "
                   "(default: the run's)")
    p.add_argument("--out", metavar="DIR", help="also write the task's artifacts of the split here "
                   "(confusion_SPLIT.png, detections_SPLIT.json, segmentation_SPLIT.json) (default: none)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")


def run(args: argparse.Namespace) -> dict:
    """Print and return ``{split}:{metric}`` of the checkpoint (``test:accuracy``, ``test:bbox:AP``, ...)."""
    import torch

    from convzoo.train.run import load_run

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.run_dir:
        config, task, info, model = load_run(args.run_dir, args.checkpoint, device)
        print(f"convzoo evaluate: loading --data {args.data or config.data} ...", file=sys.stderr, flush=True)
        data = task.load_data(args.data)
    else:
        config, task, data = _without_run(args)
        info = data.info
        model = task.build_model(info).to(device).eval()
    split = args.split or ("test" if data.test is not None else "dev")
    dataset = getattr(data, split)
    if dataset is None:
        raise ValueError(f"--split {split}: the data {args.data or config.data} has no {split} split; use --split dev")
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    metrics = task.evaluate(model, dataset, device, out=out, split=split, info=info)
    count = int(metrics.pop("count", len(dataset)))
    metrics = {f"{split}:{k}": v for k, v in metrics.items()}
    source = f"{args.checkpoint} checkpoint" if args.run_dir else str(args.pretrained)
    print(" ".join(f"{k}={v:.4f}" for k, v in task.headline(metrics).items()) + f" ({count} samples, {source})")
    if hasattr(task, "report"):  # a task's table beyond the line (segmentation: the IoU of each class)
        print(task.report(metrics, info))
    return {**metrics, "count": count}


def _without_run(args: argparse.Namespace):
    """The config, task and data of ``--model``/``--pretrained``/``--data`` (no run folder)."""
    from convzoo.options import DetectionOptions
    from convzoo.tasks import model_task
    from convzoo.train.config import TrainConfig
    from convzoo.train.run import task_of

    if not args.model or not args.pretrained or not args.data:
        raise ValueError("without a run folder, --model, --pretrained and --data name what to evaluate")
    detection = DetectionOptions(label_ids=args.label_ids, train_size=args.val_size, val_size=args.val_size,
                                 min_size=args.min_size, max_size=args.max_size, hflip=0.0) \
        if model_task(args.model) == "detection" else DetectionOptions()
    config = TrainConfig(model=args.model, data=args.data, pretrained=args.pretrained,
                         pretrained_source=args.pretrained_source, detection=detection)
    task = task_of(config)
    print(f"convzoo evaluate: loading --data {args.data} ...", file=sys.stderr, flush=True)
    return config, task, task.load_data()
