"""The options of a training run that the command line needs before torch is imported: the embedded default
model, the options a resume may change, and each task's own option dataclass (validated where they enter, for the
command line and the API alike). ``convzoo.train.TrainConfig`` nests the task options."""

from __future__ import annotations

from dataclasses import dataclass

# The embedded default: a small course-style CNN for scikit-learn's 8x8 digits (53 k parameters; 10 epochs reach
# about 99% test accuracy).
DEFAULT_MODEL = "spec:CB-32-3-1-same,M-2-2,CB-64-3-1-same,M-2-2,F,H-128,D-0.3"

# Options that may change when resuming a run; every other option comes from the run's config.json.
RESUMABLE = ("epochs", "max_minutes", "eval_every", "device", "workers", "threads", "progress")


@dataclass
class ClassificationOptions:
    """What only classification reads (the engine's options are in ``TrainConfig``)."""

    label_smoothing: float = 0.0
    aux_weight: float | None = None  # None: each model's own auxiliary-loss weight
    freeze_backbone: bool = False
    freeze_bn: bool = False
    augment: bool | None = None  # None: the data set's default
    skip_bad_images: bool = False
    genotype: str | None = None  # nasnet: a genotype JSON file (``convzoo search`` writes one)
    model_options: dict | None = None  # more keywords of the model's builder (--model-option KEY=VALUE)

    def __post_init__(self) -> None:
        if self.model_options is not None and (not isinstance(self.model_options, dict)
                                               or not all(isinstance(k, str) for k in self.model_options)):
            raise ValueError(f"--model-option must be KEY=VALUE pairs, got {self.model_options!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.aux_weight is not None and not 0.0 <= self.aux_weight < float("inf"):
            raise ValueError(f"--aux-weight must be a finite number >= 0, got {self.aux_weight}")



@dataclass
class DetectionOptions:
    """What only detection reads (the engine's options are in ``TrainConfig``)."""

    backbone: str | None = None  # a registry classifier, e.g. resnet18 (default: the builder's)
    small: bool = False  # thin heads, few proposals, BatchNorm trained (CPU-sized)
    roi_method: str = "align"  # align | pool
    trainable_layers: int | None = None  # backbone stages trained (5: all; default: the builder's)
    anchor_sizes: list[int] | None = None  # FPN builders: one size per level P2..P6
    min_size: int | None = None  # shorter image side after resizing (default: the builder's)
    max_size: int | None = None  # longest image side after resizing
    score_thresh: float = 0.05  # detections below are dropped
    train_size: int = 1000  # training images (coco/voc: the first N; 0 = all)
    val_size: int = 100  # evaluation images (coco/voc: the first N of the same set; 0 = the training images)
    hflip: float = 0.5  # horizontal flip probability
    proposals: str | None = None  # Fast R-CNN: JSON {image_id: [[x1, y1, x2, y2], ...]}
    backbone_weights: str | None = None  # ImageNet weights of the backbone classifier
    # contiguous: label i is the data's i-th category; category: the label is the category id itself, as in
    # torchvision's COCO checkpoints (91 outputs for COCO's ids 1..90)
    label_ids: str = "contiguous"

    def __post_init__(self) -> None:
        if self.roi_method not in ("align", "pool"):
            raise ValueError(f"--roi-method must be align or pool, got {self.roi_method!r}")
        if self.label_ids not in ("contiguous", "category"):
            raise ValueError(f"--label-ids must be contiguous or category, got {self.label_ids!r}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"--hflip must be a probability in [0, 1], got {self.hflip}")
        if not 0.0 <= self.score_thresh <= 1.0:
            raise ValueError(f"--score-thresh must be in [0, 1], got {self.score_thresh}")
        for name in ("train_size", "val_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("min_size", "max_size", "trainable_layers"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "trainable_layers" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.min_size is not None and self.max_size is not None and self.max_size < self.min_size:
            raise ValueError(f"--max-size {self.max_size} is smaller than --min-size {self.min_size}; the longest "
                             "side cannot be shorter than the shortest")
        if self.anchor_sizes is not None and any(size <= 0 for size in self.anchor_sizes):
            raise ValueError(f"--anchor-sizes must be positive, got {self.anchor_sizes}")


@dataclass
class SearchOptions:
    """What only the architecture search reads (``convzoo search``; the engine's options are in ``TrainConfig``)."""

    strategy: str = "controller"  # controller (NASNet's RNN, on ENAS's shared weights) | random (the baseline)
    policy: str = "reinforce"  # reinforce (moving-average baseline) | ppo (the paper's option)
    cells: int = 1  # N: normal cells per stage of the proxy network
    filters: int = 8  # the first stage's filters
    blocks: int = 5  # B: blocks per cell
    subset: int = 0  # train the shared weights on the first N training samples (0: all)
    controller_steps: int = 10  # controller updates (random: scoring rounds) after each epoch
    samples: int = 4  # architectures sampled for each update
    reward_batch: int = 128  # dev samples that score one architecture
    controller_lr: float = 3.5e-3
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.9
    ppo_epochs: int = 4
    ppo_clip: float = 0.2
    top: int = 5  # genotypes kept (best first)

    def __post_init__(self) -> None:
        choices = {"strategy": ("controller", "random"), "policy": ("reinforce", "ppo")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be {' or '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("cells", "filters", "blocks", "controller_steps", "samples", "reward_batch", "ppo_epochs", "top"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if isinstance(self.subset, bool) or not isinstance(self.subset, int) or self.subset < 0:
            raise ValueError(f"--subset must be an integer >= 0, got {self.subset!r}")
        if not 0 < self.controller_lr < float("inf") or not 0 <= self.entropy_weight < float("inf"):
            raise ValueError(f"--controller-lr must be > 0 and --entropy-weight >= 0, got {self.controller_lr} and "
                             f"{self.entropy_weight}")
        if not 0 <= self.baseline_decay < 1 or not 0 < self.ppo_clip < 1:
            raise ValueError(f"--baseline-decay must be in [0, 1) and --ppo-clip in (0, 1), got "
                             f"{self.baseline_decay} and {self.ppo_clip}")
