"""Detection data sets read from files: COCO JSON (boxes, polygon/RLE masks, keypoints, crowd regions) and
PASCAL VOC XML (with ``difficult`` flags). Samples follow :mod:`convzoo.data.detection`.

Images are decoded with Pillow and converted to RGB (grayscale repeated, alpha dropped). Boxes narrower or lower
than one pixel are dropped and counted in ``dropped_boxes``; crowd regions (COCO ``iscrowd=1``) are left out of the
training targets (``crowd_as_targets=False``) but stay in the ground truth that evaluation builds from the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as coco_mask
from torch.utils.data import Dataset

from convzoo.data.detection import drop_degenerate, flip_permutation, select_objects
from convzoo.evaluation import read_voc_xml
from convzoo.evaluation.coco import to_rle


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file -> Tensor[3, H, W] float in [0, 1] (grayscale, palette and RGBA images converted to RGB)."""
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255


def polygons_or_rle_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygon list, uncompressed or compressed RLE) -> uint8[H, W]."""
    return coco_mask.decode(to_rle(segmentation, height, width))


class CocoDetection(Dataset):
    """A COCO instances/keypoints JSON and its image folder. Category ids are mapped to labels 1..K in the order of
    ``categories`` (``category_ids[label]`` maps back); ``masks=True`` decodes segmentations."""

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, *, masks: bool = True,
                 crowd_as_targets: bool = False, indices: list[int] | None = None) -> None:
        self.annotation_file, self.image_dir = Path(annotation_file), Path(image_dir)
        with open(self.annotation_file) as f:
            self.coco = json.load(f)
        self.masks, self.crowd_as_targets = masks, crowd_as_targets
        categories = sorted(self.coco["categories"], key=lambda c: c["id"])
        self.category_ids = [0] + [c["id"] for c in categories]
        self.classes = ["background"] + [c["name"] for c in categories]
        self.keypoint_names = next((c.get("keypoints", []) for c in categories if c.get("keypoints")), [])
        # a horizontal flip swaps COCO's left_* and right_* keypoints
        self.keypoint_flip = flip_permutation(self.keypoint_names) if self.keypoint_names else None
        self._label = {cid: label for label, cid in enumerate(self.category_ids) if label}
        images = sorted(self.coco["images"], key=lambda i: i["id"])
        self.images = [images[i] for i in indices] if indices is not None else images
        self._annotations: dict[int, list] = {}
        for annotation in self.coco["annotations"]:
            self._annotations.setdefault(annotation["image_id"], []).append(annotation)
        self.dropped_boxes = 0

    def __len__(self) -> int:
        return len(self.images)

    def ground_truth(self) -> dict:
        """The COCO dict restricted to this set's images (crowd regions kept), for ``convzoo.evaluation``."""
        ids = {image["id"] for image in self.images}
        return {**self.coco, "images": self.images,
                "annotations": [a for a in self.coco["annotations"] if a["image_id"] in ids]}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        info = self.images[index]
        image = read_rgb(self.image_dir / info["file_name"])
        height, width = image.shape[-2:]
        annotations = [a for a in self._annotations.get(info["id"], [])
                       if self.crowd_as_targets or not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        target = {"boxes": boxes, "image_id": info["id"],
                  "labels": torch.tensor([self._label[a["category_id"]] for a in annotations], dtype=torch.int64),
                  "area": torch.tensor([a.get("area", 0.0) for a in annotations], dtype=torch.float32),
                  "iscrowd": torch.tensor([a.get("iscrowd", 0) for a in annotations], dtype=torch.int64)}
        if self.masks:
            decoded = [polygons_or_rle_to_mask(a["segmentation"], height, width) for a in annotations]
            target["masks"] = (torch.from_numpy(np.stack(decoded)) if decoded
                               else torch.zeros((0, height, width), dtype=torch.uint8))
        if self.keypoint_names:
            points = [a.get("keypoints", [0] * 3 * len(self.keypoint_names)) for a in annotations]
            target["keypoints"] = torch.tensor(points, dtype=torch.float32).reshape(-1, len(self.keypoint_names), 3)
        target, dropped = drop_degenerate(target)
        self.dropped_boxes += dropped
        return image, target


VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


class VocDetection(Dataset):
    """A VOC folder (``Annotations/*.xml``, ``JPEGImages/``); ``difficult`` objects are left out of the targets
    unless ``keep_difficult`` (they stay in the evaluation ground truth as ignored regions)."""

    def __init__(self, root: str | Path, *, classes: tuple[str, ...] = VOC_CLASSES, keep_difficult: bool = False,
                 indices: list[int] | None = None) -> None:
        self.root, self.classes, self.keep_difficult = Path(root), list(classes), keep_difficult
        files = sorted((self.root / "Annotations").glob("*.xml"))
        self.files = [files[i] for i in indices] if indices is not None else files
        self.category_ids = list(range(len(classes)))
        self.keypoint_names: list[str] = []
        self.dropped_boxes = 0

    def __len__(self) -> int:
        return len(self.files)

    def annotation(self, index: int) -> dict:
        """The XML of sample ``index`` read by :func:`convzoo.evaluation.read_voc_xml` (continuous xyxy boxes:
        ``xmin - 1, ymin - 1, xmax, ymax``) -> ``filename``, ``width``, ``height``, ``boxes`` Tensor[G, 4],
        ``labels`` (index in ``classes``) and ``difficult`` Tensor[G] bool."""
        path = self.files[index]
        record = read_voc_xml(path)
        objects = record["objects"]
        unknown = sorted({o["name"] for o in objects} - set(self.classes))
        if unknown:
            raise ValueError(f"{path}: classes {unknown} are not among the class names")
        return {"filename": record["filename"], "width": record["width"], "height": record["height"],
                "boxes": torch.tensor([o["bbox"] for o in objects], dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor([self.classes.index(o["name"]) for o in objects], dtype=torch.int64),
                "difficult": torch.tensor([bool(o["difficult"]) for o in objects], dtype=torch.bool)}

    def ground_truth(self) -> dict:
        """COCO-style ground truth; difficult objects become crowd (ignored) regions, as the VOC devkit ignores them."""
        images, annotations = [], []
        for index in range(len(self)):
            record = self.annotation(index)
            width, height = record["width"], record["height"]
            if not (width and height):  # no <size> in the XML: ask the image
                with Image.open(self.root / "JPEGImages" / record["filename"]) as image:
                    width, height = image.size
            images.append({"id": index, "height": height, "width": width, "file_name": record["filename"]})
            for box, label, hard in zip(record["boxes"].tolist(), record["labels"].tolist(), record["difficult"]):
                annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": label,
                                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                    "area": (box[2] - box[0]) * (box[3] - box[1]), "iscrowd": int(hard)})
        categories = [{"id": i, "name": name} for i, name in enumerate(self.classes) if i]
        return {"images": images, "annotations": annotations, "categories": categories}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        record = self.annotation(index)
        image = read_rgb(self.root / "JPEGImages" / record["filename"])
        target = {"boxes": record["boxes"], "labels": record["labels"], "difficult": record["difficult"],
                  "image_id": index}
        if not self.keep_difficult:
            target = select_objects(target, ~record["difficult"])
        target, dropped = drop_degenerate(target)
        self.dropped_boxes += dropped
        return image, target
