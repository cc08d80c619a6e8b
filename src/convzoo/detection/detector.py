"""The R-CNN composition: transform -> backbone -> proposals (RPN, or given from outside) -> RoI heads.

Fast R-CNN (Girshick 2015) takes its proposals from outside (selective search in the paper); Faster R-CNN (Ren et al.
2015) computes them with a region proposal network sharing the backbone; Mask R-CNN (He et al. 2017) adds a mask
branch and, for human pose, a keypoint branch. One class composes all of them.

Interface: ``model(images)`` with ``images`` a list of Tensor[C, H, W] in [0, 1]; in training
``model(images, targets)`` with ``targets`` a list of dicts ``boxes`` Tensor[G, 4] (xyxy, absolute pixels),
``labels`` Tensor[G] int64 (>= 1, 0 is background) and optionally ``masks`` Tensor[G, H, W] uint8 and ``keypoints``
Tensor[G, K, 3] ``(x, y, visibility)``. Training returns a dict of named losses; evaluation returns per image a dict
``boxes``, ``labels``, ``scores`` (+ ``masks`` Tensor[D, 1, H, W] probabilities, ``keypoints`` Tensor[D, K, 3],
``keypoints_scores``), in the coordinates of the input images.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.detection.roi_heads import RoIHeads
from convzoo.detection.rpn import RegionProposalNetwork
from convzoo.detection.transform import DetectionTransform, resize_boxes


def check_targets(targets: list[dict]) -> None:
    """Raise a ValueError naming the image and the box when a target box has no positive width and height."""
    for index, target in enumerate(targets):
        boxes = target["boxes"]
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"target boxes must be Tensor[G, 4], got shape {list(boxes.shape)} for image {index}")
        bad = torch.nonzero((boxes[:, 2:] <= boxes[:, :2]).any(dim=1)).squeeze(1)
        if len(bad):
            raise ValueError(f"degenerate box {boxes[bad[0]].tolist()} (x2 <= x1 or y2 <= y1) in image {index}; "
                             "the detection data sets drop them (see convzoo.detection.data)")


class RCNN(nn.Module):
    """A detector from parts: ``rpn=None`` gives Fast R-CNN, which then needs ``proposals`` in ``forward``."""

    def __init__(self, *, transform: DetectionTransform, backbone: nn.Module, roi_heads: RoIHeads,
                 rpn: RegionProposalNetwork | None = None, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.transform, self.backbone, self.rpn, self.roi_heads = transform, backbone, rpn, roi_heads
        self.class_names = class_names

    @property
    def head_names(self) -> list[str]:
        """The layers whose shapes follow the classes and keypoints of the data set; loading weights with
        ``ignore_mismatched_head=True`` keeps these freshly initialized (fine-tuning to another label set)."""
        names = ["roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"]
        for branch in ("mask_branch", "keypoint_branch"):
            if getattr(self.roi_heads, branch, None) is not None:
                names.append(f"roi_heads.{branch}.head.logits")
        return names

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None,
                proposals: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor] | list[dict]:
        """``proposals``: per image Tensor[P, 4] (xyxy, input image pixels), required without an RPN."""
        if self.training:
            if targets is None:
                raise ValueError("a detector in training mode needs targets (or call model.eval() first)")
            check_targets(targets)
        original_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        batch, targets = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        losses: dict[str, torch.Tensor] = {}
        if self.rpn is not None:
            proposals, losses = self.rpn(features, tuple(batch.tensors.shape[-2:]), batch.image_sizes, targets)
        elif proposals is None:
            raise ValueError("this detector has no RPN (Fast R-CNN): pass proposals=[Tensor[P, 4], ...]")
        else:
            proposals = [resize_boxes(p.to(batch.tensors.dtype), original, size)
                         for p, original, size in zip(proposals, original_sizes, batch.image_sizes)]
        detections, roi_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        if self.training:
            return {**losses, **roi_losses}
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
