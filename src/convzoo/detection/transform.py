"""The explicit resize-and-normalize step of every detector, and its inverse for the detections.

Defaults are those of the Faster/Mask R-CNN papers as implemented by torchvision (which trained the weights we load):
the shorter side is scaled to ``min_size`` (800) unless the longer side would exceed ``max_size`` (1333), pixels are
normalized with the ImageNet mean and standard deviation, and the batch is zero-padded on the bottom/right to a
multiple of ``size_divisible`` (32, the coarsest FPN stride). Boxes are ``(x1, y1, x2, y2)`` in absolute pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.detection.mask_head import paste_masks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageBatch:
    """Padded images Tensor[N, C, H, W] and each image's size ``(h, w)`` after resizing, before padding."""

    tensors: torch.Tensor
    image_sizes: list[tuple[int, int]]


def resize_scale(height: int, width: int, min_size: float, max_size: float) -> float:
    """The factor that brings the shorter side to ``min_size`` without the longer side passing ``max_size``."""
    return min(min_size / min(height, width), max_size / max(height, width))


def resize_boxes(boxes: torch.Tensor, old_size: tuple[int, int], new_size: tuple[int, int]) -> torch.Tensor:
    """Scale Tensor[N, 4] ``(x1, y1, x2, y2)`` boxes from an image of ``old_size`` ``(h, w)`` to ``new_size``."""
    ratio_h, ratio_w = (torch.tensor(n, dtype=torch.float32, device=boxes.device)
                        / torch.tensor(o, dtype=torch.float32, device=boxes.device)
                        for n, o in zip(new_size, old_size))
    return boxes * torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes.dtype)


def resize_keypoints(keypoints: torch.Tensor, old_size: tuple[int, int], new_size: tuple[int, int]) -> torch.Tensor:
    """Scale the ``(x, y)`` of Tensor[N, K, 3] keypoints ``(x, y, visibility)`` from ``old_size`` to ``new_size``."""
    ratio_h, ratio_w = (torch.tensor(n, dtype=torch.float32, device=keypoints.device)
                        / torch.tensor(o, dtype=torch.float32, device=keypoints.device)
                        for n, o in zip(new_size, old_size))
    scaled = keypoints.clone()
    scaled[..., 0] *= ratio_w
    scaled[..., 1] *= ratio_h
    return scaled


class DetectionTransform(nn.Module):
    """Normalize, resize and batch images (and resize their targets); map detections back to the input sizes.

    ``min_size`` may be a tuple: in training one is drawn per image (multi-scale training), in evaluation the
    last is used. ``mean``/``std`` are per channel in [0, 1] pixel units.
    """

    def __init__(self, *, min_size: int | tuple[int, ...] = 800, max_size: int = 1333,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 size_divisible: int = 32) -> None:
        super().__init__()
        self.min_size = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size = max_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.size_divisible = size_divisible

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Tensor[C, H, W] in [0, 1] -> ``(image - mean) / std`` per channel."""
        mean = torch.as_tensor(self.mean, dtype=image.dtype, device=image.device)
        std = torch.as_tensor(self.std, dtype=image.dtype, device=image.device)
        return (image - mean[:, None, None]) / std[:, None, None]

    def resize(self, image: torch.Tensor, target: dict | None) -> tuple[torch.Tensor, dict | None]:
        """Bilinearly resize Tensor[C, H, W]; boxes, keypoints and (nearest-neighbour) masks follow."""
        height, width = image.shape[-2:]
        min_size = self.min_size[-1]
        if self.training:  # drawn from torch's generator (as torchvision), so one seed reproduces a run
            min_size = self.min_size[int(torch.empty(1).uniform_(0.0, float(len(self.min_size))).item())]
        scale = resize_scale(height, width, float(min_size), float(self.max_size))
        image = F.interpolate(image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                              align_corners=False)[0]
        if target is None:
            return image, None
        new_size = tuple(image.shape[-2:])
        target = dict(target)
        target["boxes"] = resize_boxes(target["boxes"], (height, width), new_size)
        if "masks" in target:
            masks = target["masks"][:, None].float()
            target["masks"] = F.interpolate(masks, scale_factor=scale, recompute_scale_factor=True)[:, 0].byte()
        if "keypoints" in target:
            target["keypoints"] = resize_keypoints(target["keypoints"], (height, width), new_size)
        return image, target

    def batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Zero-pad Tensor[C, H_i, W_i] images at the bottom/right into one Tensor[N, C, H, W], H and W multiples
        of ``size_divisible``."""
        height = max(image.shape[-2] for image in images)
        width = max(image.shape[-1] for image in images)
        height = int(math.ceil(height / self.size_divisible) * self.size_divisible)
        width = int(math.ceil(width / self.size_divisible) * self.size_divisible)
        batched = images[0].new_zeros((len(images), images[0].shape[0], height, width))
        for index, image in enumerate(images):  # indexing, not unbinding ``batched``: works when images need grad
            batched[index, :, :image.shape[-2], :image.shape[-1]].copy_(image)
        return batched

    def forward(self, images: list[torch.Tensor],
                targets: list[dict] | None = None) -> tuple[ImageBatch, list[dict] | None]:
        """Images list[Tensor[C, H, W]] (values in [0, 1]) -> an ImageBatch and the resized targets."""
        resized, new_targets = [], [] if targets is not None else None
        for index, image in enumerate(images):
            if image.dim() != 3:
                raise ValueError(f"images are expected as Tensor[C, H, W], got shape {list(image.shape)} "
                                 f"at index {index}")
            channels = len(self.mean)
            if image.shape[0] != channels:
                raise ValueError(f"this detector takes {channels}-channel images (Tensor[{channels}, H, W]), got "
                                 f"shape {list(image.shape)} at index {index}")
            if not image.is_floating_point():
                raise ValueError(f"images are expected as floats in [0, 1], got {image.dtype} at index {index}")
            image, target = self.resize(self.normalize(image), targets[index] if targets is not None else None)
            resized.append(image)
            if new_targets is not None:
                new_targets.append(target)
        image_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in resized]
        return ImageBatch(self.batch(resized), image_sizes), new_targets

    def postprocess(self, detections: list[dict], image_sizes: list[tuple[int, int]],
                    original_sizes: list[tuple[int, int]]) -> list[dict]:
        """Map detections from the resized images back to the original ones; masks Tensor[N, 1, 28, 28] of
        probabilities are pasted into Tensor[N, 1, H, W] at their boxes."""
        results = []
        for detection, size, original in zip(detections, image_sizes, original_sizes):
            detection = dict(detection)
            detection["boxes"] = resize_boxes(detection["boxes"], size, original)
            if "masks" in detection:
                detection["masks"] = paste_masks(detection["masks"], detection["boxes"], original)
            if "keypoints" in detection:
                detection["keypoints"] = resize_keypoints(detection["keypoints"], size, original)
            results.append(detection)
        return results

    def extra_repr(self) -> str:
        return (f"min_size={self.min_size}, max_size={self.max_size}, mean={self.mean}, std={self.std}, "
                f"size_divisible={self.size_divisible}")
