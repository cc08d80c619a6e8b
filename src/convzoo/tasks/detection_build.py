"""What the detection task builds: its options, its data sets from ``--data``, and the detector from JSON-able
build options (kept in the run's ``config.json``, so that ``evaluate``/``predict`` rebuild the same model).

    --data shapes                        generated circles, rectangles, triangles (masks, 3 corner keypoints)
    --data coco:ANNOTATIONS.json:IMAGES  a COCO instances/keypoints file and its image folder
    --data voc:FOLDER                    PASCAL VOC (Annotations/, JPEGImages/)
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from convzoo.data.detection_files import CocoDetection, VocDetection
from convzoo.data.detection_shapes import ShapesDataset
from convzoo.detection.models import HeadWidths
from convzoo.detection.roi_heads import RoIHeadsConfig
from convzoo.detection.rpn import RPNConfig
from convzoo.options import DetectionOptions
from convzoo.registry import create_model, get_model_builder

# --small: a CPU-sized model for 128-px images (thin heads, fewer proposals and RoIs, BatchNorm trained). The mask
# head runs on every positive RoI (up to 16 an image): at 128 channels it took half of a training step's forward
SMALL = {"widths": HeadWidths(fpn=128, box=256, mask=64, keypoint=64), "frozen_bn": False, "trainable_layers": 5,
         "rpn": RPNConfig(pre_nms_top_n_train=600, post_nms_top_n_train=300, pre_nms_top_n_test=300,
                          post_nms_top_n_test=100), "roi_batch": 64}
# the --small widths of run folders written before the build options recorded them (so that those runs still load)
SMALL_WIDTHS_BEFORE_RECORDED = HeadWidths(fpn=128, box=256, mask=128, keypoint=128)


def load_detection_data(spec: str, split: str, size: int, image_size: int, seed: int) -> Dataset:
    """``shapes`` | ``coco:ANN:IMAGES`` | ``voc:DIR`` -> a data set of ``split`` ("train", "dev", "test").

    ``shapes`` generates ``size`` images (1000 if 0) from a seed per split (train ``seed``, dev ``seed + 1``,
    test ``seed + 2``); COCO and VOC take their first ``size`` images (all if 0): dev is then a subset of the
    training images (an overfitting check), and there is no test split.
    """
    kind, _, rest = spec.partition(":")
    indices = list(range(size)) if size > 0 else None
    if kind == "shapes":
        offset = {"train": 0, "dev": 1, "test": 2}[split]
        return ShapesDataset(size or 1000, size=image_size or 128, seed=seed + offset)
    if kind == "coco":
        annotations, _, images = rest.partition(":")
        if not annotations or not images:
            raise ValueError(f"--data {spec!r}: expected coco:ANNOTATIONS.json:IMAGE_DIR")
        for path in (annotations, images):
            if not Path(path).exists():
                raise FileNotFoundError(f"--data {spec}: no such file or folder {path}")
        dataset = CocoDetection(annotations, images)
    elif kind == "voc":
        if not Path(rest).is_dir():
            raise FileNotFoundError(f"--data {spec}: no such folder {rest!r}")
        dataset = VocDetection(rest)
    else:
        raise ValueError(f"unknown detection data {spec!r}; expected shapes, coco:ANNOTATIONS.json:IMAGE_DIR or "
                         "voc:FOLDER")
    if indices is not None and len(indices) > len(dataset):
        indices = None
    return type(dataset)(*_source_args(dataset), indices=indices) if indices is not None else dataset


def _source_args(dataset) -> tuple:
    return (dataset.annotation_file, dataset.image_dir) if isinstance(dataset, CocoDetection) else (dataset.root,)


def iou_types(model_name: str) -> tuple[str, ...]:
    """The COCO IoU types a detector's outputs can be evaluated with."""
    if "mask" in model_name:
        return ("bbox", "segm")
    return ("bbox", "keypoints") if "keypoint" in model_name else ("bbox",)


def default_backbone(model_name: str) -> str:
    """The backbone a detector builder uses when ``backbone`` is not given (its signature's default)."""
    return inspect.signature(get_model_builder(model_name)).parameters["backbone"].default


def model_options(model: str, options: DetectionOptions, dataset) -> dict:
    """The JSON-able build options of the detector (kept in the run's ``config.json``)."""
    built = {"name": model, "backbone": options.backbone, "num_classes": len(dataset.classes),
             "roi_method": options.roi_method, "min_size": options.min_size, "max_size": options.max_size,
             "class_names": list(dataset.classes), "small": options.small, "score_thresh": options.score_thresh,
             "trainable_layers": options.trainable_layers, "anchor_sizes": options.anchor_sizes}
    if getattr(dataset, "keypoint_names", None) and "keypoint" in model:
        built["num_keypoints"] = len(dataset.keypoint_names)
        built["keypoint_names"] = list(dataset.keypoint_names)
    if options.small:  # the widths themselves, so that the run rebuilds the same model if SMALL changes
        built["widths"] = asdict(SMALL["widths"])
    return built


def build_detector(options: dict, backbone_weights: dict | None = None) -> nn.Module:
    """The detector of the JSON-able build ``options`` (:func:`model_options`), its backbone optionally
    initialized from ``backbone_weights`` (a classifier state dict)."""
    kwargs = {key: options[key] for key in ("backbone", "num_classes", "roi_method", "min_size", "max_size",
                                            "class_names", "trainable_layers") if options.get(key) is not None}
    if options.get("anchor_sizes"):
        kwargs["anchor_sizes"] = tuple(options["anchor_sizes"])
    if "num_keypoints" in options:
        kwargs["num_keypoints"] = options["num_keypoints"]
    roi = RoIHeadsConfig(score_thresh=options.get("score_thresh", 0.05))
    if options.get("small"):
        widths = HeadWidths(**options["widths"]) if "widths" in options else SMALL_WIDTHS_BEFORE_RECORDED
        kwargs.update(widths=widths, frozen_bn=SMALL["frozen_bn"], trainable_layers=SMALL["trainable_layers"],
                      rpn_config=SMALL["rpn"])
        roi = RoIHeadsConfig(score_thresh=roi.score_thresh, batch_size_per_image=SMALL["roi_batch"])
    return create_model(options["name"], roi_config=roi, backbone_weights=backbone_weights, **kwargs)


def backbone_state(name: str, path: str, source: str) -> dict:
    """An ImageNet checkpoint of the classifier ``name`` (convzoo, torchvision or timm names) as the state dict of
    a detection backbone (transfer learning, lecture: "R-CNN"); its classifier head is not used."""
    import sys

    from convzoo.weights import load_weights

    classifier = create_model(name)
    print(f"--backbone-weights {path}: {load_weights(classifier, path, source=source, ignore_mismatched_head=True)}",
          file=sys.stderr)
    return classifier.state_dict()


def read_proposals(path: str | Path) -> dict[int, torch.Tensor]:
    """A JSON file ``{"image_id": [[x1, y1, x2, y2], ...], ...}`` (e.g. selective search boxes) -> per-image
    Tensor[P, 4]."""
    try:
        records = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"--proposals {path}: not JSON ({error})") from None
    if not isinstance(records, dict):
        raise ValueError(f"--proposals {path}: expected an object {{image_id: [[x1, y1, x2, y2], ...]}}")
    try:
        return {int(key): torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4) for key, boxes in records.items()}
    except (ValueError, TypeError, RuntimeError) as error:
        raise ValueError(f"--proposals {path}: every value must be a list of [x1, y1, x2, y2] boxes ({error})") \
            from None


class WithProposals(Dataset):
    """``dataset`` whose targets also carry the external proposals of their ``image_id`` (Fast R-CNN)."""

    def __init__(self, dataset: Dataset, proposals: dict[int, torch.Tensor]) -> None:
        self.dataset, self.proposals = dataset, proposals

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        image_id = int(target.get("image_id", index))
        if image_id not in self.proposals:
            raise ValueError(f"the proposals file has no boxes for image_id {image_id}")
        return image, {**target, "proposals": self.proposals[image_id]}
