"""What a task supplies to the one training engine (``convzoo.train``), and nothing more.

A task knows its data, its model and its losses; the engine owns the loop and every guarantee around it (resume,
checkpoints, Ctrl-C, non-finite losses, AMP, compile, DDP, the time budget, logs). The contract:

    task = ClassificationTask(model="resnet20", data="cifar10:DIR", options=ClassificationOptions())
    data = task.load_data()                      # TaskData: train/dev/test data sets + the run's JSON-able info
    model = task.build_model(data.info)          # an nn.Module on the CPU, initialized (pretrained weights, ...)
    batch = task.to_device(task.collate(samples), device)
    losses, tallies = task.train_step(model, batch)   # {name: scalar loss}, {name: sum over the batch}; "count"
    metrics = task.evaluate(model, data.dev, device, reducer, info=data.info)   # {"accuracy": ...}, {"bbox:AP": ...}

``info`` is everything ``predict`` and ``evaluate`` need besides the weights (class names, the input contract,
normalization, the model's build options); the engine writes it into ``config.json``, so a run folder is
self-contained: :meth:`Task.predict_files` runs from ``info`` alone and never reloads the training set.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass
class TaskData:
    """The splits of a task's data (``test`` None when the data has none) and the run's JSON-able ``info``."""

    train: Dataset
    dev: Dataset
    test: Dataset | None
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # lines the engine prints (e.g. "flips are off: ...")


def _same(value):
    return value


@dataclass(frozen=True)
class Reducer:
    """How evaluation combines the shards of several processes; identity for one process.

    ``rank``/``world_size`` pick the shard (``range(rank, len(dataset), world_size)``); ``sum`` adds a tensor
    over processes (every process gets the total); ``gather`` concatenates the lists of every process.
    """

    rank: int = 0
    world_size: int = 1
    sum: Callable[[torch.Tensor], torch.Tensor] = _same
    gather: Callable[[list], list] = _same

    def shard(self, dataset: Dataset) -> list[int]:
        return list(range(self.rank, len(dataset), self.world_size))


ONE_PROCESS = Reducer()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class Task(ABC):
    """One kind of learning problem on the engine. Subclasses set ``name``, ``score`` (the dev metric, higher is
    better, that picks the ``best`` checkpoint) and ``defaults`` (engine options whose default differs here)."""

    name: ClassVar[str]
    score: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    # DistributedDataParallel must look for parameters a step leaves unused (e.g. an RPN fed external proposals)
    find_unused_parameters: ClassVar[bool] = False

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """The metrics of the epoch line (``metrics.jsonl`` and TensorBoard get them all)."""
        return metrics

    @abstractmethod
    def load_data(self) -> TaskData:
        """The training run's data and info."""

    @abstractmethod
    def build_model(self, info: dict, initialize: bool = True) -> nn.Module:
        """The model (CPU, train mode) for ``info``; ``initialize`` loads initial weights the options name
        (pretrained files); ``False`` when a checkpoint's weights follow."""

    @abstractmethod
    def collate(self, samples):
        """The loader's ``collate_fn``."""

    @abstractmethod
    def to_device(self, batch, device: torch.device, channels_last: bool = False):
        """The batch on ``device``."""

    @abstractmethod
    def train_step(self, model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Named scalar losses (their sum is optimized) and tallies (sums over the batch; ``count`` required)."""

    def train_metrics(self, tallies: dict[str, float]) -> dict[str, float]:
        """Epoch metrics beyond the losses from the summed ``tallies`` (e.g. training accuracy)."""
        return {}

    def after_optimizer_step(self, model: nn.Module) -> None:
        """Called by the engine after every optimizer step (e.g. a max-norm constraint on weights); no-op."""
        return None

    def set_train_mode(self, model: nn.Module) -> None:
        """``model.train()``, or what the task's options need instead (frozen parts in eval mode)."""
        model.train()

    @abstractmethod
    def evaluate(self, model: nn.Module, dataset: Dataset, device: torch.device, reducer: Reducer = ONE_PROCESS,
                 out: Path | None = None, split: str = "test", info: dict | None = None) -> dict[str, float]:
        """Metrics of ``model`` on this process's shard of ``dataset``, reduced over processes, with ``count``
        (the samples); ``info`` is the run's (class names, ...); with ``out``, also the task's artifacts of the
        split (a confusion matrix, ...) written into that folder by rank 0."""

    @abstractmethod
    def predict_files(self, model: nn.Module, info: dict, paths: Sequence[str], device: torch.device,
                      out: Path | None, **options) -> dict:
        """Predictions for input files (images, ...) from ``info`` alone; printed to stdout, returned."""


def load_pretrained(model: nn.Module, path: str | Path, source: str = "auto") -> nn.Module:
    """Load a convzoo, torchvision or timm checkpoint file into ``model`` through the weights loader.

    A classifier whose shape differs from the file's (another ``num_classes``) keeps its fresh initialization and
    the rest is loaded; any other mismatch is an error naming the keys. ``source="auto"`` tries convzoo's names,
    then torchvision's, then timm's, and reports the first failure if none fits.
    """
    from convzoo.weights import first_fitting_source, load_weights

    def load(candidate: str) -> nn.Module:
        report = load_weights(model, path, source=candidate, ignore_mismatched_head=True)
        print(f"--pretrained {path} ({candidate}): {report}", file=sys.stderr)
        return model

    return first_fitting_source(source, load)
