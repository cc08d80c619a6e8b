"""What every experiment shares: one training run through the engine, recorded; statistics; the output files.

    ctx = Context("label_smoothing", size="quick", seeds=[0, 1, 2], out=Path("experiments/label_smoothing"))
    record = train(ctx, "eps0.1-seed0", TrainConfig(model="resnet20", data=ctx.cifar10(), seed=0, ...))
    record["curves"]        # metrics.jsonl of the run: one dict per epoch (loss, accuracy, dev:accuracy, step, ...)
    record["final"]         # fit()'s metrics: the last epoch's and test:*
    record["cpu_seconds"]   # process CPU time of the run (all threads), record["wall_seconds"] its wall time
    write_result(ctx, {"runs": [...], "summary": {...}}, figure)   # ctx.out/NAME.json and ctx.out/NAME.png

Every run trains with ``convzoo.train.fit`` (the one engine) in its own folder ``ctx.out/runs/LABEL``. A run whose
folder already holds ``record.json`` is read back instead of trained again, and one stopped mid-training (Ctrl-C,
a crash) is resumed from its ``last`` checkpoint, so an interrupted experiment continues where it stopped (delete
the folder to measure again). A run that another process is training (its folder's lock
is held) is waited for, so two processes of one experiment on one ``out``, one of them with ``reverse`` (the runs
in reverse order), share its work. A run that diverges (``NonFiniteLossError``) is recorded as
``diverged`` with the epochs it finished: that is a result, not a failure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from convzoo import __version__
from convzoo.train import NonFiniteLossError, TrainConfig, fit, load_run
from convzoo.train.checkpoint import has_checkpoint
from convzoo.train.runfolder import LOCK, RunFolderError

SIZES = ("quick", "medium", "full")


@dataclass
class Context:
    """One experiment's invocation: its ``size`` (quick: CI smoke test in seconds; medium: what a 2-core CPU
    affords; full: the paper's scale), the seeds, the output folder, the data root and the CPU threads."""

    name: str
    size: str = "full"
    seeds: list[int] = field(default_factory=lambda: [0])
    out: Path = Path("experiments")
    data_root: Path = Path("data")
    threads: int = 1
    device: str | None = None
    reverse: bool = False  # train the independent runs in reverse order (a second process sharing ``out``)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {self.size!r}")
        self.out, self.data_root = Path(self.out), Path(self.data_root)

    @property
    def quick(self) -> bool:
        return self.size == "quick"

    def ordered(self, jobs) -> list:
        """``jobs`` as a list, reversed with ``reverse``."""
        return list(jobs)[::-1] if self.reverse else list(jobs)

    def pick(self, quick, medium, full):
        """The value for this size."""
        return {"quick": quick, "medium": medium, "full": full}[self.size]

    def data_path(self, name: str) -> Path:
        """``data_root/name``, which must exist (a FileNotFoundError naming --data-root otherwise)."""
        path = self.data_root / name
        if not path.exists():
            raise FileNotFoundError(f"--data-root {self.data_root}: no {name} (expected {path})")
        return path

    def cifar10(self) -> str:
        """``--data`` of CIFAR-10 under the data root; an ImageFolder copy (JPEG) is converted once into the
        binary batch format under ``$CONVZOO_CACHE`` (default ``~/.cache/convzoo``), since decoding 60,000 files
        takes half a minute, for every run."""
        from convzoo.data.formats import read_cifar_batches

        root = self.data_path("cifar10")
        if read_cifar_batches(root) is not None:
            return f"cifar10:{root}"
        cache = Path(os.environ.get("CONVZOO_CACHE", "~/.cache/convzoo")).expanduser() / "cifar10-binary"
        if not (cache / "test_batch.bin").is_file():
            _write_cifar_binary(root, cache)
        return f"cifar10:{cache.resolve()}"


def _write_cifar_binary(root: Path, cache: Path) -> None:
    """The ImageFolder copy of CIFAR-10 as the six binary batches, in the order convzoo's ImageFolder reading
    gives (the same fixed shuffle), so that the splits are identical."""
    from convzoo.data.imagefolder import load_image_folder_tensor

    cache.mkdir(parents=True, exist_ok=True)
    x_train, y_train, _, _ = load_image_folder_tensor(root / "train")
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
    x_test, y_test, _, _ = load_image_folder_tensor(root / "test")
    x_train, y_train = x_train[order], y_train[order]
    size = len(x_train) // 5
    parts = [(f"data_batch_{i + 1}", x_train[i * size:(i + 1) * size], y_train[i * size:(i + 1) * size])
             for i in range(5)] + [("test_batch", x_test, y_test)]
    for name, images, labels in parts:
        records = torch.cat([labels.to(torch.uint8)[:, None], images.reshape(len(images), -1)], 1)
        temporary = cache / f"{name}.bin.{os.getpid()}.tmp"
        records.numpy().tofile(temporary)
        os.replace(temporary, cache / f"{name}.bin")


def machine() -> dict:
    """Facts about where the experiment ran (the figures depend on them)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average": load, "python": sys.version.split()[0],
            "torch": torch.__version__, "convzoo": __version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def train(ctx: Context, label: str, config: TrainConfig) -> dict:
    """Train ``config`` with the engine in ``ctx.out/runs/label`` and return its record (see the module doc)."""
    run_dir = ctx.out / "runs" / label
    saved = run_dir / "record.json"
    if _finished_elsewhere(run_dir, saved):
        return json.loads(saved.read_text())
    config = dataclasses.replace(config, out=str(run_dir), threads=ctx.threads, progress=False,
                                 device=ctx.device or config.device, artifacts=not ctx.quick)
    resumed = _interrupted(run_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    diverged = None
    try:
        final = fit(TrainConfig(resume=str(run_dir), threads=ctx.threads, progress=False,
                                device=config.device) if resumed else config)
    except NonFiniteLossError as error:
        final, diverged = {}, str(error)
    except RunFolderError:  # another process took the folder a moment before this one
        if _finished_elsewhere(run_dir, saved):
            return json.loads(saved.read_text())
        raise
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    curves = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    record = {"label": label, "seed": config.seed, "config": config.to_dict(), "run_dir": str(run_dir),
              "final": {k: v for k, v in final.items() if k != "run_dir"}, "curves": curves,
              "diverged": diverged, "wall_seconds": wall, "cpu_seconds": cpu, "resumed": resumed}
    saved.write_text(json.dumps(record, indent=1) + "\n")
    print(f"experiment {ctx.name}: {label}: {_short(record)} ({cpu:.0f} CPU s)", file=sys.stderr)
    return record


def _interrupted(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run stopped before its record was written (Ctrl-C, a crash): one with a ``last``
    checkpoint is continued from it (its CPU and wall seconds then count the continuation only); one that stopped
    before its first checkpoint is removed and trained again."""
    if not (run_dir / "config.json").is_file():
        return False
    if has_checkpoint(run_dir, "last"):
        return True
    print(f"experiment: {run_dir} stopped before its first checkpoint: training it again", file=sys.stderr)
    shutil.rmtree(run_dir)
    return False


def _finished_elsewhere(run_dir: Path, saved: Path) -> bool:
    """Whether the run's record exists, after waiting while another live process holds the run folder's lock."""
    lock = run_dir / LOCK
    while not saved.is_file() and lock.is_file():
        try:
            pid = json.loads(lock.read_text())["pid"]
        except (OSError, ValueError, KeyError, TypeError):  # being written or removed: look again
            time.sleep(1)
            continue
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError, TypeError, OverflowError):  # stale: fit takes it over
            break
        time.sleep(5)
    return saved.is_file()


def _short(record: dict) -> str:
    if record["diverged"]:
        return "diverged"
    final = record["final"]
    return " ".join(f"{k}={final[k]:.4f}" for k in ("accuracy", "test:accuracy", "test:segm:AP") if k in final)


@torch.no_grad()
def split_probabilities(record: dict, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities Tensor[N, K], labels Tensor[N]) of a trained run's last weights on its ``split``, through
    ``load_run`` and the run's own task and data."""
    from convzoo.models.aux import main_logits

    _, task, _, model = load_run(record["run_dir"], checkpoint="last")
    data = task.load_data()
    dataset = {"test": data.test, "dev": data.dev, "train": data.train}[split]
    probabilities, labels = [], []
    for start in range(0, len(dataset), 256):
        images, target = dataset.__getitems__(list(range(start, min(start + 256, len(dataset)))))
        probabilities.append(main_logits(model(images)).float().softmax(1))
        labels.append(target)
    return torch.cat(probabilities), torch.cat(labels)


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std", "n", "values"}``; std is the sample standard deviation (n - 1; 0 for one value)."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "values": values}


def pm(stats: dict, digits: int = 4) -> str:
    """``0.9123 +- 0.0041 (n=3)``."""
    return f"{stats['mean']:.{digits}f} +- {stats['std']:.{digits}f} (n={stats['n']})"


def difference(a: dict, b: dict) -> str:
    """``difference +0.0020, larger than the seeds' std 0.0014`` of two ``mean_std`` results (mean of ``a`` less
    mean of ``b``), against the larger of their sample standard deviations; with one seed there is no spread."""
    gain = a["mean"] - b["mean"]
    if min(a["n"], b["n"]) < 2:
        return f"difference {gain:+.4f}, one seed: no spread to compare with"
    spread = max(a["std"], b["std"])
    larger = "larger" if abs(gain) > spread else "not larger"
    return f"difference {gain:+.4f}, {larger} than the seeds' std {spread:.4f}"


def curve(record: dict, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric over a run's epochs (epochs without it are skipped)."""
    points = [(r["step"], r[key]) for r in record["curves"] if key in r]
    return [p[0] for p in points], [p[1] for p in points]


def write_result(ctx: Context, result: dict, figure) -> dict:
    """Write ``ctx.out/NAME.json`` (the result, the runs' total CPU and wall seconds, the machine, the size and
    seeds) and ``ctx.out/NAME.png`` (``figure``, a matplotlib Figure); return the result with ``json``/``png``."""
    import matplotlib.pyplot as plt

    runs = result.get("runs", [])
    result = {"experiment": ctx.name, "size": ctx.size, "seeds": ctx.seeds, "threads": ctx.threads,
              "machine": machine(), "cpu_seconds": sum(r["cpu_seconds"] for r in runs),
              "wall_seconds": sum(r["wall_seconds"] for r in runs), **result}
    ctx.out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = ctx.out / f"{ctx.name}.json", ctx.out / f"{ctx.name}.png"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    figure.tight_layout()
    figure.savefig(png_path, dpi=90)
    plt.close(figure)
    print(f"experiment {ctx.name}: {result.get('verdict', '')}\n  -> {json_path}, {png_path} "
          f"({result['cpu_seconds']:.0f} CPU s in the runs)", file=sys.stderr)
    return {**result, "json": str(json_path), "png": str(png_path)}


def figure(columns: int = 2, rows: int = 1, width: float = 5.0, height: float = 3.6):
    """A matplotlib (Agg) figure and its axes, a flat list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    return fig, [a for row in axes for a in row]
