"""Time to accuracy of `convzoo train` recipes on this CPU, and CIFAR-10 ResNet-20 NCHW vs channels_last.

Each recipe is a `convzoo train` command line; the wall time counts everything from the call (data loading included)
to the final test evaluation. Goals: MNIST >= 99.0% test accuracy (< 60 s), Fashion-MNIST >= 92.0% (< 3 min).

    python benchmarks/time_to_accuracy.py mnist --root ../shared/data
    python benchmarks/time_to_accuracy.py fashion-mnist --root ../shared/data
    python benchmarks/time_to_accuracy.py cifar10 --root ../shared/data --epochs 3
    python benchmarks/time_to_accuracy.py layout --steps 20           # ResNet-20 training img/s, NCHW vs NHWC
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import convzoo
from convzoo.cli import build_parser

SMALL_CNN = "spec:CB-16-3-1-same,M-2-2,CB-32-3-1-same,M-2-2,CB-64-3-1-same,M-2-2,F,H-128"
WIDER_CNN = "spec:CB-32-3-1-same,M-2-2,CB-64-3-1-same,M-2-2,CB-128-3-1-same,M-2-2,F,H-256,D-0.3"
RECIPES = {
    "mnist": ["--model", SMALL_CNN, "--epochs", "2", "--batch-size", "128", "--optimizer", "adamw", "--lr", "3e-3",
              "--schedule", "one-cycle", "--no-augment"],
    "fashion-mnist": ["--model", WIDER_CNN, "--epochs", "3", "--batch-size", "128", "--optimizer", "adamw",
                      "--lr", "3e-3", "--schedule", "one-cycle", "--no-augment", "--label-smoothing", "0.1"],
    "cifar10": ["--model", "resnet20", "--batch-size", "128", "--optimizer", "sgd", "--lr", "0.1",
                "--weight-decay", "5e-4", "--schedule", "one-cycle", "--channels-last"],
}


def run_recipe(task: str, root: str, epochs: int | None, threads: int | None) -> dict:
    argv = ["train", "--data", f"{task}:{root}/{task}", *RECIPES[task], "--no-progress",
            "--out", tempfile.mkdtemp(prefix=f"tta-{task}-")]
    if epochs:
        argv += ["--epochs", str(epochs)]
    if threads:
        argv += ["--threads", str(threads)]
    print("convzoo " + shlex.join(argv), flush=True)
    start = time.perf_counter()
    args = build_parser().parse_args(argv)
    metrics = args.func(args)
    wall = time.perf_counter() - start
    print(f"{task}: test accuracy {metrics['test:accuracy']:.4f} after {metrics['epochs']} epochs, "
          f"wall {wall:.1f} s (training loop {metrics['seconds']:.1f} s)")
    return metrics


def layout_throughput(steps: int, batch_size: int, trials: int) -> None:
    """Training images/s of resnet20 on 32x32 random batches, NCHW vs channels_last (alternating trials)."""
    results: dict[str, list[float]] = {"NCHW": [], "channels_last": []}
    images, labels = torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    for _ in range(trials):
        for name, layout in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
            torch.manual_seed(0)
            model = convzoo.create_model("resnet20", num_classes=10).to(memory_format=layout).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            x = images.contiguous(memory_format=layout)
            for step in range(steps + 2):
                if step == 2:  # two warm-up steps
                    start = time.perf_counter()
                loss = F.cross_entropy(model(x), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            results[name].append(steps * batch_size / (time.perf_counter() - start))
    threads = torch.get_num_threads()
    for name, values in results.items():
        print(f"resnet20 train {name:>13}: {statistics.median(values):7.1f} img/s "
              f"(trials {', '.join(f'{v:.0f}' for v in values)}; batch {batch_size}, {threads} threads)")
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"channels_last / NCHW: {medians['channels_last'] / medians['NCHW']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=(*RECIPES, "layout"))
    parser.add_argument("--root", default="../shared/data", help="folder with mnist/, fashion-mnist/, cifar10/")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (cifar10: 3)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    if args.task == "layout":
        if args.threads:
            torch.set_num_threads(args.threads)
        layout_throughput(args.steps, args.batch_size, args.trials)
    else:
        run_recipe(args.task, args.root, args.epochs or (3 if args.task == "cifar10" else None), args.threads)


if __name__ == "__main__":
    main()
