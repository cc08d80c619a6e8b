"""The course's bounding-box utilities (NPFL138 ``labs/06/bboxes_utils.py``) with its exact conventions.

The course writes a box as ``(top, left, bottom, right)`` (the constants ``TOP, LEFT, BOTTOM, RIGHT`` index it)
and an R-CNN parametrization y-first, ``(t_y, t_x, t_h, t_w)``: the lecture's ``t`` in the order
``(center_y, center_x, height, width)``. These functions are the library's ``(x1, y1, x2, y2)`` functions of
:mod:`convzoo.detection.boxes` behind a conversion, not a second implementation.

They accept NumPy arrays (as the course's tests pass) or tensors: NumPy (or lists) in, NumPy out; tensors in,
tensors out.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from convzoo.detection.boxes import box_area, box_convert, box_iou, decode_boxes, elementwise_box_iou, encode_boxes

TOP, LEFT, BOTTOM, RIGHT = 0, 1, 2, 3

# (t_x, t_y, t_w, t_h) <-> (t_y, t_x, t_h, t_w): the permutation is its own inverse
_SWAP_XY = [1, 0, 3, 2]

Array = np.ndarray | Tensor


def _tensor(array: Array, floating: bool = False) -> Tensor:
    tensor = torch.as_tensor(array)
    return tensor.float() if floating and not tensor.is_floating_point() else tensor


def _like(result: Tensor, reference: Array) -> Array:
    return result if isinstance(reference, Tensor) else result.numpy()


def _xyxy(bboxes: Tensor) -> Tensor:
    return box_convert(bboxes, "tlbr", "xyxy")


def bboxes_area(bboxes: Array) -> Array:
    """Areas of ``bboxes`` [..., 4] (top, left, bottom, right) -> [...]; an inverted box has area 0."""
    return _like(box_area(_xyxy(_tensor(bboxes))), bboxes)


def bboxes_iou(xs: Array, ys: Array) -> Array:
    """IoU of corresponding boxes of ``xs`` and ``ys`` [..., 4] (top, left, bottom, right), broadcast.

    ``xs`` of shape [N, 1, 4] with ``ys`` of shape [1, M, 4] gives all N x M pairs.
    """
    return _like(elementwise_box_iou(_xyxy(_tensor(xs)), _xyxy(_tensor(ys))), xs)


def bboxes_to_rcnn(anchors: Array, bboxes: Array) -> Array:
    """The R-CNN parametrization of ``bboxes`` relative to ``anchors`` (both [N, 4], top-left-bottom-right).

    Returns [N, 4] rows ``((y - y_a) / h_a, (x - x_a) / w_a, log(h / h_a), log(w / w_a))`` of the box centers
    ``(y, x)`` and sizes ``(h, w)``.
    """
    deltas = encode_boxes(_xyxy(_tensor(bboxes, floating=True)), _xyxy(_tensor(anchors, floating=True)))
    return _like(deltas[..., _SWAP_XY], anchors)


def bboxes_from_rcnn(anchors: Array, rcnns: Array) -> Array:
    """Boxes (top, left, bottom, right) [N, 4] from the y-first R-CNN parametrization ``rcnns`` [N, 4].

    The inverse of :func:`bboxes_to_rcnn`; as in the course, ``t_h`` and ``t_w`` are not clamped.
    """
    deltas = _tensor(rcnns, floating=True)[..., _SWAP_XY]
    boxes = decode_boxes(deltas, _xyxy(_tensor(anchors, floating=True)), clamp=math.inf)
    return _like(box_convert(boxes, "xyxy", "tlbr"), anchors)


def bboxes_training(anchors: Array, gold_classes: Array, gold_bboxes: Array,
                    iou_threshold: float) -> tuple[Array, Array]:
    """Training targets of every anchor -> ``(anchor_classes [N], anchor_bboxes [N, 4])``.

    ``anchors`` [N, 4] and ``gold_bboxes`` [G, 4] are (top, left, bottom, right), ``gold_classes`` [G] zero-based.
    An anchor gets class ``1 + gold_class`` of its assigned gold object and its :func:`bboxes_to_rcnn` parameters,
    or class 0 (background) and zeros. The course's assignment:

    1. each gold object takes the anchor of its largest IoU (the smaller anchor index on ties); when several gold
       objects take the same anchor, the one with the smaller index keeps it;
    2. each anchor still unused takes the gold object of its largest IoU (the smaller index on ties) if that
       IoU is >= ``iou_threshold``.

    Unlike the RPN's :func:`convzoo.detection.matcher.match`, step 1 wins over step 2 and each gold object
    claims one anchor only.
    """
    anchors_t = _tensor(anchors, floating=True)
    gold_bboxes_t = _tensor(gold_bboxes, floating=True).reshape(-1, 4)
    gold_classes_t = _tensor(gold_classes)
    if not gold_classes_t.is_floating_point() and gold_classes_t.dtype != torch.bool:
        class_dtype = gold_classes_t.dtype
    else:
        class_dtype = torch.int64
    num_anchors, num_gold, device = len(anchors_t), len(gold_bboxes_t), anchors_t.device

    assigned = torch.full((num_anchors,), -1, dtype=torch.int64, device=device)
    if num_gold and num_anchors:
        iou = box_iou(_xyxy(gold_bboxes_t), _xyxy(anchors_t))  # [G, N]
        # step 1: scatter each gold index onto its best anchor, keeping the smallest gold index per anchor
        best_anchor = iou.argmax(dim=1)  # [G], argmax returns the first maximum
        gold_index = torch.arange(num_gold, device=device)
        claimed = torch.full((num_anchors,), num_gold, device=device)
        claimed = claimed.scatter_reduce(0, best_anchor, gold_index, reduce="amin")
        assigned = torch.where(claimed < num_gold, claimed, assigned)
        # step 2: unused anchors take their best gold object above the threshold
        best_gold = iou.argmax(dim=0)  # [N]
        best_iou = iou.gather(0, best_gold[None]).squeeze(0)
        take = (assigned < 0) & (best_iou >= iou_threshold)
        assigned[take] = best_gold[take]

    matched = assigned >= 0
    anchor_classes = torch.zeros(num_anchors, dtype=class_dtype, device=device)
    anchor_classes[matched] = 1 + gold_classes_t.reshape(-1)[assigned[matched]].to(class_dtype)
    anchor_bboxes = torch.zeros(num_anchors, 4, dtype=anchors_t.dtype, device=device)
    anchor_bboxes[matched] = bboxes_to_rcnn(anchors_t[matched], gold_bboxes_t[assigned[matched]])
    return _like(anchor_classes, anchors), _like(anchor_bboxes, anchors)


__all__ = [
    "BOTTOM", "LEFT", "RIGHT", "TOP", "bboxes_area", "bboxes_from_rcnn", "bboxes_iou", "bboxes_to_rcnn",
    "bboxes_training",
]
