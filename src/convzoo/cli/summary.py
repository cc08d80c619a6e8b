"""The per-layer table of one model, like the papers' tables: type, patch size/stride, output size, parameters and
multiply-adds (MACs of convolutions and linear layers for one input; FLOPs = 2 x MACs).

examples:
  convzoo summary resnet50                                    at its default input size, 3x224x224
  convzoo summary resnet50 --input-size 3,448,448 --depth 1   one row per stage
  convzoo summary resnet18 --num-classes 10 --input-size 1,28,28
                                                              1 input channel (the model gets in_chans=1)
  convzoo summary resnet18 --input-size 3,1000                a 1D ResNet-18 (ndim follows the size)
  convzoo summary kim_cnn --input-size 1,40                   a sentence of 40 tokens (Kim 2014)
  convzoo summary spec:CB-16-5-2-same,M-3-2,F,H-100 --input-size 1,28,28
                                                              the course's architecture strings
"""

from __future__ import annotations

import argparse

from convzoo.cli.arguments import positive_int
from convzoo.registry import create_model, model_keywords, model_kind
from convzoo.summary import summary


def _size(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        sizes = ()
    if not 2 <= len(sizes) <= 4 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes C,L or C,H,W or C,D,H,W such as 3,224,224, "
                                         f"got {text!r}")
    return sizes


def register(subparsers) -> None:
    parser = subparsers.add_parser("summary", help="print a model's per-layer table", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a registered model name (see 'convzoo models') or spec:STRING")
    parser.add_argument("--input-size", type=_size, default=None, metavar="C,H,W",
                        help="C,H,W (or C,L / C,D,H,W) of one input (default: the model's default input size)")
    parser.add_argument("--depth", type=positive_int, default=None, metavar="N",
                        help="one row per module this many levels deep, e.g. 1: the stages (default: every leaf)")
    parser.add_argument("--num-classes", type=positive_int, default=None, metavar="N",
                        help="classes of the head (default: the model's, e.g. 1000)")
    parser.add_argument("--in-chans", type=positive_int, default=None, metavar="N",
                        help="input channels (default: the model's)")
    parser.set_defaults(func=run)


def _model_kwargs(args: argparse.Namespace) -> dict:
    """The builder's keywords: the options given, and what ``--input-size`` implies for a model that takes it (the
    input channels unless ``--in-chans`` says otherwise, the spatial axes, a spec model's fixed spatial size)."""
    kwargs = {key: value for key, value in (("num_classes", args.num_classes), ("in_chans", args.in_chans))
              if value is not None}
    takes = model_keywords(args.model) or ()
    if args.input_size is not None:
        channels, *spatial = args.input_size
        if "in_chans" in takes and kwargs.setdefault("in_chans", channels) != channels:
            raise ValueError(f"--in-chans {args.in_chans} disagrees with --input-size "
                             f"{','.join(map(str, args.input_size))} ({channels} channels)")
        if "input_size" in takes:  # a spec model flattens a fixed spatial size
            kwargs["input_size"] = tuple(spatial)
        elif "ndim" in takes and len(spatial) != 2:
            kwargs["ndim"] = len(spatial)
    return kwargs


def run(args: argparse.Namespace) -> dict[str, float]:
    kind = model_kind(args.model)
    if kind not in ("classifier", "text_classifier"):
        raise ValueError(f"{args.model} is a {kind}; summary tabulates classifiers ('convzoo models --kind {kind}' "
                         f"lists the parameters of the {kind}s)")
    model = create_model(args.model, **_model_kwargs(args))
    try:
        table = summary(model, args.input_size, depth=args.depth)
    except (ValueError, RuntimeError) as error:
        if args.input_size is None:  # the model's own default input size: a failure is a bug, keep its traceback
            raise
        # The input size is the user's: a model that cannot run on it (too few channels, too small for its
        # pooling, a 1D size for a 2D model) is a bad option value.
        size = ",".join(map(str, args.input_size))
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"--input-size {size}: {args.model} cannot run on inputs of this size ({reason})") from None
    print(f"{args.model}")
    print(table)
    return {"params": table.total_params, "macs": table.total_macs}
