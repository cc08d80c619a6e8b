"""``convzoo summary NAME [--input-size C,H,W]``: the per-layer table of one model, like the papers' tables."""

from __future__ import annotations

import argparse

from convzoo.registry import create_model
from convzoo.summary import summary


def _size(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 3,224,224, got {text!r}") from None


def register(subparsers) -> None:
    parser = subparsers.add_parser("summary", help="print a model's per-layer table", description=__doc__)
    parser.add_argument("model", help="a registered model name or spec:STRING")
    parser.add_argument("--input-size", type=_size, default=None, help="C,H,W (or C,L / C,D,H,W); default: the model's")
    parser.add_argument("--depth", type=int, default=None, help="group rows at this module depth (default: leaves)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, float]:
    kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = create_model(args.model, **kwargs)
    table = summary(model, args.input_size, depth=args.depth)
    print(f"{args.model}")
    print(table)
    return {"params": table.total_params, "macs": table.total_macs}
