"""Per-data-set preprocessing with torchvision.transforms.v2: random augmentation per sample, normalization per batch.

Augmentations (switchable with ``--augment/--no-augment``), the defaults chosen per data set in ``convzoo.data``:
``crop`` = random crop with zero padding (small images), ``crop-flip`` = that plus a horizontal flip (CIFAR-10),
``resized-crop-flip`` = Inception-style random resized crop plus flip (photos of any size), ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalize_images(mean: Sequence[float], std: Sequence[float], size: int | None = None) -> v2.Compose:
    """uint8 Tensor[..., C, H, W] -> float32 ``(x / 255 - mean) / std``, resized to ``size`` x ``size`` if given."""
    steps = [v2.Resize((size, size), antialias=True)] if size else []
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


class Standardize:
    """Float signals Tensor[..., C, L] -> ``(x - mean) / std`` with scalar statistics of the training split."""

    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).float()


def augmentation(kind: str, size: int | tuple[int, int], padding: int = 0) -> v2.Compose | None:
    """The random augmentation ``kind`` for uint8 images of ``size`` (H, W) (the output size); None for ``none``."""
    if kind == "none":
        return None
    if kind == "crop":
        return v2.Compose([v2.RandomCrop(size, padding=padding)])
    if kind == "crop-flip":
        return v2.Compose([v2.RandomCrop(size, padding=padding), v2.RandomHorizontalFlip()])
    if kind == "resized-crop-flip":
        return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])
    raise ValueError(f"unknown augmentation {kind!r}; expected none, crop, crop-flip or resized-crop-flip")


def photo_transforms(size: int, augment: bool) -> tuple[v2.Compose, v2.Compose]:
    """(train, eval) transforms for photos of any size: uint8 Tensor[3, H, W] -> float32 Tensor[3, size, size].

    Eval resizes the shorter side to size / 0.875 and takes the centre crop (the ImageNet convention).
    """
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))]
    if augment:
        train = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), *tail])
    else:
        train = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), *tail])
    evaluate = v2.Compose([v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size), *tail])
    return train, evaluate


def preprocessor(recipe: dict):
    """The test-time preprocessing of a run from its JSON recipe (``DataSplits.preprocess``): a function from one
    raw input (uint8 image Tensor[C, H, W], or a float signal Tensor[C, L]) to the network input.

    ``{"kind": "tensor", "size": [H, W], "mean": [...], "std": [...]}``: resize, scale to [0, 1], normalize;
    ``{"kind": "photo", "size": [S, S]}``: resize the shorter side to S / 0.875, centre crop, ImageNet statistics;
    ``{"kind": "signal", "mean": m, "std": s}``: standardize.
    """
    kind = recipe.get("kind")
    if kind == "tensor":
        resize = v2.Resize(tuple(recipe["size"]), antialias=True)
        normalize = normalize_images(recipe["mean"], recipe["std"])
        return lambda image: normalize(resize(image))
    if kind == "photo":
        return photo_transforms(recipe["size"][0], augment=False)[1]
    if kind == "signal":
        return Standardize(recipe["mean"], recipe["std"])
    raise ValueError(f"unknown preprocessing recipe {recipe!r} (a run folder written by another convzoo version?)")
