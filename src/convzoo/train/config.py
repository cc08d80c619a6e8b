"""The options of one training run as a dataclass: the command line fills it, ``config.json`` records it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

# The embedded default: a small course-style CNN for scikit-learn's 8x8 digits (53 k parameters; 10 epochs reach
# about 99% test accuracy).
DEFAULT_MODEL = "spec:CB-32-3-1-same,M-2-2,CB-64-3-1-same,M-2-2,F,H-128,D-0.3"


@dataclass
class TrainConfig:
    """Everything that decides a run. Epoch-valued options (``warmup``) may be fractional."""

    model: str = DEFAULT_MODEL
    data: str = "digits"
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None  # None: the optimizer's default (sgd 0.1, rmsprop 0.045, adam/adamw 1e-3)
    optimizer: str = "adamw"  # sgd | rmsprop | adam | adamw
    momentum: float = 0.9
    nesterov: bool = True
    schedule: str = "cosine"  # constant | step | cosine | one-cycle
    warmup: float = 0.0  # epochs of linear warmup
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step schedule, fractions of training
    gamma: float = 0.1  # step schedule decay factor
    weight_decay: float = 0.0  # not applied to BatchNorm parameters and biases
    label_smoothing: float = 0.0
    aux_weight: float | None = None  # None: each model's own auxiliary-loss weight
    seed: int = 42
    deterministic: bool = False
    out: str | None = None  # default runs/<model>-<data>-<time>
    resume: str | None = None
    pretrained: str | None = None
    pretrained_source: str = "auto"
    freeze_backbone: bool = False
    freeze_bn: bool = False
    channels_last: bool = False
    compile: bool = False
    amp: str | None = None  # bf16 | fp16 (CUDA only)
    device: str | None = None  # default: cuda if available else cpu
    workers: int = 0
    threads: int | None = None  # intra-op CPU threads; None: 1 for digits (8x8 inputs gain nothing), else PyTorch's
    sync_bn: bool = False
    skip_bad_images: bool = False
    augment: bool | None = None  # None: the data set's default
    image_size: int | None = None
    grad_clip: float | None = None
    progress: bool | None = None  # None: a bar when stderr is a terminal

    def __post_init__(self) -> None:
        choices = {"optimizer": ("sgd", "rmsprop", "adam", "adamw"),
                   "schedule": ("constant", "step", "cosine", "one-cycle"), "amp": (None, "bf16", "fp16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {', '.join(map(str, allowed))}, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"--epochs and --batch-size must be positive, got {self.epochs} and {self.batch_size}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from a dict (e.g. a run's ``config.json``), ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        path = Path(run_dir) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} is not a convzoo run folder (no config.json)")
        return cls.from_dict(json.loads(path.read_text()))
