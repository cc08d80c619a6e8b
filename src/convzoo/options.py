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
    frames: int | None = None  # moving-mnist: frames of a clip (None: 16)
    width: int | None = None  # video ResNets: channels of conv2_x (None: the paper's 64)
    genotype: str | None = None  # nasnet: a genotype JSON file (``convzoo search`` writes one)
    model_options: dict | None = None  # more keywords of the model's builder (--model-option KEY=VALUE)
    classes: list[int] | None = None  # keep only these classes, relabelled 0..k-1 in this order (transfer learning)
    train_fraction: float = 1.0  # a fixed fraction of the training split (per class, same for every --seed)
    eval_fraction: float = 1.0  # a fixed fraction of the dev and test splits (cheaper evaluation)

    def __post_init__(self) -> None:
        for name in ("frames", "width"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.model_options is not None and (not isinstance(self.model_options, dict)
                                               or not all(isinstance(k, str) for k in self.model_options)):
            raise ValueError(f"--model-option must be KEY=VALUE pairs, got {self.model_options!r}")
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
class TextOptions:
    """What only text classification reads (``--data text:PATH``, ``kim_cnn``)."""

    fold: int | None = None  # a cross-validation set: the test fold, 1..folds (None: 1)
    folds: int | None = None  # a cross-validation set: the number of folds (None: 10)
    embeddings: str = "rand"  # rand | static | non-static | multichannel (Kim 2014, Sec. 3.2)
    word_vectors: str | None = None  # a word2vec/GloVe text file that initializes the embeddings
    embedding_dim: int = 300  # without --word-vectors (with them: the file's dimension)

    def __post_init__(self) -> None:
        if self.embeddings not in ("rand", "static", "non-static", "multichannel"):
            raise ValueError(f"--embeddings must be rand, static, non-static or multichannel, got {self.embeddings!r}")
        if self.embeddings != "rand" and not self.word_vectors:
            raise ValueError(f"--embeddings {self.embeddings} loads word vectors: give --word-vectors FILE")
        if self.folds is not None and self.folds < 2:
            raise ValueError(f"--folds must be at least 2, got {self.folds}")
        if self.fold is not None and not 1 <= self.fold <= (self.folds or 10):
            raise ValueError(f"--fold must be between 1 and --folds {self.folds or 10}, got {self.fold}")
        if self.embedding_dim < 1:
            raise ValueError(f"--embedding-dim must be positive, got {self.embedding_dim}")


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
class SegmentationOptions:
    """What only segmentation reads. ``aux_weight``, ``backbone_weights``, ``train_size``, ``val_size`` and
    ``hflip`` share their flags with classification or detection (the model's task decides whose they are)."""

    dice_weight: float = 0.0  # weight of the Dice loss added to the cross-entropy
    aux_weight: float = 0.4  # weight of the auxiliary head's loss (FCN/DeepLab "aux"; torchvision's 0.5 in refs)
    weight_maps: bool = False  # U-Net's weight maps (class balance + border term, Ronneberger et al. eq. 2)
    crop_size: int | None = None  # training crops and the evaluation size (None: shapes-seg its size, files 256)
    ignore_index: int = 255  # the label of pixels that count nowhere (VOC's void)
    base_width: int | None = None  # U-Net: the channels of the first step (the paper's 64)
    batch_norm: bool = False  # U-Net: BatchNorm after every 3x3 convolution (not in the paper)
    dropout: float | None = None  # U-Net: the drop-out rate at the end of the contracting path (default: the model's)
    output_stride: int | None = None  # dilated encoders: 8, 16 or 32 (default: the model's)
    encoder: str | None = None  # fcn, deeplabv3: a registry classifier as the encoder (default: resnet50)
    aux_loss: bool = False  # FCN, DeepLab: the auxiliary FCN head on the encoder's second-deepest stage
    backbone_weights: str | None = None  # ImageNet weights of the encoder classifier
    train_size: int = 1000  # training images: shapes-seg generates N, files take the first N (0 = all)
    val_size: int = 100  # dev (and shapes-seg test) images: the first N (0 = all)
    hflip: float = 0.5  # horizontal flip probability in training

    def __post_init__(self) -> None:
        for name in ("dice_weight", "aux_weight"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"--hflip must be a probability in [0, 1], got {self.hflip}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.ignore_index <= 255:
            raise ValueError(f"--ignore-index must be a label value in 0..255 (VOC's void is 255), got "
                             f"{self.ignore_index}")
        for name in ("crop_size", "base_width"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.output_stride not in (None, 8, 16, 32):
            raise ValueError(f"--output-stride must be 8, 16 or 32, got {self.output_stride}")
        for name in ("train_size", "val_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")


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
