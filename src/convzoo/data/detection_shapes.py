"""``shapes``: a generated detection data set (boxes, instance masks, keypoints) that trains in minutes on a CPU.

Each image shows 1 to ``max_objects`` non-overlapping shapes on a textured background (a color gradient, smooth
noise and faint stripes): class 1 ``circle``, 2 ``rectangle`` (axis-aligned, any aspect), 3 ``triangle`` (any
rotation). Every object has three keypoints: a triangle's corners (in clockwise order from the topmost), a
rectangle's top-left, top-right and bottom-right corners; a circle's are marked invisible (visibility 0). Images are
a pure function of ``(seed, index)``, so the set needs no files and is the same everywhere.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

CLASSES = ("background", "circle", "rectangle", "triangle")
KEYPOINT_NAMES = ("corner_a", "corner_b", "corner_c")


def _background(size: int, generator: torch.Generator) -> torch.Tensor:
    """Tensor[3, size, size] in [0, 1]: a random two-color gradient + low-frequency noise + faint stripes."""
    ramp = torch.linspace(0, 1, size)
    angle = float(torch.rand((), generator=generator)) * 2 * math.pi
    gradient = (math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]) / 2 + 0.5  # [H, W]
    low, high = torch.rand(3, 1, 1, generator=generator) * 0.6, torch.rand(3, 1, 1, generator=generator) * 0.6
    image = low + (high - low) * gradient
    noise = torch.rand(1, 3, size // 8, size // 8, generator=generator)
    image = image + 0.15 * torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear")[0]
    period = 4 + float(torch.rand((), generator=generator)) * 12
    image = image + 0.05 * torch.sin(torch.arange(size)[None, :] * 2 * math.pi / period)
    return image.clamp(0, 1)


def _triangle_mask(corners: torch.Tensor, size: int) -> torch.Tensor:
    """Pixels (centers at +0.5) inside the triangle Tensor[3, 2] ``(x, y)`` -> Tensor[size, size] bool."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    signs = []
    for i in range(3):
        (x0, y0), (x1, y1) = corners[i].tolist(), corners[(i + 1) % 3].tolist()
        signs.append((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0))
    signs = torch.stack(signs)
    return (signs >= 0).all(0) | (signs <= 0).all(0)


def render_object(label: int, center: tuple[float, float], radius: float, angle: float, aspect: float,
                  size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask Tensor[size, size] bool and keypoints Tensor[3, 3] ``(x, y, visibility)`` of one shape."""
    cx, cy = center
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    if label == 1:
        mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2
        return mask, torch.zeros(3, 3)
    if label == 2:
        half_w, half_h = radius * aspect, radius / aspect
        mask = ((xs - cx).abs() <= half_w) & ((ys - cy).abs() <= half_h)
        corners = torch.tensor([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h], [cx + half_w, cy + half_h]])
        return mask, torch.cat([corners, torch.full((3, 1), 2.0)], dim=1)
    angles = angle + torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    corners = torch.stack([cx + radius * torch.cos(angles), cy + radius * torch.sin(angles)], dim=1)
    start = int(corners[:, 1].argmin())  # topmost first, then clockwise on screen (increasing angle)
    corners = corners.roll(-start, dims=0)
    return _triangle_mask(corners, size), torch.cat([corners, torch.full((3, 1), 2.0)], dim=1)


def mask_to_box(mask: torch.Tensor) -> torch.Tensor:
    """The tight (x1, y1, x2, y2) box of a Tensor[H, W] bool mask, continuous coordinates (x2 = last column + 1)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


class ShapesDataset(Dataset):
    """``length`` generated images Tensor[3, size, size] in [0, 1] with targets (``boxes`` xyxy, ``labels``,
    ``masks`` Tensor[G, H, W] uint8, ``keypoints`` Tensor[G, 3, 3], ``image_id``, ``area``, ``iscrowd``)."""

    classes = CLASSES
    keypoint_names = KEYPOINT_NAMES
    # no flip order: a mirrored rectangle's top-left, top-right and bottom-right corners would be its top-right,
    # top-left and bottom-left ones (the last is not a keypoint), and a triangle's clockwise order turns around
    keypoint_flip = None

    def __init__(self, length: int = 512, *, size: int = 128, max_objects: int = 4, min_radius: float = 10,
                 max_radius: float = 26, seed: int = 0) -> None:
        self.length, self.size, self.max_objects = length, size, max_objects
        self.min_radius, self.max_radius, self.seed = min_radius, max_radius, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.length:
            raise IndexError(f"ShapesDataset index {index} out of range [0, {self.length})")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        size = self.size
        image = _background(size, generator)
        occupied = torch.zeros(size, size, dtype=torch.bool)
        count = int(torch.randint(1, self.max_objects + 1, (), generator=generator))
        labels, masks, keypoints = [], [], []
        for _ in range(count * 10):  # rejection sampling: objects neither overlap nor touch the border
            if len(labels) == count:
                break
            label = int(torch.randint(1, len(CLASSES), (), generator=generator))
            radius = self.min_radius + float(torch.rand((), generator=generator)) * (self.max_radius - self.min_radius)
            margin = radius * 1.5 + 1
            center = tuple((margin + torch.rand(2, generator=generator) * (size - 2 * margin)).tolist())
            angle = float(torch.rand((), generator=generator)) * 2 * math.pi
            aspect = 0.6 + float(torch.rand((), generator=generator)) * 0.8
            mask, points = render_object(label, center, radius, angle, aspect, size)
            if mask.sum() < 16 or (mask & occupied).any():
                continue
            occupied |= torch.nn.functional.max_pool2d(mask[None, None].float(), 5, 1, 2)[0, 0].bool()
            color = torch.rand(3, generator=generator)
            shade = 0.9 + 0.1 * torch.rand(size, size, generator=generator)
            image = torch.where(mask, (color[:, None, None] * shade).clamp(0, 1), image)
            labels.append(label)
            masks.append(mask)
            keypoints.append(points)
        masks_tensor = torch.stack(masks).to(torch.uint8)
        boxes = torch.stack([mask_to_box(m) for m in masks])
        target = {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64), "masks": masks_tensor,
                  "keypoints": torch.stack(keypoints), "image_id": index,
                  "area": masks_tensor.flatten(1).sum(1).float(),
                  "iscrowd": torch.zeros(len(labels), dtype=torch.int64)}
        return image, target
