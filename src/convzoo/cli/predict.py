"""convzoo predict RUN_DIR FILE...: a trained run's predictions for image files, from the run folder alone.

A classifier prints the most probable classes of each image; a detector prints what it found in each image,
draws the detections into --out and writes COCO results JSON there (image ids from --annotations, else the file
stem when it is a number, as in COCO and VOC names). Each image is decoded and prepared as the run's data was.

examples:
  convzoo predict runs/spec-digits-20250101-120000 three.png seven.png --top 3
  convzoo predict runs/mask_rcnn-shapes-20250101-120000 a.png b.png --out predictions/ --draw-thresh 0.3
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predict image files with a trained run (any task)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_predict_arguments(p)
    p.set_defaults(func=run)


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a folder written by convzoo train")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--top", type=int, default=1, help="classification: classes printed per image (default: 1)")
    p.add_argument("--out", default="predictions", help="detection: folder for the drawn images and "
                   "detections.json (default: predictions)")
    p.add_argument("--draw-thresh", type=float, default=0.5,
                   help="detection: draw and count detections scoring at least this (default: 0.5)")
    p.add_argument("--annotations", metavar="COCO.json",
                   help="detection: take each image's id from this COCO file, by file name (default: the file stem "
                   "when it is a number, else the position)")
    p.add_argument("--fast", action="store_true",
                   help="predict with convzoo.optimize(model): BatchNorm folded into the convolutions, channels_last "
                   "and, for a classifier on the CPU, a frozen TorchScript graph (default: the model as trained)")


def run(args: argparse.Namespace) -> dict:
    """Print one line per image; return the task's predictions."""
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if not 0.0 <= args.draw_thresh <= 1.0:
        raise ValueError(f"--draw-thresh must be in [0, 1], got {args.draw_thresh}")
    for path in args.images:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such image file {path}")
    import torch

    from convzoo.train.run import load_run

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _, task, info, model = load_run(args.run_dir, args.checkpoint, device)
    if getattr(args, "fast", False):
        from convzoo.export import is_detector, optimize

        example = None  # a detector, or a GPU: folded and channels_last only
        if device.type == "cpu" and not is_detector(model):
            example = torch.rand(1, *info["input_size"])
        model = optimize(model, example)
    return task.predict_files(model, info, args.images, device, out=Path(args.out), top=args.top,
                              draw_thresh=args.draw_thresh, annotations=args.annotations)
