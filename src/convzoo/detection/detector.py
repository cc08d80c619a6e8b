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


def check_targets(targets: list[dict], num_classes: int | None = None, num_images: int | None = None) -> None:
    """Raise a ValueError naming the image (and the box or label) when a target is not what detectors take:
    ``boxes`` Tensor[G, 4] finite with positive width and height, ``labels`` Tensor[G] integers in
    ``1..num_classes - 1`` (0 is the background), ``masks`` Tensor[G, H, W] and ``keypoints`` Tensor[G, K, 3]."""
    if num_images is not None and len(targets) != num_images:
        raise ValueError(f"{num_images} images but {len(targets)} targets; a detector takes one target per image")
    for index, target in enumerate(targets):
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            found = sorted(target) if isinstance(target, dict) else type(target).__name__
            raise ValueError(f"the target of image {index} must be a dict with 'boxes' and 'labels', got {found}")
        boxes, labels = target["boxes"], target["labels"]
        if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
            shape = list(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
            raise ValueError(f"target boxes must be Tensor[G, 4], got shape {shape} for image {index}")
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() \
                or labels.dtype == torch.bool:
            kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"target labels must be an integer tensor (int64), got {kind} for image {index}")
        if labels.shape != (len(boxes),):
            raise ValueError(f"target labels must be Tensor[G] with G = {len(boxes)} boxes, got shape "
                             f"{list(labels.shape)} for image {index}")
        for key, dims in (("masks", "G, H, W"), ("keypoints", "G, K, 3")):
            value = target.get(key)
            if value is not None and (not isinstance(value, torch.Tensor) or value.dim() != 3
                                      or len(value) != len(boxes)):
                shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"target {key} must be Tensor[{dims}] with G = {len(boxes)} boxes, got {shape} "
                                 f"for image {index}")
        # one device sync per image: the details are looked up only when something is wrong
        non_finite = ~torch.isfinite(boxes).all(dim=1)
        degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        out_of_range = (labels < 1) | (labels >= num_classes) if num_classes is not None else labels < 1
        if not bool((non_finite | degenerate | out_of_range).any()):
            continue
        if non_finite.any():
            raise ValueError(f"non-finite box {boxes[non_finite][0].tolist()} in image {index}; target boxes must be "
                             "finite (x1, y1, x2, y2) pixels")
        if degenerate.any():
            raise ValueError(f"degenerate box {boxes[degenerate][0].tolist()} (x2 <= x1 or y2 <= y1) in image "
                             f"{index}; the detection data sets drop them (see convzoo.detection.data)")
        high = "" if num_classes is None else f"..{num_classes - 1}"
        raise ValueError(f"target label {int(labels[out_of_range][0])} in image {index} is out of range; expected "
                         f"1{high} (0 is the background)")


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
            check_targets(targets, self.roi_heads.box_predictor.cls_score.out_features, len(images))
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
