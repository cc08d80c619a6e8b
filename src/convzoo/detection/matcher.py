"""Matching predictions (anchors, proposals) to ground-truth boxes by IoU thresholds.

Faster R-CNN (Ren et al. 2015, Sec. 3.1.2) labels an anchor positive if its IoU with some ground truth is >= 0.7,
negative if its IoU is < 0.3 with every ground truth, and ignores the rest; in addition every ground truth keeps
the anchor(s) with its highest IoU, so that no object is left without a positive anchor. Fast R-CNN's RoI head
uses one threshold (0.5) for both. The result is a pure function of the IoU matrix; ``Matcher`` only holds the
thresholds. The semantics equal torchvision's ``Matcher`` (and Detectron's), including the quirk noted below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

BELOW_LOW = -1  # best IoU < low: background
BETWEEN = -2  # low <= best IoU < high: ignored by the loss


def match(iou: Tensor, high: float, low: float, allow_low_quality: bool = False) -> Tensor:
    """For every prediction, the index of its matched ground truth, or ``BELOW_LOW`` / ``BETWEEN`` -> Tensor[N] int64.

    ``iou`` is Tensor[G, N]: G ground truths against N predictions (e.g. ``box_iou(gt_boxes, anchors)``).
    A prediction is matched to the ground truth of its highest IoU (the first one on ties) when that IoU is
    >= ``high``; it gets ``BETWEEN`` for an IoU in [low, high) and ``BELOW_LOW`` below ``low``.

    ``allow_low_quality``: each ground truth also keeps every prediction that attains its highest IoU (all ties);
    such a prediction is matched to *its own* best ground truth (which is usually, not always, the one that
    claimed it), as in py-faster-rcnn's ``anchor_target_layer`` and torchvision. Quirk kept for equality: a ground
    truth whose highest IoU is 0 claims every prediction it does not overlap (torchvision rejects degenerate boxes
    before this point; do the same).

    With no ground truth (G = 0) every prediction is ``BELOW_LOW``; torchvision raises instead.
    """
    if low > high:
        raise ValueError(f"match expects low <= high, got low={low}, high={high}")
    if iou.ndim != 2:
        raise ValueError(f"match expects an IoU matrix Tensor[G, N], got shape {list(iou.shape)}")
    num_gt, num_predictions = iou.shape
    if num_gt == 0:
        return torch.full((num_predictions,), BELOW_LOW, dtype=torch.int64, device=iou.device)
    if num_predictions == 0:
        return torch.empty(0, dtype=torch.int64, device=iou.device)
    best_iou, best_gt = iou.max(dim=0)  # [N]: best ground truth of every prediction
    matches = best_gt.clone()
    matches[best_iou < low] = BELOW_LOW
    matches[(best_iou >= low) & (best_iou < high)] = BETWEEN
    if allow_low_quality:
        highest_per_gt = iou.max(dim=1).values  # [G]
        claimed = torch.where(iou == highest_per_gt[:, None])[1]  # predictions that are some ground truth's best
        matches[claimed] = best_gt[claimed]
    return matches


@dataclass(frozen=True)
class Matcher:
    """IoU thresholds of a detector stage; calling it runs :func:`match`.

    RPN (Faster R-CNN): ``Matcher(0.7, 0.3, allow_low_quality=True)``; Fast R-CNN's RoI head: ``Matcher(0.5, 0.5)``.
    """

    high: float
    low: float
    allow_low_quality: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"Matcher expects low <= high, got low={self.low}, high={self.high}")

    def __call__(self, iou: Tensor) -> Tensor:
        return match(iou, self.high, self.low, self.allow_low_quality)


__all__ = ["BELOW_LOW", "BETWEEN", "Matcher", "match"]
