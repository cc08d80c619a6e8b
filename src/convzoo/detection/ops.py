"""NMS, RoI pooling and RoIAlign: thin wrappers over the ``torchvision.ops`` kernels, with their conventions stated.

Boxes are ``(x1, y1, x2, y2)`` in image pixels. A RoI batch is either Tensor[K, 5] with rows
``(batch_index, x1, y1, x2, y2)`` or a list of Tensor[L_i, 4], one per image (:func:`boxes_to_rois` converts).
``spatial_scale`` maps image pixels to feature-map cells: ``1 / stride`` (1/16 for VGG-16's conv5, lecture).

Coordinate conventions of the kernels (read from torchvision's CPU kernels, checked by hand-computed tests):

* **RoI pooling** (Fast R-CNN, Sec. 2.1): the box is scaled and *rounded* to cells (half away from zero),
  ``start = round(x1 * scale)``, ``end = round(x2 * scale)``, and the end cell is *included* (the Caffe "+1"): the
  RoI is ``max(end - start + 1, 1)`` cells wide. Bin ``i`` of ``n`` spans cells
  ``[floor(i * w / n), ceil((i + 1) * w / n))`` from ``start`` (bins may overlap), clipped to the map, and takes
  their maximum; an empty bin gives 0. The rounding is the misalignment that RoIAlign removes.
* **RoIAlign** (Mask R-CNN, Sec. 3): no rounding. Each bin averages ``sampling_ratio x sampling_ratio`` bilinear
  samples at the centers of a regular sub-grid (``sampling_ratio <= 0``: ``ceil(roi_size / output_size)`` per axis,
  adaptive). The value of cell ``(i, j)`` sits at continuous position ``(j, i)`` when ``aligned=False`` (legacy,
  torchvision's default and its Mask R-CNN's) and at ``(j + 0.5, i + 0.5)`` when ``aligned=True`` (Detectron2;
  the box is shifted by -0.5 cell). ``aligned=False`` also widens RoIs narrower than one cell to one cell.
  In cell-index coordinates a sample at ``y < -1`` or ``y > H`` (likewise x) is 0, others are clamped to
  ``[0, H - 1]`` before interpolation.
* **NMS** (lecture: "Fast R-CNN"): greedy by decreasing score; a box is dropped when its IoU with a kept box is
  *strictly greater* than ``iou_threshold``.
"""

from __future__ import annotations

import numbers

import torch
import torchvision
from torch import Tensor

from convzoo.detection import roi_align_grad

Rois = Tensor | list[Tensor]


def _check_nms_inputs(function: str, boxes: Tensor, scores: Tensor, iou_threshold: float,
                      idxs: Tensor | None = None) -> None:
    """Raise a ValueError naming the argument when NMS inputs are malformed or not finite (the kernel would
    silently keep or drop NaN boxes and scores)."""
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
        shape = f"{boxes.dtype} {list(boxes.shape)}" if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{function}: boxes must be a float Tensor[N, 4] (x1, y1, x2, y2), got {shape}")
    for name, value in (("scores", scores), ("idxs", idxs)):
        if value is not None and (not isinstance(value, Tensor) or value.shape != (len(boxes),)):
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{function}: {name} must be Tensor[N] with N = {len(boxes)} boxes, got {shape}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, numbers.Real) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"{function}: iou_threshold must be a number in [0, 1], got {iou_threshold!r}")
    finite = torch.isfinite(boxes).all(dim=1)
    if not bool(finite.all()):
        raise ValueError(f"{function}: boxes must be finite, got {boxes[~finite][0].tolist()}")
    if bool(torch.isnan(scores).any()):
        raise ValueError(f"{function}: scores must not be NaN (score of box {int(torch.isnan(scores).nonzero()[0])})")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression of ``boxes`` Tensor[N, 4] (xyxy, finite) with ``scores`` Tensor[N] (not NaN) at
    ``iou_threshold`` in [0, 1].

    Returns the kept indices, Tensor[K] int64, in order of decreasing score.
    """
    _check_nms_inputs("nms", boxes, scores, iou_threshold)
    return torchvision.ops.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group of ``idxs`` Tensor[N] (class or image index): boxes of different groups never suppress.

    Returns the kept indices, Tensor[K] int64, in order of decreasing score.
    """
    _check_nms_inputs("batched_nms", boxes, scores, iou_threshold, idxs)
    return torchvision.ops.batched_nms(boxes, scores, idxs, iou_threshold)


def boxes_to_rois(boxes: list[Tensor]) -> Tensor:
    """A list of Tensor[L_i, 4] (xyxy, one per image) -> Tensor[sum L_i, 5] of ``(batch_index, x1, y1, x2, y2)``."""
    if not boxes:
        return torch.zeros(0, 5)
    index = torch.cat([torch.full((len(b), 1), i, dtype=b.dtype, device=b.device) for i, b in enumerate(boxes)])
    return torch.cat([index, torch.cat(boxes)], dim=1)


def roi_pool(features: Tensor, rois: Rois, output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> Tensor:
    """Fast R-CNN's RoI max pooling of ``features`` Tensor[B, C, H, W] -> Tensor[K, C, h, w] (see module doc)."""
    return torchvision.ops.roi_pool(features, rois, output_size, spatial_scale)


def roi_align(features: Tensor, rois: Rois, output_size: int | tuple[int, int], spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """Mask R-CNN's RoIAlign of ``features`` Tensor[B, C, H, W] -> Tensor[K, C, h, w] (see module doc).

    torchvision's detectors use ``sampling_ratio=2, aligned=False``; Detectron2 uses ``aligned=True``. The forward
    is torchvision's kernel; on the CPU, small maps get a faster, equal gradient (:mod:`.roi_align_grad`).
    """
    if isinstance(rois, list):
        rois = boxes_to_rois(rois).to(features)
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return roi_align_grad.roi_align(features, rois, size, spatial_scale, sampling_ratio, aligned)


__all__ = ["batched_nms", "boxes_to_rois", "nms", "roi_align", "roi_pool"]
