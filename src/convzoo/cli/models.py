"""``convzoo models [PATTERN]``: every registered model with its parameters and GMACs at its default input size."""

from __future__ import annotations

import argparse

from convzoo.registry import create_model, list_models
from convzoo.summary import count_params, summary


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the registered models with parameters and GMACs",
                                   description=__doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="a glob such as 'resnet*' (default: all)")
    parser.add_argument("--no-macs", action="store_true", help="only names and parameter counts (faster)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Print one line per model matching ``args.pattern``; return {name: {params, macs, input_size}}."""
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}")
    results = {}
    print(f"{'model':<24} {'params':>12} {'GMACs':>9}  input")
    for name in names:
        model = create_model(name)
        params = count_params(model)
        input_size = tuple(getattr(model, "default_input_size", ()))
        macs = float("nan")
        if not args.no_macs and input_size:
            macs = summary(model, input_size).total_macs
        results[name] = {"params": params, "macs": macs, "input_size": input_size}
        shape = "x".join(map(str, input_size)) if input_size else "-"
        gmacs = "-" if macs != macs else f"{macs / 1e9:.3f}"  # NaN: not measured (detectors, --no-macs)
        print(f"{name:<24} {params / 1e6:>11.2f}M {gmacs:>9}  {shape}")
    return results
