"""The options of one training run as a dataclass: the command line fills it, ``config.json`` records it.

    config = TrainConfig(model="mask_rcnn_r50_fpn", data="shapes", detection=DetectionOptions(small=True))
    config = config.resolved(task.defaults)   # None fields get the task's defaults (batch 4, sgd, ... for detection)

The engine's options are flat fields; what only one task reads is a nested dataclass (``classification``,
``detection``), validated where it enters. ``None`` means "the task's default" (:attr:`Task.defaults`, then
:data:`ENGINE_DEFAULTS`); the run folder records the resolved values, so a resume never depends on defaults that
changed in between.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convzoo.options import (
    DEFAULT_MODEL,
    ClassificationOptions,
    DetectionOptions,
    SearchOptions,
    SegmentationOptions,
    TextOptions,
)

# The defaults of the options a task may set otherwise (``Task.defaults``).
ENGINE_DEFAULTS: dict[str, Any] = {"epochs": 10, "batch_size": 32, "optimizer": "adamw", "weight_decay": 0.0,
                                   "warmup": 0.0, "grad_clip": None, "nesterov": True, "schedule": "cosine"}
LR_DEFAULTS = {"sgd": 0.1, "rmsprop": 0.045, "adam": 1e-3, "adamw": 1e-3, "adadelta": 1.0}
CHOICES = {"optimizer": ("sgd", "rmsprop", "adam", "adamw", "adadelta"),
           "schedule": ("constant", "step", "cosine", "one-cycle"),
           "amp": (None, "bf16", "fp16"), "clock": ("wall", "cpu")}
FLOAT32_MAX = 3.4028234663852886e38
# the nested option groups and the task that reads each
TASK_OPTIONS = {"classification": ClassificationOptions, "detection": DetectionOptions,
                "segmentation": SegmentationOptions, "text": TextOptions, "search": SearchOptions}


@dataclass
class TrainConfig:
    """Everything that decides a run. Epoch-valued options (``warmup``) may be fractional; None: the task's."""

    model: str = DEFAULT_MODEL
    data: str = "digits"
    epochs: int | None = None  # classification 10, detection 12
    batch_size: int | None = None  # the global batch over all processes: classification 32, detection 4
    lr: float | None = None  # None: the optimizer's default (sgd 0.1, rmsprop 0.045, adam/adamw 1e-3, adadelta 1)
    optimizer: str | None = None  # sgd | rmsprop | adam | adamw | adadelta (classification adamw, detection sgd,
    # text adadelta)
    momentum: float = 0.9
    nesterov: bool | None = None
    schedule: str | None = None  # constant | step | cosine | one-cycle (text constant, else cosine)
    warmup: float | None = None  # epochs of linear warmup
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step schedule, fractions of training
    gamma: float = 0.1  # step schedule decay factor
    weight_decay: float | None = None  # not applied to BatchNorm parameters and biases
    grad_clip: float | None = None  # max global gradient norm
    max_minutes: float | None = None  # a time budget: the schedule runs on progress and training stops on time
    clock: str = "wall"  # wall | cpu: the clock of --max-minutes
    eval_every: int = 1  # evaluate dev every N epochs (and always after the last)
    seed: int = 42
    deterministic: bool = False
    out: str | None = None  # default runs/<model>-<data>-<time>
    resume: str | None = None
    pretrained: str | None = None
    pretrained_source: str = "auto"
    image_size: int | None = None
    channels_last: bool = False
    compile: bool = False
    amp: str | None = None  # bf16 | fp16 (CUDA only)
    device: str | None = None  # default: cuda if available else cpu
    workers: int = 0
    threads: int | None = None  # intra-op CPU threads; None: 1 for digits (8x8 inputs gain nothing), else PyTorch's
    sync_bn: bool = False
    progress: bool | None = None  # None: a bar when stderr is a terminal, else a line every 30 s
    artifacts: bool = True  # False: no curves.png and no evaluation files (confusion PNGs, detections JSON)
    classification: ClassificationOptions = field(default_factory=ClassificationOptions)
    detection: DetectionOptions = field(default_factory=DetectionOptions)
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)
    text: TextOptions = field(default_factory=TextOptions)
    search: SearchOptions = field(default_factory=SearchOptions)

    def __post_init__(self) -> None:
        for name, kind in TASK_OPTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _options_from_dict(kind, value, name))
            elif not isinstance(value, kind):
                raise TypeError(f"TrainConfig.{name} must be a {kind.__name__}, got {type(value).__name__}")
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed and not (name in ("optimizer", "schedule") and value is None):
                raise ValueError(f"--{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        integers = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                    "threads": self.threads, "image_size": self.image_size, "workers": self.workers, "seed": self.seed}
        for name, value in integers.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"--{name.replace('_', '-')} must be an integer, got {value!r}")
        numbers = {"lr": self.lr, "momentum": self.momentum, "warmup": self.warmup, "gamma": self.gamma,
                   "weight_decay": self.weight_decay, "max_minutes": self.max_minutes, "grad_clip": self.grad_clip}
        for name, value in numbers.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"--{name.replace('_', '-')} must be a number, got {value!r}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                    "threads": self.threads, "image_size": self.image_size}
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        non_negative = {"lr": self.lr, "momentum": self.momentum, "warmup": self.warmup, "gamma": self.gamma,
                        "weight_decay": self.weight_decay, "max_minutes": self.max_minutes, "workers": self.workers}
        for name, value in non_negative.items():
            if value is not None and not (0 <= value < math.inf):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if self.lr is not None and self.lr > FLOAT32_MAX:  # finite here, infinite in the float32 parameters
            raise ValueError(f"--lr {self.lr} overflows float32 (the parameters' type); expected a learning rate such "
                             "as 0.1")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"--grad-clip must be a positive number, got {self.grad_clip}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"--milestones must be fractions of training in (0, 1), got {self.milestones}")
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"--device must be cpu, cuda, cuda:N or mps, got {self.device!r}")
        for name in ("model", "data"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"--{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.pretrained_source not in ("auto", "convzoo", "torchvision", "timm"):
            raise ValueError(f"--pretrained-source must be auto, convzoo, torchvision or timm, "
                             f"got {self.pretrained_source!r}")

    def resolved(self, defaults: dict[str, Any]) -> TrainConfig:
        """This config with every None option a task may set filled in: ``defaults`` (the task's), then the
        engine's; ``lr`` from the optimizer."""
        values = {name: defaults.get(name, ENGINE_DEFAULTS[name]) for name in ENGINE_DEFAULTS
                  if getattr(self, name) is None}
        config = dataclasses.replace(self, **values)
        if config.lr is None:  # the task's learning rate belongs to the task's optimizer
            same = config.optimizer == defaults.get("optimizer", ENGINE_DEFAULTS["optimizer"])
            config.lr = defaults["lr"] if "lr" in defaults and same else LR_DEFAULTS[config.optimizer]
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from a dict (e.g. a run's ``config.json``), ignoring keys this version does not know; the
        flat classification options of older run folders move into ``classification``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = dict(values)
        older = {k: values.pop(k) for k in list(values) if k not in names
                 and k in {f.name for f in dataclasses.fields(ClassificationOptions)}}
        if older:
            values["classification"] = {**older, **values.get("classification", {})}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        """The config of a run folder (its ``config.json``)."""
        return cls.from_dict(read_run_file(run_dir)["config"])


def _options_from_dict(kind: type, values: dict, name: str):
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {name} option(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    return kind(**values)


def read_run_file(run_dir: str | Path) -> dict:
    """``{"config": ..., "task": ..., "info": ...}`` of a run folder's ``config.json`` (older folders: the config
    alone, without task and info)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a convzoo run folder (no config.json)")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    return saved if "config" in saved else {"config": saved, "task": None, "info": None}


def absolute_data(spec: str) -> str:
    """``--data`` with each of its paths made absolute (``mnist:data/mnist`` -> ``mnist:/home/u/data/mnist``), so a
    run folder names its data from any directory."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        return spec
    parts = [str(Path(part).resolve()) if part and Path(part).exists() else part for part in rest.split(":")]
    return f"{kind}:{':'.join(parts)}"
