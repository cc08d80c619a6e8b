"""Throughput of convzoo classifiers vs their torchvision twins, side by side in one process.

For each model and memory format (NCHW, channels_last): inference img/s (eval, no_grad) and training img/s
(forward + backward + SGD step), the two implementations timed alternately, best of ``--reps`` after a warm-up,
and the ratio convzoo / torchvision (>= 1.0 means convzoo is at least as fast).

    python benchmarks/bench_models.py                       # all models
    python benchmarks/bench_models.py --models resnet20 --reps 5
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from _timing import best_times, step_fn  # benchmarks/_timing.py, beside this script
from torch import nn

import convzoo


class _TorchvisionStyleCifarBlock(nn.Module):
    """The usual torchvision-style CIFAR basic block with option A shortcuts (the reference for resnet20)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.extra:
            shortcut = nn.functional.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))
        return torch.relu(out + shortcut)


def reference_resnet20(num_classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            layers.append(_TorchvisionStyleCifarBlock(cin, cout, stride if b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


CASES = {
    # name: (reference builder, input size, inference batch, training batch)
    "resnet50": (torchvision.models.resnet50, (3, 224, 224), 8, 8),
    "resnext50_32x4d": (torchvision.models.resnext50_32x4d, (3, 224, 224), 8, 8),
    "vgg16": (torchvision.models.vgg16, (3, 224, 224), 4, 4),
    "resnet20": (reference_resnet20, (3, 32, 32), 256, 128),
}


def compare(name: str, channels_last: bool, train: bool, reps: int) -> tuple[float, float]:
    """(convzoo img/s, reference img/s), timed alternately, best of ``reps``."""
    reference_builder, size, infer_batch, train_batch = CASES[name]
    batch = train_batch if train else infer_batch
    torch.manual_seed(0)
    models = [convzoo.create_model(name), reference_builder()]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, *size).contiguous(memory_format=fmt)
    best = best_times([step_fn(m.to(memory_format=fmt), x, train) for m in models], reps)
    return batch / best[0], batch / best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads")
    print("| model | format | mode | convzoo img/s | torchvision img/s | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models:
        for channels_last in (False, True):
            for train in (False, True):
                ours, theirs = compare(name, channels_last, train, args.reps)
                print(f"| {name} | {'channels_last' if channels_last else 'NCHW'} | "
                      f"{'train' if train else 'inference'} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
