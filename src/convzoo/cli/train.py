"""convzoo train: train any registered model; the task (classification, detection, segmentation, text) follows
from the model.

With no arguments it trains a small CNN on scikit-learn's bundled digits (under 2 minutes on a laptop CPU).

examples:
  convzoo train
  convzoo train --model resnet20 --data cifar10:DIR --epochs 30 --optimizer sgd --lr 0.1 --weight-decay 5e-4
  convzoo train --model mask_rcnn_r50_fpn --backbone resnet18 --small --data shapes --max-minutes 15 --clock cpu
  convzoo train --model unet --data shapes-seg --base-width 16 --epochs 8
  convzoo train --model kim_cnn --data text:DIR/rt-polarity.all --fold 3 --threads 1
  convzoo train --resume runs/resnet20-cifar10-20250101-120000 --epochs 40
  torchrun --nproc-per-node 2 -m convzoo train --data mnist:DIR        (DistributedDataParallel)

Options a task does not read are refused (--small for a classifier, --label-smoothing for a detector).
"""

from __future__ import annotations

import argparse
import dataclasses

from convzoo.options import (
    DEFAULT_MODEL,
    RESUMABLE,
    ClassificationOptions,
    DetectionOptions,
    SearchOptions,
    SegmentationOptions,
    TextOptions,
)

CLASSIFICATION = {f.name for f in dataclasses.fields(ClassificationOptions)}
DETECTION = {f.name for f in dataclasses.fields(DetectionOptions)}
SEGMENTATION = {f.name for f in dataclasses.fields(SegmentationOptions)}
TEXT = {f.name for f in dataclasses.fields(TextOptions)}
SEARCH = {f.name for f in dataclasses.fields(SearchOptions)}
# flags segmentation shares with another task (--aux-weight, --train-size, ...): the model's task takes them
SHARED = SEGMENTATION & (CLASSIFICATION | DETECTION)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,0.75, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64,128, got {text!r}") from None


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as num_cells=2, got {text!r}")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def add_train_arguments(p: argparse.ArgumentParser, model: str = DEFAULT_MODEL, data: str = "digits") -> None:
    """The options of ``convzoo train`` (and its alias ``convzoo detect train``, with other defaults)."""
    if (model, data) != (DEFAULT_MODEL, "digits"):  # an alias's defaults, applied unless resuming
        p.set_defaults(alias_defaults={"model": model, "data": data})
    engine = p.add_argument_group("what to train")
    a = engine.add_argument
    a("--model", help=f"a registered model (convzoo models) or spec:STRING (default: {model})")
    a("--data", help="classification: digits | mnist:DIR | fashion-mnist[:DIR] | cifar10:DIR | imagefolder:DIR | "
      "mnist1d:FILE | voxels[:DIR] | moving-mnist[:MNIST_DIR]; detection: shapes | coco:ANNOTATIONS.json:IMAGE_DIR "
      "| voc:DIR; segmentation: shapes-seg | seg:DIR | coco-seg:ANNOTATIONS.json:IMAGE_DIR; "
      "text: text:FILE | text:DIR | text:PREFIX (PREFIX.train/.dev/.test) (default: " + data + ")")
    a("--image-size", type=int, help="classification: resize images to this side (default: the data set's, 224 for "
      "photos); detection shapes: the side of the generated images (default: 128); shapes-seg: the same "
      "(default: 64)")
    a("--pretrained", metavar="FILE", help="initial weights of the whole model: a convzoo, torchvision or "
      "timm file (default: none)")
    a("--pretrained-source", choices=("auto", "convzoo", "torchvision", "timm"),
      help="naming of --pretrained and --backbone-weights files (default: auto)")
    run = p.add_argument_group("the run")
    a = run.add_argument
    a("--epochs", type=int, help="default: classification 10, detection 12, segmentation 10, text 25")
    a("--max-minutes", type=float, help="time budget: the schedule follows the time and training stops when it is "
      "used up (default: none)")
    a("--clock", choices=("wall", "cpu"), help="the clock of --max-minutes: wall time, or this process's CPU time "
      "(steady on a busy machine) (default: wall)")
    a("--batch-size", type=int, help="the global batch over all processes (default: classification 32, detection 4, "
      "segmentation 8, text 50)")
    a("--lr", type=float, help="peak learning rate (default: detection 0.02; else sgd 0.1, rmsprop 0.045, "
      "adam/adamw 1e-3, adadelta 1)")
    a("--optimizer", choices=("sgd", "rmsprop", "adam", "adamw", "adadelta"),
      help="default: classification adamw, detection sgd, text adadelta")
    a("--momentum", type=float, help="sgd and rmsprop momentum (default: 0.9)")
    a("--nesterov", action=argparse.BooleanOptionalAction,
      help="Nesterov momentum for sgd (default: classification on, detection off)")
    a("--schedule", choices=("constant", "step", "cosine", "one-cycle"), help="default: text constant, else cosine")
    a("--warmup", type=float, help="epochs of linear learning-rate warmup (default: classification 0, detection 0.4)")
    a("--milestones", type=_floats, help="step schedule: fractions of training where lr *= gamma (default: 0.5,0.75)")
    a("--gamma", type=float, help="step schedule factor (default: 0.1)")
    a("--weight-decay", type=float, help="L2 / decoupled decay, not on BatchNorm parameters and biases "
      "(default: classification 0, detection and segmentation 1e-4)")
    a("--grad-clip", type=float, help="clip the global gradient norm (default: classification off, detection 10)")
    a("--eval-every", type=int, help="evaluate the dev split every N epochs and after the last (default: 1)")
    a("--seed", type=int, help="default: 42")
    a("--deterministic", action="store_true", help="deterministic kernels only (bit-exact resume on the CPU)")
    a("--out", help="run folder (default: runs/<model>-<data>-<time>)")
    a("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint; only "
      f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may change (default: a new run)")
    a("--channels-last", action="store_true", help="NHWC memory layout for 2D models")
    a("--compile", action="store_true", help="torch.compile the model")
    a("--amp", choices=("bf16", "fp16"), help="mixed precision (CUDA only; default: fp32)")
    a("--device", help="cpu | cuda | cuda:N (default: cuda if available)")
    a("--workers", type=int, help="data-loading processes (default: 0, in the main process)")
    a("--threads", type=int, help="CPU threads of each process (default: 1 for digits, else PyTorch's)")
    a("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA only)")
    a("--progress", action=argparse.BooleanOptionalAction,
      help="progress bar (default: a bar on a terminal, else a line every 30 s)")
    classify = p.add_argument_group("classification")
    a = classify.add_argument
    a("--label-smoothing", type=float, help="epsilon of label smoothing (Inception-v3 uses 0.1; default: 0)")
    a("--aux-weight", type=float, help="weight of auxiliary-classifier losses (default: the model's, e.g. 0.3; "
      "segmentation: the aux head's, 0.4)")
    a("--freeze-backbone", action="store_true", help="train only the classifier; backbone BatchNorm in eval mode")
    a("--freeze-bn", action="store_true", help="replace every BatchNorm by a frozen one (fixed affine transform)")
    a("--augment", action=argparse.BooleanOptionalAction, help="data augmentation (default: the data set's)")
    a("--skip-bad-images", action="store_true", help="skip and count image files that cannot be decoded")
    a("--frames", type=int, help="moving-mnist: frames of a clip (default: 16; --image-size sets the side, 64)")
    a("--width", type=int, help="video ResNets (r3d_18, mc3_18, r2plus1d_18): channels of conv2_x, doubled in "
      "each later stage (default: 64, the paper's)")
    a("--genotype", metavar="FILE", help="nasnet: the cells as a genotype JSON file, e.g. the best_genotype.json of "
      "convzoo search (default: NASNet-A)")
    a("--model-option", dest="model_options", action="append", type=_key_value, metavar="KEY=VALUE",
      help="a keyword of the model's builder, e.g. num_cells=2 or stem=cifar for nasnet; repeatable (default: none)")
    detect = p.add_argument_group("detection")
    a = detect.add_argument
    a("--backbone", help="a registry classifier as the backbone, e.g. resnet18 (default: the model's)")
    a("--backbone-weights", metavar="FILE", help="ImageNet weights of the backbone classifier, e.g. "
      "torchvision's (also segmentation encoders) (default: none)")
    a("--small", action="store_true", help="thin heads, few proposals, BatchNorm trained (CPU-sized)")
    a("--roi-method", choices=("align", "pool"), help="RoIAlign or RoIPool (default: align)")
    a("--trainable-layers", type=int, help="backbone stages trained, 0-5 (default: the model's)")
    a("--anchor-sizes", type=_ints, metavar="S2,S3,S4,S5,S6", help="FPN anchor size per level P2..P6 "
      "(default: 32,64,128,256,512)")
    a("--min-size", type=int, help="shorter image side after resizing (default: the model's)")
    a("--max-size", type=int, help="longest image side after resizing (default: the model's)")
    a("--score-thresh", type=float, help="detections scoring below are dropped (default: 0.05)")
    a("--train-size", type=int, help="training images: shapes and shapes-seg generate N, files: the first N "
      "(segmentation 0: all) (default: 1000)")
    a("--val-size", type=int, help="dev images (coco/voc: the first N; 0: the training images; segmentation: the "
      "first N of the held-out split, 0: all) (default: 100)")
    a("--hflip", type=float, help="horizontal flip probability, detection and segmentation (default: 0.5)")
    a("--label-ids", choices=("contiguous", "category"), help="what the model's labels are: the data's categories "
      "in order, or their category ids as in torchvision's COCO checkpoints (default: contiguous)")
    a("--proposals", metavar="JSON", help="Fast R-CNN: external proposals "
      "{image_id: [[x1, y1, x2, y2], ...]} (default: none)")
    segment = p.add_argument_group("segmentation", "also --aux-weight, --backbone-weights, --train-size, "
                                   "--val-size, --hflip")
    a = segment.add_argument
    a("--dice-weight", type=float, help="weight of the soft Dice loss added to the cross-entropy (default: 0)")
    a("--weight-maps", action="store_true", help="U-Net's pixel weights: class balance + a border term "
      "(default: off)")
    a("--crop-size", type=int, help="side of the random training crops and of evaluation (longer side, padded) "
      "(default: shapes-seg its image size, files 256)")
    a("--ignore-index", type=int, help="label value of pixels that count nowhere (default: 255, VOC's void)")
    a("--base-width", type=int, help="U-Net: channels of the first step, doubled at each (default: 64)")
    a("--batch-norm", action="store_true", help="U-Net: BatchNorm after every 3x3 convolution (default: off, "
      "as the paper)")
    a("--dropout", type=float, help="U-Net: drop-out rate at the end of the contracting path (default: the "
      "model's, 0.5)")
    a("--encoder", help="fcn, deeplabv3: a registry classifier as the encoder, e.g. resnet18 (default: the "
      "model's, resnet50)")
    a("--aux-loss", action="store_true", help="FCN, DeepLab: an auxiliary head on the encoder's second-deepest "
      "stage, its loss weighted by --aux-weight (default: off)")
    a("--output-stride", type=int, choices=(8, 16, 32), help="dilated encoders: input size / feature size "
      "(default: the model's)")
    text = p.add_argument_group("text")
    a = text.add_argument
    a("--fold", type=int, help="a single-file set (cross-validation): the test fold, 1..N (default: 1)")
    a("--folds", type=int, help="a single-file set: the number of folds N (default: 10)")
    a("--embeddings", choices=("rand", "static", "non-static", "multichannel"), help="word vectors: random and "
      "trained, or from --word-vectors kept fixed, fine-tuned, or both as two channels (default: rand)")
    a("--word-vectors", metavar="FILE", help="word2vec or GloVe text file that initializes the word vectors "
      "(default: none)")
    a("--embedding-dim", type=int, help="word-vector size without --word-vectors (default: 300)")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train any model: a classifier, a detector (default: a small CNN on "
                              "the bundled digits)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              argument_default=argparse.SUPPRESS)
    add_train_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The TrainConfig of the options given on the command line; a resumed run: its saved one, updated with the
    options that may change (others are refused, naming them)."""
    from convzoo.train.config import TrainConfig
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "debug", "action")}
    alias_defaults = given.pop("alias_defaults", {})
    if "resume" in given:
        fixed = sorted(set(given) - set(RESUMABLE) - {"resume"})
        if fixed:
            raise ValueError(f"--{', --'.join(k.replace('_', '-') for k in fixed)} cannot change when resuming; "
                             f"only --{', --'.join(k.replace('_', '-') for k in RESUMABLE)} can")
        return dataclasses.replace(TrainConfig.load(given["resume"]), **{k: given[k] for k in given
                                                                         if k in RESUMABLE or k == "resume"})
    given = {**alias_defaults, **given}
    segmenter = bool(SHARED & set(given)) and _trains_segmenter(given.get("model", DEFAULT_MODEL))
    segmentation = {k: given.pop(k) for k in list(given) if k in SEGMENTATION and (segmenter or k not in SHARED)}
    classification = {k: given.pop(k) for k in list(given) if k in CLASSIFICATION}
    detection = {k: given.pop(k) for k in list(given) if k in DETECTION}
    text = {k: given.pop(k) for k in list(given) if k in TEXT}
    search = {k: given.pop(k) for k in list(given) if k in SEARCH}
    if "model_options" in classification:
        classification["model_options"] = dict(classification["model_options"])
    return TrainConfig(**given, classification=ClassificationOptions(**classification),
                       detection=DetectionOptions(**detection), segmentation=SegmentationOptions(**segmentation),
                       text=TextOptions(**text), search=SearchOptions(**search))


def _trains_segmenter(model: str) -> bool:
    from convzoo.tasks import model_task

    return model_task(model) == "segmentation"


def run(args: argparse.Namespace) -> dict:
    """Train; return the final metrics (losses, ``dev:*``, ``test:*``, ``run_dir``, ...)."""
    from convzoo.train.fit import fit

    return fit(config_from_args(args))
