"""Engine overhead: the one training loop (data pipeline, train_one_epoch, the classification task) vs a bare loop.

Both run in one process on the same model (a course-style CNN), MNIST images, batch size and optimizer; the bare
loop reads pre-normalized tensors through a plain DataLoader(TensorDataset). Trials alternate (bare, convzoo, bare,
...) to share the machine's load fairly; the median images/s of each is printed with the ratio (goal >= 0.95).

    python benchmarks/bench_engine.py --data mnist:../shared/data/mnist --steps 60 --trials 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import convzoo
from convzoo.data import load_data
from convzoo.tasks import ClassificationTask
from convzoo.train.distributed import DistributedContext, ResumableSampler
from convzoo.train.engine import Budget, StepOptions, TrainState, make_loader, train_one_epoch

MODEL = "spec:CB-16-3-1-same,M-2-2,CB-32-3-1-same,M-2-2,CB-64-3-1-same,M-2-2,F,H-128"


class Limited:
    """The first ``steps`` batches of a loader."""

    def __init__(self, loader, steps: int) -> None:
        self.loader, self.steps = loader, steps

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.steps:
                return
            yield batch


def build(splits, seed: int):
    torch.manual_seed(seed)
    model = convzoo.create_model(MODEL, num_classes=splits.num_classes, in_chans=splits.input_size[0],
                                 input_size=splits.input_size[1:])
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def bare_trial(splits, x, y, batch_size: int, steps: int) -> float:
    model, optimizer = build(splits, 0)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True)
    model.train()
    start = time.perf_counter()
    for i, (images, labels) in enumerate(loader):
        if i == steps:
            break
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def convzoo_trial(splits, batch_size: int, steps: int) -> float:
    model, optimizer = build(splits, 0)
    task = ClassificationTask(MODEL, splits.name)
    sampler = ResumableSampler(splits.train, DistributedContext(), seed=0)
    loader = Limited(make_loader(splits.train, batch_size, sampler, task.collate, train=True), steps)
    options = StepOptions(torch.device("cpu"))
    model.train()
    start = time.perf_counter()
    train_one_epoch(task, model, loader, optimizer, TrainState(), lambda step, at: 1e-3, options,
                    Budget(steps, None, "wall"))
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist:../shared/data/mnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = load_data(args.data, augment=False)
    x, y = splits.train.__getitems__(list(range(len(splits.train))))  # the same pixels, normalized once
    bare_trial(splits, x, y, args.batch_size, 5)  # warm up both paths
    convzoo_trial(splits, args.batch_size, 5)
    bare, ours = [], []
    for _ in range(args.trials):
        bare.append(bare_trial(splits, x, y, args.batch_size, args.steps))
        ours.append(convzoo_trial(splits, args.batch_size, args.steps))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"model {MODEL}, data {args.data}, batch {args.batch_size}, {args.steps} steps x {args.trials} trials, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"bare PyTorch loop : {b:8.1f} img/s  (trials {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"convzoo engine    : {o:8.1f} img/s  (trials {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"ratio convzoo / bare: {o / b:.3f}")


if __name__ == "__main__":
    main()
