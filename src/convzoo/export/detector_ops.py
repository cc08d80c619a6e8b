"""Export-friendly forms of the R-CNN inference steps: one flat set of boxes for the whole batch, no Python control
flow on tensor values, no per-image loops (so the batch axis stays dynamic in torch.export and ONNX).

Each function equals its eager counterpart in :mod:`convzoo.detection` (checked by tests/test_export_detectors.py):

* :func:`grouped_nms` is ``batched_nms`` with one group per (image, level) or (image, class): the coordinate
  offset of torchvision's ``batched_nms`` for small inputs, so boxes of different groups never overlap;
* :func:`rank_within` + ``< top_n`` keeps the best ``top_n`` of every image, as ``keep[:top_n]`` per image;
* :func:`paste_masks_dense` is :func:`convzoo.detection.mask_head.paste_masks` as two matrix products per mask
  (bilinear resizing is separable);
* :func:`heatmaps_to_keypoints_dense` is :func:`convzoo.detection.keypoint_head.heatmaps_to_keypoints` with the
  bicubic resize as two matrix products on a map the size of the image, positions outside each box masked.
"""

from __future__ import annotations

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision.nms)
from torch import Tensor


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group of ``groups`` Tensor[K] (int64) of ``boxes`` Tensor[K, 4] -> kept indices, best first.

    Each group is shifted by ``group * (max coordinate + 1)`` so that boxes of different groups never intersect;
    the maximum includes 0, so that no box at all is fine."""
    top = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    shifted = boxes + (groups.to(boxes.dtype) * (top + 1))[:, None]
    return torch.ops.torchvision.nms(shifted, scores, iou_threshold)


def rank_within(images: Tensor, num_images: int) -> Tensor:
    """For Tensor[K] image indices in kept order, each entry's position among those of its image (0 = first)."""
    one_hot = (images[:, None] == torch.arange(num_images, device=images.device)[None]).to(torch.int64)
    return (one_hot.cumsum(0) * one_hot).sum(1) - 1


def image_major(images: Tensor, rank: Tensor) -> Tensor:
    """The order that sorts entries by image, then by ``rank`` (their order within the image)."""
    key = images * (rank.numel() + 1) + rank
    return torch.argsort(key)


def _bilinear_weights(start: Tensor, length: Tensor, source: int, target: int) -> Tensor:
    """Tensor[D, target, source]: the weights with which ``F.interpolate(mode="bilinear", align_corners=False)``
    resizes ``source`` samples to ``length`` pixels (Tensor[D] int64, >= 1), the result placed at pixel ``start``
    (Tensor[D] int64) of a ``target``-pixel axis; zero outside ``[start, start + length)``."""
    pixels = torch.arange(target, device=start.device)
    local = pixels[None, :] - start[:, None]  # [D, target]
    inside = (local >= 0) & (local < length[:, None])
    scale = source / length.to(torch.float32)  # PyTorch: input_size / output_size when a size is given
    position = (scale[:, None] * (local.to(torch.float32) + 0.5) - 0.5).clamp(min=0)
    low = position.floor().to(torch.int64).clamp(max=source - 1)
    high = torch.where(low < source - 1, low + 1, low)
    frac = position - low.to(torch.float32)
    cells = torch.arange(source, device=start.device)
    weights = (cells == low[..., None]) * (1 - frac)[..., None] + (cells == high[..., None]) * frac[..., None]
    return weights * inside[..., None]


def paste_masks_dense(masks: Tensor, boxes: Tensor, height: int, width: int, padding: int = 1) -> Tensor:
    """Tensor[D, M, M] mask probabilities at Tensor[D, 4] (xyxy) boxes -> Tensor[D, 1, height, width]: Detectron's
    rule of :func:`convzoo.detection.mask_head.paste_masks` (border of zeros, box grown by (M + 2 padding) / M and
    truncated to integers, bilinear resize to ``x2 - x1 + 1`` by ``y2 - y1 + 1`` pixels), as
    ``A_y @ mask @ A_x^T``."""
    size = masks.shape[-1]
    padded = torch.nn.functional.pad(masks, (padding,) * 4)
    scale = (size + 2 * padding) / size
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    center_x, center_y = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    x1, x2 = (center_x - half_w).to(torch.int64), (center_x + half_w).to(torch.int64)
    y1, y2 = (center_y - half_h).to(torch.int64), (center_y + half_h).to(torch.int64)
    # a box with x2 < x1 pastes nothing (eager: an empty region), its resize length clamps to 1 pixel
    length_x = torch.where(x2 >= x1, x2 - x1 + 1, torch.zeros_like(x1))
    length_y = torch.where(y2 >= y1, y2 - y1 + 1, torch.zeros_like(y1))
    source = size + 2 * padding
    weights_x = _bilinear_weights(x1, length_x.clamp(min=1), source, width) * (length_x > 0)[:, None, None]
    weights_y = _bilinear_weights(y1, length_y.clamp(min=1), source, height) * (length_y > 0)[:, None, None]
    return (weights_y @ padded @ weights_x.transpose(1, 2))[:, None]


def _cubic_weights(length: Tensor, source: int, target: int) -> Tensor:
    """Tensor[D, target, source]: ``F.interpolate(mode="bicubic", align_corners=False)`` from ``source`` samples to
    ``length`` pixels (Tensor[D] int64 >= 1), taps clamped to the border (A = -0.75, PyTorch's kernel); rows at and
    after ``length`` are zero."""
    pixels = torch.arange(target, device=length.device).to(torch.float32)
    scale = source / length.to(torch.float32)
    position = scale[:, None] * (pixels[None] + 0.5) - 0.5  # [D, target]; not clamped for cubic
    base = position.floor()
    t = position - base
    a = -0.75
    coefficients = [
        ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
        ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
    ]
    cells = torch.arange(source, device=length.device)
    weights = torch.zeros((), device=length.device)
    for offset, coefficient in zip((-1, 0, 1, 2), coefficients):
        tap = (base.to(torch.int64) + offset).clamp(0, source - 1)
        weights = weights + (cells == tap[..., None]) * coefficient[..., None]
    return weights * (pixels[None] < length[:, None])[..., None]


def heatmaps_to_keypoints_dense(heatmaps: Tensor, rois: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Tensor[R, K, S, S] heatmap logits and Tensor[R, 4] (xyxy) boxes -> keypoints Tensor[R, K, 3] ``(x, y, 1)``
    and scores Tensor[R, K], by the rule of :func:`convzoo.detection.keypoint_head.heatmaps_to_keypoints`: each
    heatmap bicubically resized to ``ceil(w) x ceil(h)``, the first maximum is the keypoint. The resized maps are
    built at most ``height x width`` (the boxes are clipped to the image), one keypoint at a time: memory
    R * height * width floats."""
    num_keypoints, size = heatmaps.shape[1], heatmaps.shape[-1]
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    map_w, map_h = widths.ceil().to(torch.int64), heights.ceil().to(torch.int64)
    rows_w, rows_h = map_w.clamp(max=width), map_h.clamp(max=height)  # boxes are clipped: ceil(w) <= width
    weights_x = _cubic_weights(rows_w, size, width)
    weights_y = _cubic_weights(rows_h, size, height)
    inside = ((torch.arange(height, device=rois.device)[None, :, None] < rows_h[:, None, None])
              & (torch.arange(width, device=rois.device)[None, None, :] < rows_w[:, None, None]))
    xs, ys, scores = [], [], []
    for k in range(num_keypoints):  # K is fixed by the model: unrolled
        resized = weights_y @ heatmaps[:, k] @ weights_x.transpose(1, 2)  # [R, H, W]
        resized = torch.where(inside, resized, torch.full_like(resized, float("-inf")))
        # the first maximum in row-major order: the first row holding the maximum, then its first column (no
        # index % width: torch.onnx cannot translate a remainder by the symbolic image width)
        cell_y = resized.amax(dim=2).argmax(dim=1)
        row = resized.gather(1, cell_y[:, None, None].expand(-1, 1, resized.shape[-1]))[:, 0]  # [R, W]
        cell_x = row.argmax(dim=1)
        xs.append((cell_x.to(torch.float32) + 0.5) * (widths / map_w.to(torch.float32)) + rois[:, 0])
        ys.append((cell_y.to(torch.float32) + 0.5) * (heights / map_h.to(torch.float32)) + rois[:, 1])
        scores.append(row.gather(1, cell_x[:, None])[:, 0])
    x, y = torch.stack(xs, 1), torch.stack(ys, 1)
    return torch.stack([x, y, torch.ones_like(x)], dim=2), torch.stack(scores, 1)


__all__ = ["grouped_nms", "heatmaps_to_keypoints_dense", "image_major", "paste_masks_dense", "rank_within"]
