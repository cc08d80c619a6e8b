"""Evidence for `convzoo search` (docs/nas.md): the controller against random search, and the found cells trained
from scratch against uniformly random cells with the same recipe.

    python benchmarks/nas_search.py --data fashion-mnist:DATA/fashion-mnist --image-size 16 --subset 5120 \\
        --search-minutes 18 --train-epochs 1 --train-minutes 12 --seeds 0 1 --random-cells 5 --jobs 4 \\
        --out runs/nas2 --docs docs/nas          # docs/nas.md's run
    # the issue's scale (1 CPU-hour of search per seed; CIFAR-10; longer training):
    python benchmarks/nas_search.py --data cifar10:DIR --cells 2 --filters 16 --search-minutes 60 \\
        --train-minutes 30 --seeds 0 1 --random-cells 5 --out runs/nas-full

Stages (``--stage``): ``search`` runs a controller search and a random search (``--strategy random``, the same
budget) per seed; ``train`` trains each search's best cell and ``--random-cells`` uniformly sampled cells with
``convzoo train --model nasnet --genotype ...`` for ``--train-minutes`` of CPU time each; ``report`` writes
``results.json`` and the plots into ``--docs``. Every budget is CPU time (``--clock cpu``, one thread), so a busy
machine changes the wall time, not the work done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path


def run_all(commands: list[tuple[str, list[str]]], jobs: int, log_dir: Path) -> dict[str, dict]:
    """Run ``(name, argv)`` commands, ``jobs`` at a time, output to ``log_dir/NAME.log``; {name: {"cpu_s", "wall_s",
    "rc"}}."""
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, done = list(commands), {}, {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < jobs:
            name, argv = pending.pop(0)
            log = open(log_dir / f"{name}.log", "w")  # stdout and stderr: the final test line is kept
            print(f"start {name}: {' '.join(argv)}", flush=True)
            running[subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=env).pid] = \
                (name, time.time(), log)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        name, started, log = running.pop(pid)
        log.close()
        done[name] = {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.time() - started,
                      "rc": os.waitstatus_to_exitcode(status)}
        print(f"done {name}: rc {done[name]['rc']}, {done[name]['cpu_s']:.0f} CPU s", flush=True)
    return done


def _convzoo(*words: str) -> list[str]:
    return [sys.executable, "-m", "convzoo", *words]


def search_stage(args) -> None:
    commands = []
    for seed in args.seeds:
        for strategy in args.strategies:
            out = args.out / f"search-{strategy}-{seed}"
            commands.append((out.name, _convzoo(
                "search", "--data", args.data, "--strategy", strategy, "--seed", str(seed), "--cells", str(args.cells),
                "--filters", str(args.filters), "--max-minutes", str(args.search_minutes), "--clock", "cpu",
                "--threads", "1", "--subset", str(args.subset), "--controller-lr", str(args.controller_lr),
                "--out", str(out), *(["--image-size", str(args.image_size)] if args.image_size else []),
                "--no-progress")))
    _save(args.out / "search_runs.json", run_all(commands, args.jobs, args.out / "logs"))


def finalize_stage(args) -> None:
    """A search stopped early (Ctrl-C: only ``last`` saved): write its best genotypes, drawings and train command
    from the last checkpoint, without another evaluation."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from convzoo.train.run import load_run

    for seed in args.seeds:
        for strategy in ("controller", "random"):
            run = args.out / f"search-{strategy}-{seed}"
            if (run / "last.safetensors").is_file() and not (run / "best_genotype.json").is_file():
                _, task, info, model = load_run(run, checkpoint="last")
                task.write_results(model, run, info)
                print(f"finalized {run} from its last checkpoint", flush=True)


def train_stage(args) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch

    from convzoo.nas import genotype_of, uniform_actions

    cells = {}
    for seed in args.seeds:
        for strategy in ("controller", "random"):
            path = args.out / f"search-{strategy}-{seed}" / "best_genotype.json"
            if path.is_file():
                cells[f"{strategy}-{seed}"] = path
    generator = torch.Generator().manual_seed(12345)
    for k, actions in enumerate(uniform_actions(args.random_cells, 5, generator)):
        path = args.out / "random-cells" / f"uniform-{k}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(genotype_of(actions, 5).to_json())
        cells[f"uniform-{k}"] = path
    commands = [(f"train-{name}-s{seed}", _convzoo(
        "train", "--model", "nasnet", "--genotype", str(path), "--model-option", f"num_cells={args.cells}",
        "--model-option", f"filters={args.filters}", "--model-option", "stem=cifar", "--data", args.data,
        "--optimizer", "sgd", "--lr", "0.05", "--weight-decay", "3e-4", "--epochs", str(args.train_epochs),
        "--max-minutes", str(args.train_minutes), "--clock", "cpu", "--threads", "1", "--seed", str(seed),
        "--no-progress", "--out", str(args.out / f"train-{name}-s{seed}"),
        *(["--image-size", str(args.image_size)] if args.image_size else [])))
        for seed in args.child_seeds for name, path in cells.items()]
    _save(args.out / "train_runs.json", run_all(commands, args.jobs, args.out / "logs"))


def score_stage(args) -> None:
    """Children stopped by Ctrl-C before their own test evaluation: the test accuracy of their ``last``
    checkpoint on the first ``--score-images`` test images, written to ``score.json`` in each run folder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import torch
    from torch.utils.data import Subset

    from convzoo.train.run import load_run

    torch.set_num_threads(1)
    for run in sorted(args.out.glob("train-*")):
        finished = _test_accuracy(args.out / "logs" / f"{run.name}.log", run) is not None
        if finished or not (run / "last.safetensors").is_file():
            continue
        config, task, info, model = load_run(run, checkpoint="last")
        test = task.load_data(config.data).test
        subset = Subset(test, range(min(args.score_images, len(test))))
        metrics = task.evaluate(model, subset, torch.device("cpu"), info=info)
        steps = int(torch.load(run / "last.state.pt", weights_only=True)["train_state"]["step"])
        (run / "score.json").write_text(json.dumps({"test_accuracy": metrics["accuracy"], "images": len(subset),
                                                    "steps": steps}) + "\n")
        print(f"{run.name}: test accuracy {metrics['accuracy']:.4f} on {len(subset)} images after {steps} steps",
              flush=True)


def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _test_accuracy(log: Path, run: Path | None = None) -> float | None:
    """The child's test accuracy: from its run folder's ``results.json``, else from the last line of its log."""
    results = run / "results.json" if run is not None else None
    if results is not None and results.is_file():
        value = json.loads(results.read_text())["metrics"].get("test:accuracy")
        if value is not None:
            return float(value)
    found = re.findall(r"test:accuracy=([0-9.]+)", log.read_text()) if log.is_file() else []
    return float(found[-1]) if found else None


def report_stage(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    searches, trains = _load(args.out / "search_runs.json"), _load(args.out / "train_runs.json")
    results = {"searches": {}, "trained": {}}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for seed in args.seeds:
        for strategy, style in (("controller", "-"), ("random", "--")):
            run = args.out / f"search-{strategy}-{seed}"
            records = [r for r in _metrics(run) if "dev:reward_mean" in r]
            if not records:
                continue
            rewards = [r["dev:reward_mean"] for r in records]
            results["searches"][run.name] = {
                "reward_mean_per_epoch": rewards, "entropy_per_epoch": [r.get("dev:entropy") for r in records],
                "best_shared_weight_dev_accuracy": records[-1]["dev:accuracy"], "steps": records[-1]["step"],
                "cpu_s": searches.get(run.name, {}).get("cpu_s"),
                "best_genotype": json.loads((run / "best_genotype.json").read_text())
                if (run / "best_genotype.json").is_file() else None}
            ax.plot(range(1, len(rewards) + 1), rewards, style, marker=".", label=f"{strategy}, seed {seed}")
    ax.set_xlabel("search epoch (a controller phase after each)")
    ax.set_ylabel("mean reward of the sampled cells\n(dev accuracy on shared weights)")
    ax.legend(fontsize=7)
    ax.set_title("convzoo search: sampled rewards (shared 2-core CPU)", fontsize=9)
    fig.tight_layout()
    args.docs.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.docs / "rewards.png", dpi=110)
    plt.close(fig)
    for name in sorted(trains):
        accuracy = _test_accuracy(args.out / "logs" / f"{name}.log", args.out / name)
        records = _metrics(args.out / name)
        row = {"test_accuracy": accuracy, "test_images": "all", "steps": records[-1]["step"] if records else None,
               "cpu_s": trains[name]["cpu_s"]}
        score = args.out / name / "score.json"
        if accuracy is None and score.is_file():
            saved = json.loads(score.read_text())
            row.update(test_accuracy=saved["test_accuracy"], test_images=saved["images"], steps=saved["steps"])
        row["dev_accuracy"] = records[-1].get("dev:accuracy") if records else None
        results["trained"][name.removeprefix("train-")] = row
    results["cells"] = _per_cell(results["trained"])
    ranked = sorted(results["cells"], key=lambda c: -results["cells"][c]["mean"])
    uniform = [results["cells"][c]["mean"] for c in ranked if c.startswith("uniform-")]
    results["ranking"] = {cell: {"rank": ranked.index(cell) + 1, "of": len(ranked),
                                 "beats_uniform": sum(results["cells"][cell]["mean"] > u for u in uniform),
                                 "uniform": len(uniform)} for cell in ranked}
    fig, ax = plt.subplots(figsize=(6, 3))
    colors = {"uniform": "0.5", "random": "tab:orange", "controller": "tab:blue"}
    seen: dict[str, int] = {}
    for cell, summary in results["cells"].items():
        kind = cell.split("-")[0]
        seen[kind] = seen.get(kind, -1) + 1
        y = {"uniform": 0, "random": 1, "controller": 2}[kind] + 0.12 * (seen[kind] - 2 if kind == "uniform" else
                                                                         seen[kind] - 0.5)  # a row per cell
        ax.scatter(summary["test_accuracy"], [y] * len(summary["test_accuracy"]), color=colors[kind], s=14,
                   alpha=0.5)
        ax.errorbar(summary["mean"], y, xerr=summary["std"], fmt="o", color=colors[kind], ms=7, capsize=3)
        ax.annotate(cell, (summary["mean"], y), fontsize=6, textcoords="offset points", xytext=(0, 7))
    ax.set_yticks([0, 1, 2], ["uniform random cells", "random search's best", "controller's best"])
    ax.set_ylim(-0.7, 2.7)
    ax.set_xlabel("test accuracy after training from scratch (the same recipe)")
    fig.tight_layout()
    fig.savefig(args.docs / "from_scratch.png", dpi=110)
    plt.close(fig)
    _save(args.docs / "results.json", results)
    print(json.dumps(results, indent=1))


def _per_cell(trained: dict[str, dict]) -> dict[str, dict]:
    """{cell: {"test_accuracy": [one per child seed], "mean", "std" (sample, 0 for one seed)}} from runs named
    ``CELL-sSEED``; runs without a test figure are left out."""
    import statistics

    grouped: dict[str, list[float]] = {}
    for name, row in trained.items():
        if row["test_accuracy"] is not None:
            grouped.setdefault(re.sub(r"-s\d+$", "", name), []).append(row["test_accuracy"])
    return {cell: {"test_accuracy": values, "mean": statistics.fmean(values),
                   "std": statistics.stdev(values) if len(values) > 1 else 0.0}
            for cell, values in sorted(grouped.items())}


def _save(path: Path, value) -> None:
    old = _load(path)
    path.write_text(json.dumps({**old, **value} if isinstance(value, dict) else value, indent=1) + "\n")


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--image-size", type=int)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--subset", type=int, default=2560, help="training samples of the shared weights (0: all)")
    p.add_argument("--controller-lr", type=float, default=0.01)
    p.add_argument("--search-minutes", type=float, default=4.5)
    p.add_argument("--train-minutes", type=float, default=1.2)
    p.add_argument("--train-epochs", type=int, default=50,
                   help="train stage: epochs of each child (the cosine schedule's length; --train-minutes caps it)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--random-cells", type=int, default=5)
    p.add_argument("--strategies", nargs="+", choices=("controller", "random"), default=["controller", "random"],
                   help="search stage: the strategies searched per seed")
    p.add_argument("--child-seeds", type=int, nargs="+", default=[0],
                   help="train stage: each cell is trained from scratch once per seed")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/nas-proxy"))
    p.add_argument("--docs", type=Path, default=Path("docs/nas"))
    p.add_argument("--score-images", type=int, default=2000, help="score stage: test images per child")
    p.add_argument("--stage", choices=("search", "finalize", "train", "score", "report", "all"), default="all")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stage, function in (("search", search_stage), ("finalize", finalize_stage), ("train", train_stage),
                            ("score", score_stage), ("report", report_stage)):
        if args.stage in (stage, "all"):
            function(args)


if __name__ == "__main__":
    main()
