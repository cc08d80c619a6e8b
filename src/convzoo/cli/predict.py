"""``convzoo predict RUN_DIR IMAGE...``: the most probable classes of image files under a trained run's model.

    convzoo predict runs/spec-digits-20250101-120000 three.png seven.png --top 3

Each image is decoded (grayscale for 1-channel models), resized to the model's input size and normalized as the
run's data set was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.transforms import v2

from convzoo.cli.evaluate import load_run
from convzoo.data import TensorImageDataset
from convzoo.data.imagefolder import read_image
from convzoo.models.aux import main_logits


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="classify image files with a trained run", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a folder written by `convzoo train`")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--top", type=int, default=1, help="how many classes to print per image (default: 1)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def preprocess(paths: list[str], splits, input_size: tuple[int, ...]) -> torch.Tensor:
    """Image files -> the network's input batch Tensor[N, C, H, W], prepared like the run's test split."""
    mode = "L" if input_size[0] == 1 else "RGB"
    resize = v2.Resize(tuple(input_size[1:]), antialias=True)
    test = splits.test
    if isinstance(test, TensorImageDataset):
        images = torch.stack([resize(read_image(Path(p), mode)) for p in paths])
        return test.normalize(images)
    return torch.stack([test.transform(read_image(Path(p), mode)) for p in paths])


def run(args: argparse.Namespace) -> dict:
    """Print ``IMAGE: class (probability)`` lines; return {image: [(class, probability), ...]}."""
    if len(args.images) and args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config, model, splits = load_run(args.run_dir, args.checkpoint, device)
    if len(splits.input_size) != 3:
        raise ValueError(f"predict reads image files; the run's data {config.data} is not images")
    with torch.no_grad():
        probabilities = main_logits(model(preprocess(args.images, splits, splits.input_size).to(device))).softmax(1)
    names = splits.class_names or [str(i) for i in range(splits.num_classes)]
    results = {}
    for path, row in zip(args.images, probabilities.cpu()):
        values, indices = row.topk(min(args.top, len(row)))
        results[path] = [(names[i], v) for v, i in zip(values.tolist(), indices.tolist())]
        print(f"{path}: " + ", ".join(f"{name} ({p:.4f})" for name, p in results[path]))
    return results
