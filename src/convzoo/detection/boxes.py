"""Boxes: area, IoU, GIoU/DIoU/CIoU and their losses, format conversion, clipping, the R-CNN box parametrization
and smooth L1 (lecture: "Fast R-CNN").

Every box here is ``(x1, y1, x2, y2)`` in absolute pixels with continuous coordinates: a box covering pixels 0..9
is ``(0, 0, 10, 10)``, width ``x2 - x1`` (no "+1" as in the original Caffe code), the convention of torchvision.
Other formats exist only at the edges, through :func:`box_convert`:

* ``"xyxy"``   ``(x1, y1, x2, y2)``
* ``"xywh"``   ``(x1, y1, w, h)``, the COCO annotation format
* ``"cxcywh"`` ``(cx, cy, w, h)``
* ``"tlbr"``   ``(top, left, bottom, right)`` = ``(y1, x1, y2, x2)``, the course's ``bboxes_utils`` order

All functions take boxes as Tensor[..., 4] (any leading shape) unless stated otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "tlbr")

# Fast R-CNN's clamp on t_w, t_h before exp: a box can grow at most 1000/16 times its anchor (as torchvision).
DEFAULT_DELTA_CLAMP = math.log(1000.0 / 16)


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``boxes`` Tensor[..., 4] (xyxy) -> Tensor[...]; an inverted box (x2 < x1 or y2 < y1) has area 0.

    torchvision's ``box_area`` returns a negative number for an inverted box; for valid boxes the two agree.
    """
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def elementwise_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of corresponding boxes: ``a`` Tensor[..., 4] and ``b`` Tensor[..., 4] (xyxy), broadcast against each other.

    The result has the broadcast shape without the last axis; ``a[:, None]`` with ``b[None, :]`` gives all pairs.
    Two empty boxes have union 0 and IoU NaN (0 / 0), as in torchvision and the course's ``bboxes_iou``.
    """
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    sides = (bottom_right - top_left).clamp(min=0)  # [..., 2]: width and height of the intersection
    intersection = sides[..., 0] * sides[..., 1]
    return intersection / (box_area(a) + box_area(b) - intersection)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of ``a`` Tensor[N, 4] and ``b`` Tensor[M, 4] (xyxy) -> Tensor[N, M]."""
    return elementwise_box_iou(a[:, None, :], b[None, :, :])


def _overlap(a: Tensor, b: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """IoU, union and the enclosing box's (width, height) of broadcast xyxy boxes; ``eps`` is added to the union."""
    sides = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    intersection = sides[..., 0] * sides[..., 1]
    union = box_area(a) + box_area(b) - intersection
    enclosing = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])  # [..., 2]
    return intersection / (union + eps), union, enclosing[..., 0], enclosing[..., 1]


def elementwise_generalized_box_iou(a: Tensor, b: Tensor, eps: float = 0.0) -> Tensor:
    """GIoU (Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019) of broadcast xyxy boxes:
    ``IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest box enclosing both; in [-1, 1]."""
    iou, union, cw, ch = _overlap(a, b, eps)
    enclosing = cw * ch
    return iou - (enclosing - union) / (enclosing + eps)


def _center_term(a: Tensor, b: Tensor, cw: Tensor, ch: Tensor, eps: float) -> Tensor:
    """``rho^2(center_a, center_b) / (c^2 + eps)``, c the enclosing box's diagonal (DIoU's penalty)."""
    delta = (a[..., :2] + a[..., 2:] - b[..., :2] - b[..., 2:]) / 2
    return (delta[..., 0] ** 2 + delta[..., 1] ** 2) / (cw**2 + ch**2 + eps)


def elementwise_distance_box_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """DIoU (Zheng et al., "Distance-IoU Loss", AAAI 2020) of broadcast xyxy boxes: ``IoU - rho^2 / c^2`` with
    ``rho`` the distance between the centers and ``c`` the diagonal of the enclosing box."""
    iou, _, cw, ch = _overlap(a, b, 0.0)
    return iou - _center_term(a, b, cw, ch, eps)


def elementwise_complete_box_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """CIoU (Zheng et al. 2020) of broadcast xyxy boxes: ``DIoU - alpha v`` with the aspect-ratio term
    ``v = 4 / pi^2 (atan(w_b / h_b) - atan(w_a / h_a))^2`` and ``alpha = v / (1 - IoU + v + eps)``, alpha held
    constant under autograd (the paper's gradient)."""
    iou, _, cw, ch = _overlap(a, b, 0.0)
    v = _aspect_term(a, b)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - _center_term(a, b, cw, ch, eps) - alpha * v


def _aspect_term(a: Tensor, b: Tensor) -> Tensor:
    wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return (4 / math.pi**2) * (torch.atan(wa / ha) - torch.atan(wb / hb)) ** 2


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise GIoU of ``a`` Tensor[N, 4] and ``b`` Tensor[M, 4] (xyxy) -> Tensor[N, M]."""
    return elementwise_generalized_box_iou(a[:, None, :], b[None, :, :])


def distance_box_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise DIoU of ``a`` Tensor[N, 4] and ``b`` Tensor[M, 4] (xyxy) -> Tensor[N, M]."""
    return elementwise_distance_box_iou(a[:, None, :], b[None, :, :], eps)


def complete_box_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise CIoU of ``a`` Tensor[N, 4] and ``b`` Tensor[M, 4] (xyxy) -> Tensor[N, M]."""
    return elementwise_complete_box_iou(a[:, None, :], b[None, :, :], eps)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def generalized_box_iou_loss(a: Tensor, b: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - GIoU`` of corresponding xyxy boxes Tensor[..., 4], ``eps`` added to the union and the enclosing area."""
    return _reduce(1 - elementwise_generalized_box_iou(a, b, eps), reduction)


def distance_box_iou_loss(a: Tensor, b: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - DIoU`` of corresponding xyxy boxes Tensor[..., 4] (``eps`` in the union and in ``c^2``)."""
    iou, _, cw, ch = _overlap(a, b, eps)
    return _reduce(1 - iou + _center_term(a, b, cw, ch, eps), reduction)


def complete_box_iou_loss(a: Tensor, b: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - CIoU`` of corresponding xyxy boxes Tensor[..., 4] (``eps`` in the union, ``c^2`` and ``alpha``)."""
    iou, _, cw, ch = _overlap(a, b, eps)
    v = _aspect_term(a, b)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(1 - iou + _center_term(a, b, cw, ch, eps) + alpha * v, reduction)


def _to_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    c0, c1, c2, c3 = boxes.unbind(-1)
    if fmt == "xyxy":
        return boxes
    if fmt == "xywh":
        return torch.stack([c0, c1, c0 + c2, c1 + c3], dim=-1)
    if fmt == "cxcywh":
        return torch.stack([c0 - 0.5 * c2, c1 - 0.5 * c3, c0 + 0.5 * c2, c1 + 0.5 * c3], dim=-1)
    return torch.stack([c1, c0, c3, c2], dim=-1)  # tlbr: (top, left, bottom, right) = (y1, x1, y2, x2)


def _from_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xyxy":
        return boxes
    if fmt == "xywh":
        return torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    if fmt == "cxcywh":
        return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    return torch.stack([y1, x1, y2, x2], dim=-1)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes`` Tensor[..., 4] from ``in_fmt`` to ``out_fmt``, each one of ``BOX_FORMATS`` (see module doc).

    Returns a new tensor unless the two formats are equal (then ``boxes`` itself).
    """
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"box_convert: {name} must be one of {BOX_FORMATS}, got {fmt!r}")
    if in_fmt == out_fmt:
        return boxes
    return _from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt)


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clip ``boxes`` Tensor[..., 4 * K] (xyxy groups) to an image ``image_size = (height, width)``.

    Every x is clamped to [0, width] and every y to [0, height]; K > 1 clips per-class boxes in place of reshaping.
    """
    if boxes.shape[-1] % 4:
        raise ValueError(f"clip_boxes expects boxes of shape [..., 4 * K], got {list(boxes.shape)}")
    height, width = image_size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack([x, y], dim=-1).reshape(boxes.shape)  # (x1, y1), (x2, y2), ... interleaved back


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (Tensor[K] int64, increasing) of ``boxes`` Tensor[N, 4] (xyxy) whose width and height are >= min_size.

    Degenerate boxes (zero or negative width or height) are removed for any ``min_size > 0``.
    """
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]


def _centers_and_sizes(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights, widths, heights


def encode_boxes(boxes: Tensor, anchors: Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """The R-CNN parametrization of ``boxes`` relative to ``anchors`` (both Tensor[..., 4], xyxy) -> Tensor[..., 4].

    Lecture (Fast R-CNN, Girshick 2015, eq. for t; R-CNN appendix C), with x, y the box center and w, h its size:
    ``t_x = (x - x_r) / w_r``, ``t_y = (y - y_r) / h_r``, ``t_w = log(w / w_r)``, ``t_h = log(h / h_r)``,
    each multiplied by its weight ``(w_x, w_y, w_w, w_h)``; Fast/Faster R-CNN's box heads use (10, 10, 5, 5), which
    scales the targets to roughly unit variance. The output is ``(t_x, t_y, t_w, t_h)`` in this order.
    """
    anchor_x, anchor_y, anchor_w, anchor_h = _centers_and_sizes(anchors)
    box_x, box_y, box_w, box_h = _centers_and_sizes(boxes)
    wx, wy, ww, wh = weights
    return torch.stack([
        wx * (box_x - anchor_x) / anchor_w,
        wy * (box_y - anchor_y) / anchor_h,
        ww * torch.log(box_w / anchor_w),
        wh * torch.log(box_h / anchor_h),
    ], dim=-1)


def decode_boxes(deltas: Tensor, anchors: Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
                 clamp: float = DEFAULT_DELTA_CLAMP) -> Tensor:
    """Boxes (xyxy) from ``deltas`` ``(t_x, t_y, t_w, t_h)`` relative to ``anchors``; inverse of :func:`encode_boxes`.

    ``deltas`` is Tensor[N, 4 * K] (K boxes per anchor, e.g. one per class: each group of 4 is decoded against the
    same anchor) and ``anchors`` Tensor[N, 4]; the result is Tensor[N, 4 * K] in the dtype of ``deltas``. Leading
    axes before N are allowed on both (broadcast). ``t_w``, ``t_h`` (after dividing by their weights) are clamped to
    at most ``clamp`` before ``exp``, so that an untrained regressor cannot overflow (Detectron, torchvision).
    """
    if deltas.shape[-1] % 4:
        raise ValueError(f"decode_boxes expects deltas of shape [N, 4 * K], got {list(deltas.shape)}")
    anchors = anchors.to(deltas.dtype)
    anchor_x, anchor_y, anchor_w, anchor_h = (v[..., None] for v in _centers_and_sizes(anchors))
    # [..., N, 4 * K] -> [..., N, K, 4]: one group of four numbers per decoded box
    grouped = deltas.unflatten(-1, (-1, 4))
    wx, wy, ww, wh = weights
    box_x = grouped[..., 0] / wx * anchor_w + anchor_x
    box_y = grouped[..., 1] / wy * anchor_h + anchor_y
    box_w = torch.exp((grouped[..., 2] / ww).clamp(max=clamp)) * anchor_w
    box_h = torch.exp((grouped[..., 3] / wh).clamp(max=clamp)) * anchor_h
    boxes = torch.stack([box_x - 0.5 * box_w, box_y - 0.5 * box_h, box_x + 0.5 * box_w, box_y + 0.5 * box_h], dim=-1)
    return boxes.flatten(-2)  # [..., N, K, 4] -> [..., N, 4 * K]


def smooth_l1(input: Tensor, target: Tensor, beta: float = 1.0, reduction: str = "sum") -> Tensor:
    """Smooth L1 loss of ``input - target`` (same shapes), reduced by ``"sum"``, ``"mean"`` or ``"none"``.

    Lecture (Fast R-CNN eq. 3), at ``beta = 1``: ``0.5 x^2`` if ``|x| < 1``, else ``|x| - 0.5``. In general
    ``0.5 x^2 / beta`` if ``|x| < beta``, else ``|x| - 0.5 beta``; ``beta = 0`` is the L1 loss. torchvision's RPN uses
    ``beta = 1/9``. Equals ``torch.nn.functional.smooth_l1_loss``. The default reduction is ``"sum"``, as the
    R-CNN losses sum and then divide by the sample count.
    """
    if beta < 0:
        raise ValueError(f"smooth_l1 expects beta >= 0, got {beta}")
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"smooth_l1: reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    diff = (input - target).abs()
    loss = diff if beta == 0 else torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


__all__ = [
    "BOX_FORMATS", "DEFAULT_DELTA_CLAMP", "box_area", "box_convert", "box_iou", "clip_boxes", "decode_boxes",
    "elementwise_box_iou", "encode_boxes", "remove_small_boxes", "smooth_l1",
]
