"""Which time-budget policy trains better when the budget, not the planned epochs, ends a run: the schedule on
progress (convzoo's: max(steps, time) drives the cosine decay, which ends when the time does) or the schedule on
steps alone, stopped when the time is up (the decay cut off part-way).

Both policies run the same recipe with the same seeds in one process, alternating, under whatever load the machine
has (run it beside other work to see a busy machine); it prints the test accuracy of each run and the medians.

    python benchmarks/budget_policy.py --seconds 12 --seeds 3 --epochs 60
    python benchmarks/budget_policy.py --data fashion-mnist:DATA/fashion-mnist --seconds 40 --seeds 2 --epochs 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from unittest import mock

from convzoo.train import Budget, TrainConfig, fit

MODEL = "spec:CB-16-3-1-same,M-2-2,CB-32-3-1-same,M-2-2,F,H-64,D-0.2"


def run(seed: int, seconds: float, epochs: int, policy: str, clock: str, data: str) -> float:
    config = TrainConfig(model=MODEL, data=data, epochs=epochs, batch_size=32, lr=3e-3, seed=seed,
                         max_minutes=seconds / 60, clock=clock, progress=False, device="cpu",
                         out=tempfile.mkdtemp(prefix=f"budget-{policy}-"))
    if policy == "progress":
        return fit(config)["test:accuracy"]
    with mock.patch.object(Budget, "schedule_step", lambda self, step, progress: step):
        return fit(config)["test:accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="the budget of each run (default: 12)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per policy (default: 3)")
    parser.add_argument("--epochs", type=int, default=60, help="planned epochs, more than the budget allows")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="default: wall")
    parser.add_argument("--data", default="digits", help="a classification --data (default: digits)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"progress": [], "steps": []}
    for seed in range(args.seeds):
        for policy in results:
            accuracy = run(seed, args.seconds, args.epochs, policy, args.clock, args.data)
            results[policy].append(accuracy)
            print(f"seed {seed} schedule on {policy:8s}: test accuracy {accuracy:.4f}", flush=True)
    for policy, values in results.items():
        print(f"schedule on {policy:8s}: median test accuracy {statistics.median(values):.4f} "
              f"({', '.join(f'{v:.4f}' for v in values)})")


if __name__ == "__main__":
    main()
