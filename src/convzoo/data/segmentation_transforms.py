"""Joint augmentation of an image and its label map (torchvision.transforms.v2 with ``tv_tensors.Mask``: the mask
follows every geometric step, resampled by nearest neighbour, never blended), and the batching of segmentation
samples.

    train = segmentation_augmentation(crop_size=128, hflip=0.5)    # random resized crop + flip
    dev = segmentation_resize(128)                                 # longer side 128, padded to 128 x 128
    image, labels = train(image, labels)     # Tensor[3, H, W] float in [0, 1], Tensor[H, W] int64 -> the crop's
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

Sample = tuple[torch.Tensor, torch.Tensor]


def segmentation_augmentation(crop_size: int | None, hflip: float = 0.5, scale: tuple[float, float] = (0.25, 1.0)
                              ) -> Callable[[torch.Tensor, torch.Tensor], Sample]:
    """Training: a random resized crop to ``crop_size`` x ``crop_size`` (area ``scale`` of the image, aspect 3/4 to
    4/3, as torchvision's references; none with ``crop_size`` None), then a horizontal flip with probability
    ``hflip``. Bilinear for the image, nearest for the mask (v2 picks it for ``tv_tensors.Mask``)."""
    steps = [v2.RandomResizedCrop(crop_size, scale=scale, antialias=True)] if crop_size else []
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    pipeline = v2.Compose(steps)

    def apply(image: torch.Tensor, labels: torch.Tensor) -> Sample:
        image, mask = pipeline(tv_tensors.Image(image), tv_tensors.Mask(labels))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)

    return apply


def segmentation_resize(size: int | None, ignore_index: int = 255) -> Callable[[torch.Tensor, torch.Tensor], Sample]:
    """Evaluation: the longer side resized to ``size`` (aspect kept; the mask by nearest neighbour), then padded at
    the bottom and right to ``size`` x ``size`` (image 0, mask ``ignore_index``, so padding counts nowhere). The
    identity with ``size`` None or an image already ``size`` x ``size``."""

    def apply(image: torch.Tensor, labels: torch.Tensor) -> Sample:
        height, width = image.shape[-2:]
        if size is None or (height, width) == (size, size):
            return image, labels
        scale = size / max(height, width)
        new = (max(round(height * scale), 1), max(round(width * scale), 1))
        image = v2.functional.resize(image, list(new), antialias=True)
        labels = v2.functional.resize(tv_tensors.Mask(labels), list(new)).as_subclass(torch.Tensor)
        pad = (0, size - new[1], 0, size - new[0])  # (left, right, top, bottom)
        return F.pad(image, pad, value=0.0), F.pad(labels, pad, value=ignore_index)

    return apply


def collate_segmentation(samples: list[Sample]) -> Sample:
    """(images Tensor[B, 3, H, W], labels Tensor[B, H, W] int64) of samples of one size."""
    sizes = {tuple(image.shape[-2:]) for image, _ in samples}
    if len(sizes) > 1:
        raise ValueError(f"a batch holds images of sizes {sorted(sizes)}; give --crop-size to train and evaluate "
                         "on one size")
    return torch.stack([image for image, _ in samples]), torch.stack([labels for _, labels in samples]).long()


class TransformedSegmentation(Dataset):
    """``dataset`` with ``transform(image, labels) -> (image, labels)`` applied to every sample; the wrapped set's
    attributes (``classes``) show through."""

    def __init__(self, dataset: Dataset, transform: Callable[[torch.Tensor, torch.Tensor], Sample]) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        return self.transform(*self.dataset[index])

    def __getattr__(self, name: str):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
