"""Kim (2014) CNN-rand on the seven sentence sets, through the engine (``convzoo.train.fit``), beside the paper.

Each run is ``convzoo train --model kim_cnn --data text:FILE`` with the text task's defaults (Adadelta, batch 50,
25 epochs, constant learning rate, dropout 0.5, max-norm 3); the reported test accuracy is that of the best dev
epoch (Kim's protocol: early stopping on a dev set), read back from the run folder with ``load_run(run, "best")``
and the task's own ``evaluate``. Sets without a test split run K-fold cross-validation (folds 1..--folds-run of 10).

    python benchmarks/bench_kim_text.py run --sets MR,TREC --folds-run 1 --max-minutes 3 --json runs/kim.json
    python benchmarks/bench_kim_text.py table runs/kim.json          # the table of every result in the files
    python benchmarks/bench_kim_text.py overhead                     # data preparation vs a training step

``--max-minutes`` is a CPU-time budget per run (``--clock cpu``); the 25 planned epochs end early when it is used up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Kim (2014), Table 2, the CNN-rand row; the file of each set in ../shared/data/text-classification
PAPER = {"MR": 76.1, "SST-1": 45.0, "SST-2": 82.7, "Subj": 89.6, "TREC": 91.2, "CR": 79.8, "MPQA": 83.4}
FILES = {"MR": "rt-polarity.all", "SST-1": "stsa.fine", "SST-2": "stsa.binary", "Subj": "subj.all", "TREC": "TREC",
         "CR": "custrev.all", "MPQA": "mpqa.all"}
CROSS_VALIDATED = {"MR", "Subj", "CR", "MPQA"}


def data_dir() -> Path:
    root = Path(os.environ.get("CONVZOO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    return root / "text-classification"


def run_one(name: str, fold: int | None, args: argparse.Namespace) -> dict:
    """One engine run of ``name`` (fold ``fold``); the test accuracy of its best dev checkpoint, and its cost."""
    import torch

    from convzoo.tasks import TextOptions
    from convzoo.train import TrainConfig, fit
    from convzoo.train.run import load_run

    out = Path(args.runs) / (f"{name}-fold{fold}" if fold else name)
    config = TrainConfig(model="kim_cnn", data=f"text:{data_dir() / FILES[name]}", epochs=args.epochs,
                         max_minutes=args.max_minutes, clock="cpu", threads=args.threads, seed=args.seed,
                         device="cpu", progress=False, out=str(out), text=TextOptions(fold=fold))
    started = time.process_time()
    final = fit(config)
    seconds = time.process_time() - started
    _, task, info, model = load_run(out, "best")
    data = task.load_data()
    best = task.evaluate(model, data.test, torch.device("cpu"), info=info)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_epoch = max(records, key=lambda r: r.get("dev:accuracy", -1))["epoch"]
    epochs = final["steps"] / (len(data.train) // 50)  # a budget may end training within an epoch
    return {"set": name, "fold": fold, "test_best_dev": 100 * best["accuracy"],
            "test_last": 100 * final["test:accuracy"], "epochs": round(epochs, 1), "best_epoch": best_epoch,
            "steps": final["steps"], "cpu_seconds": round(seconds, 1), "run_dir": str(out)}


def table(results: list[dict]) -> str:
    """Mean test accuracy (best dev epoch) per set beside the paper's CNN-rand row."""
    lines = ["| set | paper CNN-rand | convzoo (best dev epoch) | convzoo (last epoch) | folds run | epochs run | "
             "CPU min | difference |", "|---|---|---|---|---|---|---|---|"]
    for name, paper in PAPER.items():
        runs = [r for r in results if r["set"] == name]
        if not runs:
            lines.append(f"| {name} | {paper:.1f} | not run | | | | | |")
            continue
        best = sum(r["test_best_dev"] for r in runs) / len(runs)
        last = sum(r["test_last"] for r in runs) / len(runs)
        folds = ", ".join(str(r["fold"]) for r in runs) if runs[0]["fold"] else "test split"
        epochs = ", ".join(str(r["epochs"]) for r in runs)
        minutes = sum(r["cpu_seconds"] for r in runs) / 60
        lines.append(f"| {name} | {paper:.1f} | {best:.1f} | {last:.1f} | {folds} | {epochs} | {minutes:.1f} | "
                     f"{best - paper:+.1f} |")
    return "\n".join(lines)


def overhead(args: argparse.Namespace) -> None:
    """CPU seconds per batch of 50 MR sentences: tokenizing and encoding the raw lines, padding (what the loader
    does each step), and one engine training step (to_device, train_step, backward, Adadelta, max-norm)."""
    import torch

    from convzoo.data.text import decode, encode, tokenize
    from convzoo.tasks import TextClassificationTask
    from convzoo.train.optim import build_optimizer, param_groups

    torch.set_num_threads(args.threads)
    path = data_dir() / FILES["MR"]
    task = TextClassificationTask("kim_cnn", f"text:{path}")
    data = task.load_data()
    model = task.build_model(data.info)
    optimizer = build_optimizer("adadelta", param_groups(model, 0.0), 1.0)
    lines = [line.partition(" ")[2] for line in decode(path).split("\n") if line.strip()]
    batches = [list(range(start, start + 50)) for start in range(0, 50 * args.batches, 50)]

    def clock(function) -> float:
        function(batches[0])
        started = time.process_time()
        for batch in batches:
            function(batch)
        return (time.process_time() - started) / len(batches)

    def prepare(batch):
        return encode([tokenize(lines[i]) for i in batch], data.info["vocab"])

    def step(batch):
        inputs = task.to_device(task.collate(data.train.__getitems__(batch)), torch.device("cpu"))
        losses, _ = task.train_step(model, inputs)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        task.after_optimizer_step(model)

    model.train()
    tokenizing, padding, training = clock(prepare), clock(data.train.__getitems__), clock(step)
    print(f"per batch of 50 (CPU seconds, {args.threads} thread(s), {args.batches} batches): tokenize+encode "
          f"{tokenizing * 1e3:.2f} ms, pad (the loader's collation) {padding * 1e3:.2f} ms, training step "
          f"{training * 1e3:.1f} ms; data preparation = {100 * (tokenizing + padding) / training:.2f}% of a step "
          f"(the loader pads only: {100 * padding / training:.2f}%)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="train and evaluate, appending results to --json")
    run.add_argument("--sets", default=",".join(PAPER), help="comma-separated (default: all seven)")
    run.add_argument("--folds-run", type=int, default=10, help="folds 1..N of the 10-fold sets (default: 10)")
    run.add_argument("--epochs", type=int, default=25, help="planned epochs (default: 25, Kim's)")
    run.add_argument("--max-minutes", type=float, default=None, help="CPU minutes per run (default: no budget)")
    run.add_argument("--threads", type=int, default=1, help="default: 1")
    run.add_argument("--seed", type=int, default=42, help="default: 42")
    run.add_argument("--runs", default="runs/kim", help="folder of the run folders (default: runs/kim)")
    run.add_argument("--json", default="runs/kim/results.json", help="results file (default: runs/kim/results.json)")
    show = sub.add_parser("table", help="print the table of result files")
    show.add_argument("files", nargs="+")
    cost = sub.add_parser("overhead", help="data preparation vs a training step, on MR")
    cost.add_argument("--threads", type=int, default=1, help="default: 1")
    cost.add_argument("--batches", type=int, default=20, help="default: 20")
    args = parser.parse_args(argv)
    if args.action == "overhead":
        overhead(args)
        return 0
    if args.action == "table":
        results = [r for f in args.files for r in json.loads(Path(f).read_text())]
        print(table(results))
        return 0
    names = args.sets.split(",")
    unknown = [n for n in names if n not in PAPER]
    if unknown:
        parser.error(f"--sets: unknown {', '.join(unknown)}; expected some of {', '.join(PAPER)}")
    results_file = Path(args.json)
    results = json.loads(results_file.read_text()) if results_file.is_file() else []
    for name in names:
        for fold in (range(1, args.folds_run + 1) if name in CROSS_VALIDATED else [None]):
            result = run_one(name, fold, args)
            results.append(result)
            results_file.parent.mkdir(parents=True, exist_ok=True)
            results_file.write_text(json.dumps(results, indent=1) + "\n")
            print(json.dumps(result), file=sys.stderr, flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
