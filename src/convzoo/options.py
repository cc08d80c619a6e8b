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
    classes: list[int] | None = None  # keep only these classes, relabelled 0..k-1 in this order (transfer learning)
    train_fraction: float = 1.0  # a fixed fraction of the training split (per class, same for every --seed)
    eval_fraction: float = 1.0  # a fixed fraction of the dev and test splits (cheaper evaluation)

    def __post_init__(self) -> None:
        for name in ("train_fraction", "eval_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be a fraction in (0, 1], got {value!r}")
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)
                                         or any(isinstance(c, bool) or not isinstance(c, int) or c < 0
                                                for c in self.classes)):
            raise ValueError(f"--classes must be distinct class indices >= 0, got {self.classes!r}")
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
