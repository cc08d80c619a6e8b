"""Throughput of GoogLeNet, Inception-v3 and NASNet-A: convzoo vs torchvision / timm, side by side in one process.

For each model and memory format (NCHW, channels_last): inference img/s (eval, no_grad) and, where asked, training
img/s (forward + backward + SGD step, auxiliary losses included with the paper weights in both implementations),
the two implementations timed alternately, best of ``--reps`` after a warm-up, and the ratio convzoo / reference
(>= 1.0 means convzoo is at least as fast).

The references are not always the same network: torchvision's ``googlenet`` has BatchNorm and a 3x3 where the
paper (and convzoo) has a 5x5, so that row compares two different GoogLeNets (1.58 vs 1.50 GMACs). torchvision's
``inception_v3`` is the same network (identical parameters). timm has no NASNet-A Mobile; ``nasnet_a_large`` is
compared with timm's ``nasnetalarge`` (same network) at a reduced input to keep the CPU run short.

    python benchmarks/bench_inception.py                     # all cases
    python benchmarks/bench_inception.py --models googlenet --train --reps 5
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torchvision
from _timing import best_times, step_fn  # benchmarks/_timing.py, beside this script
from torch import nn

import convzoo
from convzoo.models.aux import classification_loss


def _timm(name: str) -> Callable[[], nn.Module] | None:
    try:
        import timm
    except ImportError:
        return None
    return lambda: timm.create_model(name)


CASES: dict[str, tuple[Callable[[], nn.Module] | None, dict, tuple[int, ...], int]] = {
    # convzoo name: (reference builder or None, convzoo kwargs, input size, batch)
    "googlenet": (lambda: torchvision.models.googlenet(weights=None, init_weights=False), {}, (3, 224, 224), 8),
    "inception_v3": (lambda: torchvision.models.inception_v3(weights=None, init_weights=False), {}, (3, 299, 299), 4),
    "nasnet_a_mobile": (None, {}, (3, 224, 224), 8),
    "nasnet_a_large": (_timm("nasnetalarge"), {"count_include_pad": True}, (3, 224, 224), 1),
}
# torchvision's aux outputs are namedtuples (logits, aux_logits2, aux_logits1) / (logits, aux_logits)
_TORCHVISION_AUX_WEIGHTS = {"GoogLeNetOutputs": (1.0, 0.3, 0.3), "InceptionOutputs": (1.0, 0.4)}


def total_loss(output, target: torch.Tensor) -> torch.Tensor:
    """The training loss of either implementation's output, auxiliary heads weighted as the papers do."""
    weights = _TORCHVISION_AUX_WEIGHTS.get(type(output).__name__)
    if weights is None:
        return classification_loss(output, target)
    return sum(w * nn.functional.cross_entropy(o, target) for w, o in zip(weights, output))


def measure(name: str, channels_last: bool, train: bool, reps: int) -> tuple[float, float | None]:
    """(convzoo img/s, reference img/s or None), timed alternately, best of ``reps``."""
    reference_builder, kwargs, size, batch = CASES[name]
    torch.manual_seed(0)
    models = [convzoo.create_model(name, **kwargs)] + ([reference_builder()] if reference_builder else [])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, *size).contiguous(memory_format=fmt)
    best = best_times([step_fn(m.to(memory_format=fmt), x, train, total_loss) for m in models], reps)
    return batch / best[0], (batch / best[1] if len(best) > 1 else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--train", action="store_true", help="also time training steps (googlenet, inception_v3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads")
    print("| model | input | format | mode | convzoo img/s | reference img/s | ratio |")
    print("|---|---|---|---|---:|---:|---:|")
    for name in args.models:
        modes = (False, True) if args.train and name in ("googlenet", "inception_v3") else (False,)
        size, batch = CASES[name][2], CASES[name][3]
        for channels_last in (False, True):
            for train in modes:
                ours, theirs = measure(name, channels_last, train, args.reps)
                reference = "-" if theirs is None else f"{theirs:.2f}"
                ratio = "-" if theirs is None else f"{ours / theirs:.3f}"
                print(f"| {name} | {batch}x{'x'.join(map(str, size))} | "
                      f"{'channels_last' if channels_last else 'NCHW'} | {'train' if train else 'inference'} | "
                      f"{ours:.2f} | {reference} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
