"""Detection data plumbing shared by the COCO, VOC and ``shapes`` sets: batching, cleaning, augmentation, and the
COCO ground truth that ``convzoo.evaluation`` reads (detector outputs become COCO results with
:func:`convzoo.evaluation.results_from_predictions`).

A sample is ``(image Tensor[3, H, W] float in [0, 1], target dict)`` with ``boxes`` Tensor[G, 4] (xyxy, absolute
pixels), ``labels`` Tensor[G] int64 (1..K), optionally ``masks`` Tensor[G, H, W] uint8, ``keypoints``
Tensor[G, K, 3] ``(x, y, visibility)``, and ``image_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from convzoo.evaluation import encode_mask

PER_OBJECT_KEYS = ("boxes", "labels", "masks", "keypoints", "area", "iscrowd", "difficult")


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """A list of samples -> (list of images, list of targets): detection images keep their own sizes."""
    return [image for image, _ in batch], [target for _, target in batch]


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Tensor[C, H, W] with C = 1 (grayscale: repeated), 3, or 4 (RGBA: alpha dropped) -> Tensor[3, H, W]."""
    if image.shape[0] == 1:
        return image.expand(3, -1, -1).clone()
    if image.shape[0] == 4:
        return image[:3]
    if image.shape[0] != 3:
        raise ValueError(f"expected an image with 1, 3 or 4 channels, got shape {list(image.shape)}")
    return image


def select_objects(target: dict, keep: torch.Tensor) -> dict:
    """``target`` with only the objects ``keep`` (Tensor[G] bool or indices) in every per-object entry."""
    return {key: value[keep] if key in PER_OBJECT_KEYS and torch.is_tensor(value) else value
            for key, value in target.items()}


def drop_degenerate(target: dict, min_size: float = 1.0) -> tuple[dict, int]:
    """Remove objects whose box is narrower or lower than ``min_size`` pixels -> (target, number dropped)."""
    boxes = target["boxes"]
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return select_objects(target, keep), int((~keep).sum())


def flip_permutation(keypoint_names: Sequence[str]) -> list[int]:
    """The keypoint order after a horizontal flip: ``left_*`` and ``right_*`` swap (COCO's person keypoints), other
    names keep their index. ``flip_permutation(["nose", "left_eye", "right_eye"]) == [0, 2, 1]``."""
    names = list(keypoint_names)
    swapped = [name.replace("left", "\0").replace("right", "left").replace("\0", "right") for name in names]
    return [names.index(name) if name in names else index for index, name in enumerate(swapped)]


def detection_augmentation(horizontal_flip: float = 0.5, photometric: bool = False,
                           keypoint_flip: Sequence[int] | None = None) -> Callable:
    """torchvision.transforms.v2 augmentation that keeps boxes, masks and keypoints consistent with the image.

    A flipped image's keypoints are reordered by ``keypoint_flip`` (new keypoint ``k`` is old ``keypoint_flip[k]``,
    e.g. :func:`flip_permutation` of COCO's names); without it their coordinates are flipped but their names are not,
    which is right only for models that do not use keypoints. v2 treats keypoints as pixel indices (a flip maps x to
    W - 1 - x) and boxes as continuous (x to W - x).
    """
    flip = v2.RandomHorizontalFlip(1.0)
    photometric_step = v2.RandomPhotometricDistort() if photometric else None
    order = torch.as_tensor(keypoint_flip, dtype=torch.int64) if keypoint_flip is not None else None

    def apply(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        size = tuple(image.shape[-2:])
        wrapped = {"boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=size)}
        if "masks" in target:
            wrapped["masks"] = tv_tensors.Mask(target["masks"])
        if "keypoints" in target:
            wrapped["keypoints"] = tv_tensors.KeyPoints(target["keypoints"][..., :2], canvas_size=size)
        image = tv_tensors.Image(image)
        if photometric_step is not None:
            image = photometric_step(image)
        flipped = bool(torch.rand(()) < horizontal_flip)
        if flipped:
            image, wrapped = flip(image, wrapped)
        target = dict(target, boxes=wrapped["boxes"].as_subclass(torch.Tensor))
        if "masks" in wrapped:
            target["masks"] = wrapped["masks"].as_subclass(torch.Tensor)
        if "keypoints" in wrapped:
            points = torch.cat([wrapped["keypoints"].as_subclass(torch.Tensor), target["keypoints"][..., 2:]], dim=-1)
            target["keypoints"] = points[:, order] if flipped and order is not None else points
        return image.as_subclass(torch.Tensor), target

    return apply


class TransformedDataset(Dataset):
    """``dataset`` with ``transform(image, target) -> (image, target)`` applied to every sample."""

    def __init__(self, dataset: Dataset, transform: Callable) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.transform(*self.dataset[index])


def coco_ground_truth(dataset: Dataset, classes: Sequence[str], keypoint_names: Sequence[str] = (),
                      category_ids: Sequence[int] | None = None) -> dict:
    """The COCO ground-truth dict (images, annotations with xywh boxes, RLE masks, keypoints; categories) of a
    detection data set, for :func:`convzoo.evaluation.evaluate_coco`. ``classes[0]`` is the background."""
    category_ids = list(category_ids) if category_ids is not None else list(range(len(classes)))
    images, annotations = [], []
    for index in range(len(dataset)):
        image, target = dataset[index]
        image_id = int(target.get("image_id", index))
        height, width = image.shape[-2:]
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        for g in range(len(target["boxes"])):
            x1, y1, x2, y2 = target["boxes"][g].tolist()
            annotation = {"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": category_ids[int(target["labels"][g])], "bbox": [x1, y1, x2 - x1, y2 - y1],
                          "iscrowd": int(target["iscrowd"][g]) if "iscrowd" in target else 0}
            if "masks" in target:
                annotation["segmentation"] = encode_mask(target["masks"][g])
                annotation["area"] = float(target["masks"][g].sum())
            else:
                annotation["area"] = float((x2 - x1) * (y2 - y1))
            if "keypoints" in target:
                points = target["keypoints"][g]
                annotation["keypoints"] = points.flatten().tolist()
                annotation["num_keypoints"] = int((points[:, 2] > 0).sum())
            annotations.append(annotation)
    categories = [{"id": category_ids[i], "name": name, "keypoints": list(keypoint_names)}
                  for i, name in enumerate(classes) if i > 0]
    return {"images": images, "annotations": annotations, "categories": categories}
