"""convzoo predict RUN_DIR FILE...: a trained run's predictions for image files (or sentences), from the run folder
alone.

A classifier prints the most probable classes of each image (of each .npy grid of a voxels run; of each clip, an
.npy of T,H,W or C,T,H,W or a folder of frame images, of a moving-mnist run); a text classifier those of each
sentence: every non-blank line of each text FILE (printed as FILE:LINE) and each --sentence; a detector prints what
it found in each image, draws the detections into --out and writes COCO results JSON there (image ids from
--annotations, else the file stem when it is a number, as in COCO and VOC names); a segmenter writes each image's
label map (a VOC palette PNG) and a colour overlay into --out. Each image is decoded and prepared as the run's data
was.

examples:
  convzoo predict runs/spec-digits-20250101-120000 three.png seven.png --top 3
  convzoo predict runs/kim_cnn-text-20250101-120000 reviews.txt --sentence "a gripping , funny film"
  convzoo predict runs/mask_rcnn-shapes-20250101-120000 a.png b.png --out predictions/ --draw-thresh 0.3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predict image files (or sentences) with a trained run (any task)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_predict_arguments(p)
    p.set_defaults(func=run)


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a folder written by convzoo train")
    p.add_argument("inputs", nargs="*", metavar="FILE", help="image files (PNG, JPEG, ...); .npy volumes; .npy "
                   "clips or folders of frames; for a text classifier, text files with one sentence per line")
    p.add_argument("--sentence", action="append", default=[], metavar="TEXT",
                   help="text classifier: a sentence to classify, repeatable (default: none)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    p.add_argument("--top", type=int, default=1, help="classification: classes printed per image (default: 1)")
    p.add_argument("--out", default="predictions", help="detection and segmentation: folder for the drawn images, "
                   "the masks and detections.json (default: predictions)")
    p.add_argument("--draw-thresh", type=float, default=0.5,
                   help="detection: draw and count detections scoring at least this (default: 0.5)")
    p.add_argument("--annotations", metavar="COCO.json",
                   help="detection: take each image's id from this COCO file, by file name (default: the file stem "
                   "when it is a number, else the position)")
    p.add_argument("--fast", nargs="?", const="torch", choices=("torch", "onnxruntime", "auto"),
                   help="predict with convzoo.optimize(model): BatchNorm folded into the convolutions, channels_last "
                   "and, for a classifier on the CPU, a frozen TorchScript graph; --fast onnxruntime: a classifier "
                   "exported and run by ONNX Runtime (pip install convzoo[export]); --fast auto: whichever of these "
                   "(and, on the CPU, the eager model with tuned kernels: Winograd 3x3, oneDNN 1x1 convolutions) "
                   "runs one image fastest here, timed before predicting (default: the model as trained)")


def run(args: argparse.Namespace) -> dict:
    """Print one line per image; return the task's predictions."""
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if not 0.0 <= args.draw_thresh <= 1.0:
        raise ValueError(f"--draw-thresh must be in [0, 1], got {args.draw_thresh}")
    if not args.inputs and not args.sentence:
        raise ValueError("predict needs input: image files, .npy volumes or clips, frame folders, text files of "
                         "sentences, or --sentence TEXT")
    for path in args.inputs:
        if not Path(path).exists():
            raise FileNotFoundError(f"no such input file or folder {path} (an image, a .npy volume or clip, a folder "
                                    "of frames, or a text file of sentences)")
    import torch

    from convzoo.train.run import load_run

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _, task, info, model = load_run(args.run_dir, args.checkpoint, device)
    if args.sentence and task.name != "text":
        raise ValueError(f"--sentence: {args.run_dir} is a {task.name} run; it predicts image files")
    if getattr(args, "fast", None):
        from convzoo.export import is_detector, optimize

        example = None  # a detector, another task's model, or a GPU: folded and channels_last only
        classifier = not is_detector(model) and task.name == "classification" and "input_size" in info
        if args.fast == "onnxruntime" and not (classifier and device.type == "cpu"):
            raise ValueError(f"--fast onnxruntime: runs classifiers on the CPU; {args.run_dir} is a {task.name} run"
                             + ("" if device.type == "cpu" else f" on {device}"))
        if device.type == "cpu" and classifier:
            example = torch.rand(1, *info["input_size"])
        elif device.type == "cpu" and is_detector(model) and args.fast == "auto":  # eager, tuned kernels or not
            side = model.transform.min_size[-1]
            example = [torch.rand(3, side, side)]
        model = optimize(model, example, backend=args.fast)
        if args.fast == "auto" and model.timings:
            timings = ", ".join(f"{name} {1000 * t:.1f} ms" for name, t in model.timings.items())
            print(f"convzoo predict: --fast auto chose {model.backend} ({timings} an image)", file=sys.stderr)
    options = {"sentences": args.sentence} if args.sentence else {}
    return task.predict_files(model, info, args.inputs, device, out=Path(args.out), top=args.top,
                              draw_thresh=args.draw_thresh, annotations=args.annotations, **options)
