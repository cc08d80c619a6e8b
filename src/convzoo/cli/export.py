"""convzoo export RUN_OR_MODEL: a trained run (its folder) or a registered model to ONNX or a torch.export program.

Writes the file and PATH.json next to it, the input contract: input shape with its dynamic axes, dtype, the
normalization, class names, output names and, for detectors, the box format (xyxy in input pixels) and thresholds.
ONNX needs the optional packages: pip install convzoo[export].

examples:
  convzoo export runs/resnet20-cifar10-20250101-120000                   -> resnet20.onnx (+ resnet20.onnx.json)
  convzoo export resnet50 --weights resnet50.safetensors --out r50.onnx   a registered model with a weights file
  convzoo export mask_rcnn_r50_fpn --format exported-program --input-size 3,512,512
"""

from __future__ import annotations

import argparse
from pathlib import Path

from convzoo.cli.arguments import positive_int
from convzoo.cli.summary import _size

SUFFIX = {"onnx": ".onnx", "exported-program": ".pt2"}


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a trained run or a registered model to ONNX or torch.export",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="RUN_OR_MODEL",
                   help="a folder written by convzoo train, or a registered model name (see 'convzoo models')")
    p.add_argument("--format", default="onnx", choices=("onnx", "exported-program"), help="default: onnx")
    p.add_argument("--opset", type=positive_int, default=None, metavar="N",
                   help="ONNX opset (default: 18, also the least a detector takes)")
    p.add_argument("--dynamic-batch", action=argparse.BooleanOptionalAction, default=True,
                   help="a dynamic batch axis; --no-dynamic-batch fixes it to the example's 2 (default: %(default)s)")
    p.add_argument("--dynamic-size", action=argparse.BooleanOptionalAction, default=True,
                   help="dynamic spatial axes where the model allows them; --no-dynamic-size fixes them (default: "
                   "%(default)s)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="the file to write (default: MODEL.onnx or MODEL.pt2 in the current folder)")
    p.add_argument("--input-size", type=_size, default=None, metavar="C,H,W",
                   help="the example input the graph is traced with (default: the run's or the model's input size; "
                   "detectors: 3,MIN_SIZE,MIN_SIZE)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="a run's checkpoint (default: best)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="a registered model: load these weights (.safetensors or .pth; default: random weights)")
    p.add_argument("--num-classes", type=positive_int, default=None, metavar="N",
                   help="a registered model: classes of the head (default: the model's)")
    p.set_defaults(func=run)


def _normalization(info: dict) -> dict | None:
    recipe = info.get("preprocess") or {}
    if recipe.get("kind") == "tensor":
        return {"mean": recipe["mean"], "std": recipe["std"], "where": "caller", "input_range": [0.0, 1.0],
                "resize": recipe.get("size")}
    if recipe.get("kind") == "photo":
        from convzoo.detection.transform import IMAGENET_MEAN, IMAGENET_STD

        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "where": "caller",
                "input_range": [0.0, 1.0], "resize": recipe.get("size")}
    return None


def _load(args: argparse.Namespace):
    """(model name, model, class names, normalization, input size) of a run folder or a registry name."""
    source = Path(args.source)
    if source.is_dir():
        if args.weights or args.num_classes:
            raise ValueError("--weights and --num-classes are for a registered model; a run folder has its own")
        from convzoo.train.run import load_run

        config, _, info, model = load_run(source, args.checkpoint)
        size = info.get("input_size")
        return config.model, model, info.get("class_names"), _normalization(info), size
    if source.suffix or "/" in args.source:
        raise FileNotFoundError(f"no run folder {args.source} (and it is not a model name)")
    from convzoo.registry import create_model

    kwargs = {"num_classes": args.num_classes} if args.num_classes else {}
    model = create_model(args.source, **kwargs)
    if args.weights:
        from convzoo.weights import load_weights

        if not Path(args.weights).is_file():
            raise FileNotFoundError(f"--weights: no such file {args.weights}")
        load_weights(model, args.weights)
    return args.source, model.eval(), getattr(model, "class_names", None), None, None


def example_inputs(model, size, batch: int = 2):
    """The traced example: Tensor[batch, *size]; a detector gets [0, 1] images (and proposals without an RPN)."""
    import torch

    from convzoo.export import is_detector
    from convzoo.export.classifier import example_input

    if not is_detector(model):
        return example_input(model, batch, size)
    side = model.transform.min_size[-1]
    size = size or (3, side, side)
    if len(size) != 3:
        raise ValueError(f"--input-size: a detector takes C,H,W images, got {','.join(map(str, size))}")
    images = torch.rand((batch, *size), generator=torch.Generator().manual_seed(0))
    if model.rpn is not None:
        return (images,)
    height, width = size[1:]
    proposals = torch.tensor([[i, 0.1 * width, 0.1 * height, 0.6 * width, 0.7 * height] for i in range(batch)]
                             + [[i, 0.3 * width, 0.2 * height, 0.9 * width, 0.9 * height] for i in range(batch)])
    return images, proposals


def run(args: argparse.Namespace) -> dict:
    """Export; print the written files and return the contract."""
    from convzoo.export import export
    from convzoo.export.deps import require

    if args.format == "onnx":
        require("onnx", "onnxscript", "onnxruntime")  # before the model is built: a missing extra fails at once
    name, model, class_names, normalization, size = _load(args)
    if args.input_size is not None:
        size = args.input_size
    out = Path(args.out) if args.out else Path(name.replace(":", "_") + SUFFIX[args.format])
    contract = export(model, example_inputs(model, size), out, format=args.format, opset=args.opset,
                      dynamic_batch=args.dynamic_batch, dynamic_size=args.dynamic_size, name=name,
                      class_names=class_names, normalization=normalization)
    shape = "x".join(str(axis) for axis in contract["inputs"][0]["shape"])
    print(f"wrote {out} ({args.format}, input {shape}) and {out}.json")
    return contract
