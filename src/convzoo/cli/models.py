"""Every registered model with its kind, parameters and multiply-adds at its default input size.

examples:
  convzoo models                      all models
  convzoo models 'resnet*'            a glob (quote it, or the shell expands it)
  convzoo models --kind detector      the R-CNN family

GMACs are the multiply-accumulates of the convolutions and linear layers for one image at the model's default
input size (FLOPs = 2 x MACs); parameters include BatchNorm scale and shift, not its running statistics.
Detectors take images of any size, so their GMACs show "-". The figures come from a table measured on the
models (python -m convzoo.model_table rebuilds it), so listing builds nothing; "convzoo summary NAME" measures
one model at any input size.
"""

from __future__ import annotations

import argparse

from convzoo.model_table import model_table
from convzoo.registry import KINDS


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the registered models with parameters and GMACs",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pattern", nargs="?", default="*", help="a glob such as 'resnet*' (default: '*', all)")
    parser.add_argument("--kind", choices=KINDS, default=None, help="only models of this kind (default: all kinds)")
    parser.add_argument("--no-macs", action="store_true", help="leave out the GMACs and input size columns")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, dict]:
    """Print one line per model matching ``args.pattern`` and ``args.kind``; return {name: {kind, params, macs,
    input_size}} (``macs`` and ``input_size`` None for detectors)."""
    rows = model_table(args.pattern, args.kind)
    if not rows:
        kind = f" of kind {args.kind}" if args.kind else ""
        raise ValueError(f"no model{kind} matches {args.pattern!r}; 'convzoo models' lists them all")
    width = max(len("model"), *(len(row.name) for row in rows))
    kinds = max(10, *(len(row.kind) for row in rows))
    header = f"{'model':<{width}}  {'kind':<{kinds}} {'params':>9}"
    print(header if args.no_macs else f"{header} {'GMACs':>8}  input")
    for row in rows:
        line = f"{row.name:<{width}}  {row.kind:<{kinds}} {row.params / 1e6:>8.2f}M"
        if not args.no_macs:
            gmacs = "-" if row.macs is None else f"{row.macs / 1e9:.3f}"
            size = "-" if row.input_size is None else "x".join(map(str, row.input_size))
            line += f" {gmacs:>8}  {size}"
        print(line)
    return {row.name: {"kind": row.kind, "params": row.params, "macs": row.macs, "input_size": row.input_size}
            for row in rows}
