"""Mask R-CNN's mask branch (He et al. 2017, Sec. 3 and Fig. 4 right): RoIAlign 14x14 -> four 3x3 convolutions ->
a 2x deconvolution -> one 28x28 mask logit map per class. Loss: per-pixel binary cross-entropy on the map of the
ground-truth class only (Sec. 3, "L_mask"), so classes do not compete. Inference: the map of the predicted class,
through a sigmoid, pasted into the image at its box.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.detection.ops import roi_align
from convzoo.detection.poolers import RoIPooler


class MaskHead(nn.Module):
    """Tensor[R, C, 14, 14] RoI features -> Tensor[R, num_classes, 28, 28] mask logits."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, num_convs: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1)
                                   for i in range(num_convs))
        self.deconv = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.logits = nn.Conv2d(channels, num_classes, 1)
        for layer in (*self.convs, self.deconv, self.logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.convs:
            x = F.relu(layer(x))
        return self.logits(F.relu(self.deconv(x)))


def mask_targets(gt_masks: torch.Tensor, rois: torch.Tensor, matched: torch.Tensor, size: int) -> torch.Tensor:
    """The ground-truth mask Tensor[G, H, W] of each RoI's matched object, cropped to the RoI Tensor[R, 4] (xyxy)
    and resampled with RoIAlign to Tensor[R, size, size] (values in [0, 1])."""
    boxes = torch.cat([matched[:, None].to(rois), rois], dim=1)
    return roi_align(gt_masks[:, None].to(rois), boxes, (size, size), 1.0)[:, 0]


def mask_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of the logit map of each RoI's own class: ``logits`` Tensor[R, K, M, M],
    ``labels`` Tensor[R], ``targets`` Tensor[R, M, M]. No RoI -> a zero that keeps the graph."""
    if targets.numel() == 0:
        return logits.sum() * 0
    own = logits[torch.arange(len(labels), device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(own, targets)


def expand_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Scale Tensor[N, 4] (xyxy) boxes about their centers by ``scale``."""
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    center_x, center_y = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack([center_x - half_w, center_y - half_h, center_x + half_w, center_y + half_h], dim=1)


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int],
                padding: int = 1) -> torch.Tensor:
    """Paste Tensor[N, 1, M, M] mask probabilities into Tensor[N, 1, H, W] images at Tensor[N, 4] (xyxy) boxes.

    Detectron's rule, kept for equality with torchvision: the M x M mask gets a ``padding`` border of zeros and its
    box grows by (M + 2 padding) / M, so the border falls outside the object; the box is truncated to integers, the
    mask bilinearly resized to ``int(x2 - x1 + 1)`` x ``int(y2 - y1 + 1)`` pixels and copied where it is inside.
    """
    height, width = image_size
    if len(masks) == 0:
        return masks.new_zeros((0, 1, height, width))
    size = masks.shape[-1]
    masks = F.pad(masks, (padding,) * 4)
    boxes = expand_boxes(boxes, (size + 2 * padding) / size).to(torch.int64).tolist()
    pasted = []
    for mask, (x1, y1, x2, y2) in zip(masks, boxes):
        box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        resized = F.interpolate(mask[None], size=(box_h, box_w), mode="bilinear", align_corners=False)[0]
        left, right, top, bottom = max(x1, 0), min(x2 + 1, width), max(y1, 0), min(y2 + 1, height)
        if right <= left or bottom <= top:
            pasted.append(masks.new_zeros((1, height, width)))
            continue
        inside = resized[:, top - y1:bottom - y1, left - x1:right - x1]  # (1, bottom - top, right - left)
        # zeros around the box by padding, not by writing into a zero image: no in-place write, so this also runs
        # (and stays differentiable) when the masks require grad, as in eval mode outside torch.no_grad()
        pasted.append(F.pad(inside, (left, width - right, top, height - bottom)))
    return torch.stack(pasted)  # (N, 1, H, W)


class MaskBranch(nn.Module):
    """RoIAlign 14x14 + MaskHead; ``loss`` on positive training RoIs, ``predict`` adds ``masks`` Tensor[D, 1, 28, 28]
    (probabilities of the predicted class, in the resized image's box) to each detection dict."""

    def __init__(self, *, pooler: RoIPooler, head: MaskHead) -> None:
        super().__init__()
        self.pooler, self.head = pooler, head

    def loss(self, features: list[torch.Tensor], rois: list[torch.Tensor], matched: list[torch.Tensor],
             labels: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        logits = self.head(self.pooler(features, rois))
        size = logits.shape[-1]
        mask_gt = [mask_targets(t["masks"], r, m, size) for t, r, m in zip(targets, rois, matched) if len(r)]
        mask_gt = torch.cat(mask_gt) if mask_gt else logits.new_zeros((0, size, size))
        return {"loss_mask": mask_loss(logits, torch.cat(labels), mask_gt)}

    def predict(self, features: list[torch.Tensor], detections: list[dict]) -> None:
        logits = self.head(self.pooler(features, [d["boxes"] for d in detections]))
        labels = torch.cat([d["labels"] for d in detections])
        probabilities = torch.sigmoid(logits[torch.arange(len(labels), device=labels.device), labels])[:, None]
        for detection, masks in zip(detections, probabilities.split([len(d["boxes"]) for d in detections])):
            detection["masks"] = masks


__all__ = ["MaskBranch", "MaskHead", "mask_loss", "mask_targets", "paste_masks"]
