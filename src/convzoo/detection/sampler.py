"""Sampling a fixed-size, class-balanced mini-batch of anchors or RoIs (lecture: "Fast R-CNN", "Faster R-CNN").

Fast R-CNN (Girshick 2015, Sec. 2.3): "The RoIs are selected so that 25% have IoU overlap with ground-truth boxes
at least 0.5; the others are chosen to have the IoU in range [0.1, 0.5)" - 64 RoIs per image, 2 images per batch.
Faster R-CNN's RPN (Ren et al. 2015, Sec. 3.1.3) samples 256 anchors per image with up to half positive, padding
with negatives. Both are :func:`sample_labels` over a label vector; :func:`roi_labels` builds Fast R-CNN's labels.
"""

from __future__ import annotations

import torch
from torch import Tensor

FOREGROUND, BACKGROUND, IGNORE = 1, 0, -1


def sample_labels(labels: Tensor, num_samples: int, positive_fraction: float,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Random positive and negative indices into ``labels`` -> ``(pos_idx, neg_idx)``, two Tensor[K] int64.

    ``labels`` is Tensor[N]: >= 1 foreground (a class), 0 background, -1 ignored. At most
    ``int(num_samples * positive_fraction)`` positives are drawn; negatives fill the rest of ``num_samples`` as far as
    there are any. Each side is drawn uniformly without replacement by ``randperm`` (from ``generator``, or the global
    RNG), in the same order of calls as torchvision's ``BalancedPositiveNegativeSampler``, so that with the same seed
    both pick the same indices.
    """
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"sample_labels expects positive_fraction in [0, 1], got {positive_fraction}")
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_positive = min(positive.numel(), int(num_samples * positive_fraction))
    num_negative = min(negative.numel(), num_samples - num_positive)
    pos_pick = torch.randperm(positive.numel(), device=labels.device, generator=generator)[:num_positive]
    neg_pick = torch.randperm(negative.numel(), device=labels.device, generator=generator)[:num_negative]
    return positive[pos_pick], negative[neg_pick]


def roi_labels(max_iou: Tensor, fg_threshold: float = 0.5, bg_low: float = 0.1, bg_high: float = 0.5) -> Tensor:
    """Fast R-CNN's RoI labels from each RoI's highest IoU with any ground truth -> Tensor[N] int64.

    ``max_iou`` is Tensor[N] (e.g. ``box_iou(gt, rois).max(dim=0).values``). A RoI is ``FOREGROUND`` (1) if
    ``max_iou >= fg_threshold``, ``BACKGROUND`` (0) if ``bg_low <= max_iou < bg_high``, else ``IGNORE`` (-1). The
    paper's ``bg_low = 0.1`` is a heuristic for hard example mining; torchvision and Detectron use ``bg_low = 0``
    (every RoI under 0.5 is background). Multiply the foreground mask by the matched class to get class labels.
    """
    if not bg_low <= bg_high <= fg_threshold:
        raise ValueError(f"roi_labels expects bg_low <= bg_high <= fg_threshold, got {bg_low}, {bg_high}, "
                         f"{fg_threshold}")
    labels = torch.full(max_iou.shape, IGNORE, dtype=torch.int64, device=max_iou.device)
    labels[(max_iou >= bg_low) & (max_iou < bg_high)] = BACKGROUND
    labels[max_iou >= fg_threshold] = FOREGROUND
    return labels


__all__ = ["BACKGROUND", "FOREGROUND", "IGNORE", "roi_labels", "sample_labels"]
