"""A convzoo R-CNN as one exportable graph: a batch tensor in, one flat set of detections out.

    graph = DetectorGraph(create_model("mask_rcnn_r50_fpn").eval())
    boxes, scores, labels, batch_index, masks = graph(images)      # images Tensor[N, 3, H, W] in [0, 1]

Inputs: ``images`` Tensor[N, 3, H, W], values in [0, 1], already at the size the detector runs at (the eager
model's transform resizes the shorter side to ``min_size``; the graph does not: it normalizes, zero-pads to a
multiple of 32 and detects). Fast R-CNN (no RPN) takes ``proposals`` Tensor[P, 5] ``(image, x1, y1, x2, y2)``
too. Outputs, one row per detection of any image, image-major and best first within an image:
``boxes`` Tensor[D, 4] (xyxy, input pixels), ``scores`` Tensor[D], ``labels`` Tensor[D] int64 (>= 1),
``batch_index`` Tensor[D] int64, and ``masks`` Tensor[D, 1, H, W] probabilities (Mask R-CNN) or ``keypoints``
Tensor[D, K, 3] and ``keypoints_scores`` Tensor[D, K] (Keypoint R-CNN). With no detection D = 0.

The eager model on the same images (when its resize is the identity) gives the same detections: the same modules
and box arithmetic, with the per-image loops replaced by the flat forms of :mod:`convzoo.export.detector_ops`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convzoo.detection.anchors import grid_anchors
from convzoo.detection.boxes import clip_boxes, decode_boxes
from convzoo.detection.detector import RCNN
from convzoo.detection.poolers import RoIPooler, fpn_levels
from convzoo.detection.rpn import flatten_predictions
from convzoo.export.detector_ops import (
    grouped_nms,
    heatmaps_to_keypoints_dense,
    image_major,
    paste_masks_dense,
    rank_within,
)


def pool_rois(pooler: RoIPooler, features: list[Tensor], rois: Tensor) -> Tensor:
    """:class:`RoIPooler` on Tensor[K, 5] rois; an FPN's levels by a scatter of each level's rows (no Python
    branch on the number of RoIs per level)."""
    features = features[:len(pooler.strides)]
    if len(features) == 1:
        return pooler._extract(features[0], rois, pooler.strides[0])
    k_min, k_max = int(math.log2(pooler.strides[0])), int(math.log2(pooler.strides[-1]))
    levels = fpn_levels(rois[:, 1:], k_min, k_max) - k_min
    size = pooler.output_size
    result = features[0].new_zeros((rois.shape[0], features[0].shape[1], size, size))
    for level, (feature, stride) in enumerate(zip(features, pooler.strides)):
        index = torch.nonzero(levels == level).squeeze(1)
        result = result.index_put((index,), pooler._extract(feature, rois[index], stride))
    return result


class DetectorGraph(nn.Module):
    """The inference of an :class:`RCNN` in eval mode with tensor inputs and flat outputs (see module doc)."""

    def __init__(self, model: RCNN) -> None:
        super().__init__()
        self.model = model
        self.has_masks = getattr(model.roi_heads, "mask_branch", None) is not None
        self.has_keypoints = getattr(model.roi_heads, "keypoint_branch", None) is not None
        transform = model.transform
        self.register_buffer("mean", torch.tensor(transform.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(transform.std).view(1, -1, 1, 1), persistent=False)

    @property
    def output_names(self) -> list[str]:
        names = ["boxes", "scores", "labels", "batch_index"]
        if self.has_masks:
            names.append("masks")
        if self.has_keypoints:
            names += ["keypoints", "keypoints_scores"]
        return names

    def proposals(self, features: list[Tensor], padded: tuple[int, int], size: tuple[int, int], num_images: int
                  ) -> Tensor:
        """The RPN's proposals of every image as Tensor[P, 5] ``(image, x1, y1, x2, y2)`` (see rpn.py)."""
        rpn = self.model.rpn
        config = rpn.config
        objectness, deltas = rpn.head(features)
        generator = rpn.anchor_generator
        anchors = torch.cat([grid_anchors(tuple(f.shape[-2:]), (padded[0] // f.shape[-2], padded[1] // f.shape[-1]),
                                          generator.cell(level)) for level, f in enumerate(features)])
        per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
        logits, flat_deltas = flatten_predictions(objectness, deltas)
        boxes = decode_boxes(flat_deltas, anchors)  # [N, R, 4]
        top, levels, offset = [], [], 0
        for level, count in enumerate(per_level):
            index = logits[:, offset:offset + count].topk(torch.sym_min(config.pre_nms_top_n_test, count), dim=1)[1]
            top.append(index + offset)
            levels.append(torch.full_like(index, level))
            offset += count
        top, levels = torch.cat(top, 1), torch.cat(levels, 1)
        boxes = clip_boxes(boxes.gather(1, top[..., None].expand(-1, -1, 4)), size).reshape(-1, 4)
        scores = torch.sigmoid(logits.gather(1, top)).reshape(-1)
        images = torch.arange(num_images, device=boxes.device)[:, None].expand_as(top).reshape(-1)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = torch.nonzero((widths >= config.min_size) & (heights >= config.min_size)
                             & (scores >= config.score_thresh)).squeeze(1)
        boxes, scores, images, levels = boxes[keep], scores[keep], images[keep], levels.reshape(-1)[keep]
        keep = grouped_nms(boxes, scores, images * len(per_level) + levels, config.nms_thresh)
        keep = keep[rank_within(images[keep], num_images) < config.post_nms_top_n_test]
        return torch.cat([images[keep, None].to(boxes.dtype), boxes[keep]], dim=1)

    def detect(self, features: list[Tensor], rois: Tensor, size: tuple[int, int], num_images: int
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Fast R-CNN inference (roi_heads.detect_boxes) on Tensor[P, 5] rois -> boxes, scores, labels, images."""
        heads = self.model.roi_heads
        config = heads.config
        class_logits, box_deltas = heads.box_predictor(heads.box_head(pool_rois(heads.box_pooler, features, rois)))
        num_classes = class_logits.shape[-1]
        boxes = clip_boxes(decode_boxes(box_deltas, rois[:, 1:], config.box_weights), size)
        boxes = boxes.reshape(-1, num_classes, 4)[:, 1:].reshape(-1, 4)
        scores = F.softmax(class_logits, -1)[:, 1:].reshape(-1)
        labels = torch.arange(1, num_classes, device=boxes.device).repeat(rois.shape[0])
        images = rois[:, 0].to(torch.int64).repeat_interleave(num_classes - 1)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = torch.nonzero((scores > config.score_thresh) & (widths >= config.min_size)
                             & (heights >= config.min_size)).squeeze(1)
        boxes, scores, labels, images = boxes[keep], scores[keep], labels[keep], images[keep]
        keep = grouped_nms(boxes, scores, images * num_classes + labels, config.nms_thresh)
        rank = rank_within(images[keep], num_images)
        chosen = rank < config.detections_per_image
        keep, rank = keep[chosen], rank[chosen]
        keep = keep[image_major(images[keep], rank)]
        return boxes[keep], scores[keep], labels[keep], images[keep]

    def forward(self, images: Tensor, proposals: Tensor | None = None) -> tuple[Tensor, ...]:
        num_images, height, width = images.shape[0], images.shape[-2], images.shape[-1]
        divisor = self.model.transform.size_divisible
        batch = (images - self.mean) / self.std
        batch = F.pad(batch, (0, (divisor - width % divisor) % divisor, 0, (divisor - height % divisor) % divisor))
        features = self.model.backbone(batch)
        size = (height, width)
        if self.model.rpn is not None:
            rois = self.proposals(features, (batch.shape[-2], batch.shape[-1]), size, num_images)
        elif proposals is None:
            raise ValueError("this detector has no RPN (Fast R-CNN): the graph takes proposals Tensor[P, 5] too")
        else:
            rois = proposals.to(batch.dtype)
        boxes, scores, labels, index = self.detect(features, rois, size, num_images)
        outputs = [boxes, scores, labels, index]
        detected = torch.cat([index[:, None].to(boxes.dtype), boxes], dim=1)
        heads = self.model.roi_heads
        if self.has_masks:
            branch = heads.mask_branch
            logits = branch.head(pool_rois(branch.pooler, features, detected))
            own = logits.gather(1, labels[:, None, None, None].expand(-1, 1, *logits.shape[-2:]))[:, 0]
            outputs.append(paste_masks_dense(torch.sigmoid(own), boxes, height, width))
        if self.has_keypoints:
            branch = heads.keypoint_branch
            heatmaps = branch.head(pool_rois(branch.pooler, features, detected))
            outputs.extend(heatmaps_to_keypoints_dense(heatmaps, boxes, height, width))
        return tuple(outputs)


def eager_detections(model: RCNN, images: Tensor, proposals: Tensor | None = None) -> list[dict]:
    """The eager model's detections of Tensor[N, 3, H, W] ``images`` with its resize made the identity (the
    reference the graph equals); ``proposals`` Tensor[P, 5] as the graph takes them."""
    transform = model.transform
    saved = transform.min_size, transform.max_size
    height, width = images.shape[-2:]
    transform.min_size, transform.max_size = (min(height, width),), max(height, width)
    try:
        with torch.no_grad():
            given = None if proposals is None else [proposals[proposals[:, 0] == i, 1:] for i in range(len(images))]
            return model(list(images), proposals=given)
    finally:
        transform.min_size, transform.max_size = saved
