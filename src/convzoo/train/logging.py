"""What a run leaves: metrics per epoch as JSON lines and TensorBoard events, the course-like epoch line, plots.

    logger = RunLogger(run_dir)                        # run_dir/metrics.jsonl and run_dir/tensorboard/
    logger.log_epoch(3, {"loss": 0.21, "dev:accuracy": 0.945}, seconds=12.4)
    print(epoch_line(3, 10, 12.4, metrics))            # Epoch 3/10 12.4s loss=0.2104 dev:accuracy=0.9450
    plot_curves(read_metrics(run_dir / "metrics.jsonl"), run_dir / "curves.png")

Task-agnostic: any ``{name: float}`` metrics; names with a ``dev:``/``test:`` prefix are that split's
(``dev:bbox:AP`` is the dev split's ``bbox:AP``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

SPLITS = ("dev", "test")


def split_name(name: str) -> tuple[str, str]:
    """``"dev:bbox:AP"`` -> ``("dev", "bbox:AP")``; a name without a split prefix is the training split's."""
    split, sep, metric = name.partition(":")
    return (split, metric) if sep and split in SPLITS else ("train", name)


def epoch_line(epoch: int, epochs: int, seconds: float, metrics: dict[str, float]) -> str:
    """``Epoch 3/10 12.4s loss=0.2104 accuracy=0.9366 dev:loss=0.1872 dev:accuracy=0.9450`` (the course's format)."""
    values = " ".join(f"{name}={value:.4f}" for name, value in metrics.items())
    return f"Epoch {epoch}/{epochs} {seconds:.1f}s {values}"


class RunLogger:
    """Appends one JSON object per epoch to ``metrics.jsonl`` and writes the same scalars to TensorBoard.

    ``enabled=False`` (ranks other than 0) makes every method a no-op.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.writer = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def log_epoch(self, epoch: int, metrics: dict[str, float], seconds: float, **extra) -> None:
        if not self.enabled:
            return
        record = {"epoch": epoch, "time": round(seconds, 3), **metrics, **extra}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in {**metrics, **extra}.items():
                if isinstance(value, (int, float)):
                    split, metric = split_name(name)
                    self.writer.add_scalar(f"{metric}/{split}", value, epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (an absent file gives an empty list)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: str | Path, last_epoch: int) -> None:
    """Drop records after ``last_epoch`` (a resumed run rewrites the epochs it repeats)."""
    path = Path(path)
    records = [r for r in read_metrics(path) if r["epoch"] <= last_epoch]
    if path.is_file():
        path.write_text("".join(json.dumps(r) + "\n" for r in records))


def plot_curves(records: Sequence[dict], path: str | Path) -> Path:
    """One panel per metric (loss, accuracy, ...), train and dev as lines over epochs; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skip = ("epoch", "time", "lr", "step", "minutes")
    metrics = sorted({split_name(name)[1] for r in records for name in r
                      if name not in skip and isinstance(r[name], (int, float))})
    if len(metrics) > 8:  # many statistics (COCO's 12 per IoU type): the losses and the AP of each type
        metrics = [m for m in metrics if m.startswith("loss") or m.rpartition(":")[2] in ("AP", "accuracy", "mAP")]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for split in ("", "dev:"):
            points = [(r["epoch"], r[split + metric]) for r in records
                      if split + metric in r and math.isfinite(r[split + metric])]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=split.rstrip(":") or "train")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Tensor[num_classes, num_classes] int64: row = true class, column = predicted class."""
    index = targets.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str], path: str | Path,
                          title: str = "test") -> Path:
    """The confusion matrix as a PNG heat map with counts (rows true, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(matrix)
    side = min(12, 2 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix.numpy(), cmap="Blues")
    if n <= 30:
        names = list(class_names) or [str(i) for i in range(n)]
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        peak = matrix.max().item() or 1
        for (i, j), count in zip(((i, j) for i in range(n) for j in range(n)), matrix.flatten().tolist()):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if count > peak / 2 else "black")
    accuracy = matrix.diag().sum().item() / max(1, matrix.sum().item())
    ax.set_title(f"{title}: accuracy {accuracy:.4f}")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
