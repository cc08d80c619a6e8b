"""Fast R-CNN box head and the RoI-head composition of Faster/Mask R-CNN (Girshick 2015; He et al. 2017).

The box head (Fast R-CNN Sec. 2): RoI features (7x7, RoIPool or RoIAlign) -> two fully connected layers -> two
siblings, K+1 class scores and 4K class-specific box deltas. Loss (eq. 1): ``L = CE(p, u) + lambda [u >= 1]
smooth_L1(t^u - v)``. RoI sampling (Sec. 2.3): a fraction of foreground RoIs (IoU >= 0.5), the rest background with
IoU in [bg_iou_low, 0.5) (the paper: [0.1, 0.5); torchvision and our default: [0, 0.5)). Inference (Sec. 2.4):
per-class decoding, a score threshold, per-class NMS, at most ``detections_per_image``.
Masks and keypoints are optional branches (``MaskBranch``, ``KeypointBranch``) run on the positive or detected boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.detection.boxes import box_iou, clip_boxes, decode_boxes, encode_boxes, remove_small_boxes, smooth_l1
from convzoo.detection.matcher import match
from convzoo.detection.ops import batched_nms
from convzoo.detection.poolers import RoIPooler
from convzoo.detection.sampler import sample_labels


@dataclass
class RoIHeadsConfig:
    """Numbers of the box head; defaults are torchvision's (= Detectron's) Faster R-CNN FPN settings."""

    fg_iou: float = 0.5
    bg_iou_high: float = 0.5
    bg_iou_low: float = 0.0
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    smooth_l1_beta: float = 1.0 / 9
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_image: int = 100
    min_size: float = 1e-2


class TwoMLPHead(nn.Module):
    """Tensor[K, C, 7, 7] RoI features -> flatten -> fc6 -> ReLU -> fc7 -> ReLU -> Tensor[K, representation]."""

    def __init__(self, in_features: int, representation: int = 1024) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation)
        self.fc7 = nn.Linear(representation, representation)
        self.out_features = representation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class Res5Head(nn.Module):
    """ResNet C4's RoI head: res5 (stride 2 on 14x14 RoI features) and global average pooling -> Tensor[K, 2048]."""

    def __init__(self, res5: nn.Module, out_features: int) -> None:
        super().__init__()
        self.res5 = res5
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res5(x).mean(dim=(2, 3))


class BoxPredictor(nn.Module):
    """The two siblings: ``cls_score`` (K+1 logits, class 0 = background) and ``bbox_pred`` (4 deltas per class)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)  # Sec. 2.3: std 0.01 for scores, 0.001 for boxes
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def roi_targets(proposals: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, config: RoIHeadsConfig,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor[P, 4] proposals -> (Tensor[P] class labels: 0 background, -1 ignored; Tensor[P] matched gt index)."""
    if len(gt_boxes) == 0:
        zeros = torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
        return zeros, zeros
    iou = box_iou(gt_boxes, proposals)
    matches = match(iou, config.fg_iou, config.bg_iou_high, allow_low_quality=False)
    matched = matches.clamp(min=0)
    labels = gt_labels[matched].to(torch.int64)
    labels[matches == -1] = 0
    labels[matches == -2] = -1
    if config.bg_iou_low > 0:  # Fast R-CNN Sec. 2.3: background only from IoU in [0.1, 0.5)
        labels[(matches == -1) & (iou.max(dim=0).values < config.bg_iou_low)] = -1
    return labels, matched


def fast_rcnn_loss(class_logits: torch.Tensor, box_deltas: torch.Tensor, labels: torch.Tensor,
                   regression_targets: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """Eq. (1): cross-entropy over K+1 classes plus smooth L1 of the true class's deltas for foreground RoIs,
    normalized by the number of sampled RoIs. ``class_logits`` Tensor[R, K+1], ``box_deltas`` Tensor[R, 4(K+1)],
    ``labels`` Tensor[R], ``regression_targets`` Tensor[R, 4]."""
    classification = F.cross_entropy(class_logits, labels)
    positive = torch.nonzero(labels > 0).squeeze(1)
    deltas = box_deltas.reshape(len(box_deltas), class_logits.shape[-1], 4)[positive, labels[positive]]  # [R_pos, 4]
    box_loss = smooth_l1(deltas, regression_targets[positive], beta=beta, reduction="sum") / max(1, labels.numel())
    return {"loss_classifier": classification, "loss_box_reg": box_loss}


def detect_boxes(class_logits: torch.Tensor, box_deltas: torch.Tensor, proposals: list[torch.Tensor],
                 image_sizes: list[tuple[int, int]], config: RoIHeadsConfig) -> list[dict]:
    """Sec. 2.4 inference: per-class boxes and softmax scores -> per image ``boxes`` Tensor[D, 4] (xyxy),
    ``scores`` Tensor[D], ``labels`` Tensor[D] (>= 1), best first, after per-class NMS."""
    num_classes = class_logits.shape[-1]
    # num_classes, not -1: with no proposals at all (an empty image, a diverged RPN) -1 would be ambiguous
    boxes = decode_boxes(box_deltas, torch.cat(proposals), config.box_weights).reshape(len(box_deltas),
                                                                                       num_classes, 4)
    scores = F.softmax(class_logits, -1)
    detections = []
    for image_boxes, image_scores, size in zip(boxes.split([len(p) for p in proposals]),
                                               scores.split([len(p) for p in proposals]), image_sizes):
        image_boxes = clip_boxes(image_boxes, size)
        labels = torch.arange(num_classes, device=image_boxes.device).expand_as(image_scores)
        # drop the background column, then one candidate per (proposal, class): [P, K, 4] -> [P * K, 4]
        image_boxes = image_boxes[:, 1:].reshape(-1, 4)
        image_scores, labels = image_scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
        keep = torch.nonzero(image_scores > config.score_thresh).squeeze(1)
        image_boxes, image_scores, labels = image_boxes[keep], image_scores[keep], labels[keep]
        keep = remove_small_boxes(image_boxes, config.min_size)
        image_boxes, image_scores, labels = image_boxes[keep], image_scores[keep], labels[keep]
        keep = batched_nms(image_boxes, image_scores, labels, config.nms_thresh)[:config.detections_per_image]
        detections.append({"boxes": image_boxes[keep], "scores": image_scores[keep], "labels": labels[keep]})
    return detections


class RoIHeads(nn.Module):
    """Box head + optional mask and keypoint branches, each built outside and passed in.

    ``forward(features, proposals, image_sizes, targets)`` returns per-image detections (evaluation) and a dict of
    losses (training). Targets are dicts with ``boxes`` Tensor[G, 4] (xyxy), ``labels`` Tensor[G] (>= 1) and, for the
    branches, ``masks`` Tensor[G, H, W] or ``keypoints`` Tensor[G, K, 3].
    """

    def __init__(self, *, box_pooler: RoIPooler, box_head: nn.Module, box_predictor: BoxPredictor,
                 config: RoIHeadsConfig | None = None, mask_branch: nn.Module | None = None,
                 keypoint_branch: nn.Module | None = None) -> None:
        super().__init__()
        self.box_pooler, self.box_head, self.box_predictor = box_pooler, box_head, box_predictor
        self.config = config or RoIHeadsConfig()
        self.mask_branch, self.keypoint_branch = mask_branch, keypoint_branch

    def sample(self, proposals: list[torch.Tensor], targets: list[dict],
               ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Training RoIs: proposals + ground truth (so every object has a positive), sampled per image ->
        (RoIs, their labels, their matched gt index, the stacked Tensor[R, 4] regression targets)."""
        rois, labels, matched, regression = [], [], [], []
        for image_proposals, target in zip(proposals, targets):
            gt_boxes = target["boxes"].to(image_proposals.dtype)
            candidates = torch.cat([image_proposals, gt_boxes])
            image_labels, image_matched = roi_targets(candidates, gt_boxes, target["labels"], self.config)
            pos, neg = sample_labels(image_labels, self.config.batch_size_per_image, self.config.positive_fraction)
            keep = torch.cat([pos, neg])
            rois.append(candidates[keep])
            labels.append(image_labels[keep])
            matched.append(image_matched[keep])
            reference = gt_boxes[image_matched[keep]] if len(gt_boxes) else torch.zeros_like(candidates[keep])
            regression.append(encode_boxes(reference, candidates[keep], self.config.box_weights))
        return rois, labels, matched, torch.cat(regression)

    def forward(self, features: list[torch.Tensor], proposals: list[torch.Tensor],
                image_sizes: list[tuple[int, int]], targets: list[dict] | None = None,
                ) -> tuple[list[dict], dict[str, torch.Tensor]]:
        losses: dict[str, torch.Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("the RoI heads need targets in training mode")
            proposals, labels, matched, regression_targets = self.sample(proposals, targets)
        class_logits, box_deltas = self.box_predictor(self.box_head(self.box_pooler(features, proposals)))
        if self.training:
            losses.update(fast_rcnn_loss(class_logits, box_deltas, torch.cat(labels), regression_targets,
                                         self.config.smooth_l1_beta))
            positive = [torch.nonzero(image_labels > 0).squeeze(1) for image_labels in labels]
            for branch in (self.mask_branch, self.keypoint_branch):
                if branch is not None:
                    losses.update(branch.loss(features, [p[i] for p, i in zip(proposals, positive)],
                                              [m[i] for m, i in zip(matched, positive)],
                                              [y[i] for y, i in zip(labels, positive)], targets))
            return [], losses
        detections = detect_boxes(class_logits, box_deltas, proposals, image_sizes, self.config)
        for branch in (self.mask_branch, self.keypoint_branch):
            if branch is not None:
                branch.predict(features, detections)
        return detections, losses
