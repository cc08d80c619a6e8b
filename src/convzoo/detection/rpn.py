"""Region proposal network (Ren et al. 2015, "Faster R-CNN", Sec. 3.1).

A 3x3 convolution slides over each feature map; two sibling 1x1 convolutions give, per position, ``A`` objectness
logits and ``4A`` box deltas relative to the position's ``A`` anchors (3 scales x 3 aspect ratios on one map, or one
size per FPN level). Training (Sec. 3.1.2): an anchor is positive at IoU >= 0.7 with a ground-truth box (or if it is
a box's best anchor), negative below 0.3; 256 anchors per image are sampled at up to 1:1. Proposals: the top-scoring
anchors per level, decoded, clipped, tiny ones removed, NMS at 0.7, the best ``post_nms_top_n`` kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.detection.anchors import AnchorGenerator
from convzoo.detection.boxes import box_iou, clip_boxes, decode_boxes, encode_boxes, remove_small_boxes, smooth_l1
from convzoo.detection.matcher import match
from convzoo.detection.ops import batched_nms
from convzoo.detection.sampler import sample_labels


@dataclass
class RPNConfig:
    """Numbers of the RPN; defaults are the paper's thresholds with torchvision's FPN proposal counts."""

    fg_iou: float = 0.7
    bg_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_train: int = 2000
    post_nms_top_n_test: int = 1000
    nms_thresh: float = 0.7
    score_thresh: float = 0.0
    min_size: float = 1e-3
    smooth_l1_beta: float = 1.0 / 9


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then ``objectness`` (A logits) and ``deltas`` (4A) per position; shared by all levels."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.objectness = nn.Conv2d(in_channels, num_anchors, 1)
        self.deltas = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)  # Sec. 3.1.3: zero-mean Gaussian, std 0.01
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level: objectness Tensor[N, A, H, W] and deltas Tensor[N, 4A, H, W]."""
        hidden = [F.relu(self.conv(feature)) for feature in features]
        return [self.objectness(h) for h in hidden], [self.deltas(h) for h in hidden]


def flatten_predictions(objectness: list[torch.Tensor], deltas: list[torch.Tensor],
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level maps -> Tensor[N, R] logits and Tensor[N, R, 4] deltas, rows ordered level, y, x, anchor
    (the order of :func:`convzoo.detection.anchors.grid_anchors`)."""
    flat_logits, flat_deltas = [], []
    for logits, delta in zip(objectness, deltas):
        n, a, h, w = logits.shape
        flat_logits.append(logits.permute(0, 2, 3, 1).reshape(n, h * w * a))  # [N, A, H, W] -> [N, H*W*A]
        # [N, 4A, H, W] -> [N, A, 4, H, W] -> [N, H, W, A, 4] -> [N, H*W*A, 4]
        flat_deltas.append(delta.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, h * w * a, 4))
    return torch.cat(flat_logits, dim=1), torch.cat(flat_deltas, dim=1)


def select_proposals(boxes: torch.Tensor, logits: torch.Tensor, anchors_per_level: list[int],
                     image_sizes: list[tuple[int, int]], pre_nms_top_n: int, post_nms_top_n: int,
                     nms_thresh: float, score_thresh: float, min_size: float,
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Decoded boxes Tensor[N, R, 4] (xyxy) and their logits Tensor[N, R] -> per image Tensor[P, 4] proposals and
    Tensor[P] objectness probabilities, best first. NMS runs separately per level (as Detectron/torchvision)."""
    levels = torch.cat([torch.full((n,), level, dtype=torch.int64, device=boxes.device)
                        for level, n in enumerate(anchors_per_level)])
    top_index, offset = [], 0
    for n in anchors_per_level:  # the pre_nms_top_n best anchors of every level
        top_index.append(logits[:, offset:offset + n].topk(min(pre_nms_top_n, n), dim=1).indices + offset)
        offset += n
    top_index = torch.cat(top_index, dim=1)
    batch = torch.arange(len(boxes), device=boxes.device)[:, None]
    boxes, scores, levels = boxes[batch, top_index], torch.sigmoid(logits[batch, top_index]), levels[top_index]
    proposals, probabilities = [], []
    for image_boxes, image_scores, image_levels, size in zip(boxes, scores, levels, image_sizes):
        image_boxes = clip_boxes(image_boxes, size)
        keep = remove_small_boxes(image_boxes, min_size)
        keep = keep[image_scores[keep] >= score_thresh]
        image_boxes, image_scores, image_levels = image_boxes[keep], image_scores[keep], image_levels[keep]
        keep = batched_nms(image_boxes, image_scores, image_levels, nms_thresh)[:post_nms_top_n]
        proposals.append(image_boxes[keep])
        probabilities.append(image_scores[keep])
    return proposals, probabilities


def anchor_targets(anchors: torch.Tensor, gt_boxes: torch.Tensor, fg_iou: float, bg_iou: float,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sec. 3.1.2 labels for Tensor[R, 4] anchors -> (Tensor[R] labels: 1 object, 0 background, -1 ignored;
    Tensor[R, 4] the matched ground-truth box of every anchor, xyxy)."""
    if len(gt_boxes) == 0:
        return torch.zeros(len(anchors), device=anchors.device), torch.zeros_like(anchors)
    matches = match(box_iou(gt_boxes, anchors), fg_iou, bg_iou, allow_low_quality=True)
    labels = (matches >= 0).to(torch.float32)
    labels[matches == -2] = -1.0  # between the thresholds: neither object nor background
    return labels, gt_boxes[matches.clamp(min=0)]


def rpn_loss(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, targets: list[dict],
             config: RPNConfig) -> dict[str, torch.Tensor]:
    """Eq. (1) of the paper: binary cross-entropy of the objectness over the sampled anchors, plus smooth L1 on the
    deltas of the positive ones, both averaged over the sampled anchors. ``logits`` Tensor[N, R], ``deltas``
    Tensor[N, R, 4], ``anchors`` Tensor[R, 4] (the same for every image of the padded batch)."""
    sampled, positive, regression_targets = [], [], []
    offset = 0
    for target in targets:
        labels, matched = anchor_targets(anchors, target["boxes"], config.fg_iou, config.bg_iou)
        pos, neg = sample_labels(labels, config.batch_size_per_image, config.positive_fraction)
        sampled.append(torch.cat([pos, neg]) + offset)
        positive.append(pos + offset)
        regression_targets.append(encode_boxes(matched[pos], anchors[pos]))
        offset += len(anchors)
    sampled, positive = torch.cat(sampled), torch.cat(positive)
    flat_labels = torch.zeros(offset, device=logits.device)
    flat_labels[positive] = 1.0
    box_loss = smooth_l1(deltas.reshape(-1, 4)[positive], torch.cat(regression_targets), beta=config.smooth_l1_beta,
                         reduction="sum") / max(1, len(sampled))
    objectness_loss = F.binary_cross_entropy_with_logits(logits.reshape(-1)[sampled], flat_labels[sampled])
    return {"loss_objectness": objectness_loss, "loss_rpn_box_reg": box_loss}


class RegionProposalNetwork(nn.Module):
    """Anchors + head + proposal selection (+ losses in training), built from parts."""

    def __init__(self, *, anchor_generator: AnchorGenerator, head: RPNHead, config: RPNConfig | None = None) -> None:
        super().__init__()
        self.anchor_generator, self.head = anchor_generator, head
        self.config = config or RPNConfig()

    def forward(self, features: list[torch.Tensor], batch_shape: tuple[int, int],
                image_sizes: list[tuple[int, int]], targets: list[dict] | None = None,
                ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Feature maps of a padded batch of shape ``batch_shape`` (H, W) -> per-image proposals Tensor[P, 4] (xyxy)
        and, given targets, the losses ``loss_objectness`` and ``loss_rpn_box_reg``."""
        objectness, deltas = self.head(features)
        anchors = torch.cat(self.anchor_generator(batch_shape, [f.shape[-2:] for f in features]))
        anchors_per_level = [o[0].numel() for o in objectness]
        logits, flat_deltas = flatten_predictions(objectness, deltas)
        boxes = decode_boxes(flat_deltas.detach(), anchors)  # [N, R, 4]: one box per anchor
        config = self.config
        pre, post = ((config.pre_nms_top_n_train, config.post_nms_top_n_train) if self.training
                     else (config.pre_nms_top_n_test, config.post_nms_top_n_test))
        proposals, _ = select_proposals(boxes, logits.detach(), anchors_per_level, image_sizes, pre, post,
                                        config.nms_thresh, config.score_thresh, config.min_size)
        losses = {}
        if self.training:
            if targets is None:
                raise ValueError("the RPN needs targets in training mode")
            losses = rpn_loss(logits, flat_deltas, anchors, targets, config)
        return proposals, losses
