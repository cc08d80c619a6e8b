"""Mask R-CNN's keypoint branch (He et al. 2017, Sec. 5): each of K keypoints is a one-hot 56x56 "mask".

RoIAlign 14x14 -> eight 3x3x512 convolutions -> a 2x deconvolution and a 2x bilinear upsampling to 56x56 logits per
keypoint. Loss: one softmax cross-entropy over the 56^2 positions per visible keypoint (the one-hot target is the
keypoint's cell). Inference: each heatmap is resized to its box, the argmax is the keypoint, its value the score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.detection.poolers import RoIPooler


class KeypointHead(nn.Module):
    """Tensor[R, C, 14, 14] RoI features -> Tensor[R, num_keypoints, 56, 56] heatmap logits."""

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 512, num_convs: int = 8) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1)
                                   for i in range(num_convs))
        self.logits = nn.ConvTranspose2d(channels, num_keypoints, 4, stride=2, padding=1)
        for layer in (*self.convs, self.logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.convs:
            x = F.relu(layer(x))
        x = self.logits(x)  # 14 -> 28
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)  # 28 -> 56


def keypoint_targets(keypoints: torch.Tensor, rois: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor[R, K, 3] keypoints ``(x, y, visibility)`` and Tensor[R, 4] (xyxy) RoIs -> the flat index
    ``y * size + x`` of each keypoint's cell in the RoI's ``size x size`` grid Tensor[R, K] and a validity mask
    Tensor[R, K] (visible and inside the RoI). A keypoint exactly on the right/bottom edge goes to the last cell."""
    x0, y0 = rois[:, 0:1], rois[:, 1:2]
    scale_x, scale_y = size / (rois[:, 2:3] - x0), size / (rois[:, 3:4] - y0)
    x, y = keypoints[..., 0], keypoints[..., 1]
    cell_x = ((x - x0) * scale_x).floor().long()
    cell_y = ((y - y0) * scale_y).floor().long()
    cell_x[x == rois[:, 2:3]] = size - 1
    cell_y[y == rois[:, 3:4]] = size - 1
    valid = (cell_x >= 0) & (cell_y >= 0) & (cell_x < size) & (cell_y < size) & (keypoints[..., 2] > 0)
    return (cell_y * size + cell_x) * valid, valid


def keypoint_loss(logits: torch.Tensor, cells: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the S*S positions of each valid keypoint: ``logits`` Tensor[R, K, S, S], ``cells`` and
    ``valid`` Tensor[R, K]. No valid keypoint -> a zero that keeps the graph."""
    if not valid.any():
        return logits.sum() * 0
    flat = logits.flatten(2)  # [R, K, S*S]
    return F.cross_entropy(flat[valid], cells[valid])


def heatmaps_to_keypoints(heatmaps: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor[R, K, S, S] heatmap logits and Tensor[R, 4] (xyxy) boxes -> keypoints Tensor[R, K, 3] ``(x, y, 1)``
    in image pixels and their scores Tensor[R, K] (the logit at the maximum).

    Detectron's rule: each heatmap is bicubically resized to ``ceil(w) x ceil(h)`` pixels of its box, the argmax
    cell's center (+0.5) is scaled back by ``w / ceil(w)`` and shifted by the box's corner.
    """
    num_keypoints = heatmaps.shape[1]
    keypoints = heatmaps.new_zeros((len(rois), num_keypoints, 3))
    scores = heatmaps.new_zeros((len(rois), num_keypoints))
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    for i in range(len(rois)):
        map_w, map_h = int(widths[i].ceil().item()), int(heights[i].ceil().item())
        resized = F.interpolate(heatmaps[i][:, None], size=(map_h, map_w), mode="bicubic",
                                align_corners=False)[:, 0]  # [K, map_h, map_w]
        position = resized.reshape(num_keypoints, -1).argmax(dim=1)
        cell_x = position % map_w
        cell_y = torch.div(position - cell_x, map_w, rounding_mode="floor")
        keypoints[i, :, 0] = (cell_x.float() + 0.5) * (widths[i] / map_w) + rois[i, 0]
        keypoints[i, :, 1] = (cell_y.float() + 0.5) * (heights[i] / map_h) + rois[i, 1]
        keypoints[i, :, 2] = 1
        scores[i] = resized[torch.arange(num_keypoints, device=resized.device), cell_y, cell_x]
    return keypoints, scores


class KeypointBranch(nn.Module):
    """RoIAlign 14x14 + KeypointHead; ``loss`` on positive training RoIs, ``predict`` adds ``keypoints``
    Tensor[D, K, 3] and ``keypoints_scores`` Tensor[D, K] to each detection dict."""

    def __init__(self, *, pooler: RoIPooler, head: KeypointHead) -> None:
        super().__init__()
        self.pooler, self.head = pooler, head

    def loss(self, features: list[torch.Tensor], rois: list[torch.Tensor], matched: list[torch.Tensor],
             labels: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        logits = self.head(self.pooler(features, rois))
        size = logits.shape[-1]
        cells, valid = [], []
        for target, image_rois, image_matched in zip(targets, rois, matched):
            if len(image_rois):
                image_cells, image_valid = keypoint_targets(target["keypoints"][image_matched], image_rois, size)
                cells.append(image_cells)
                valid.append(image_valid)
        if not cells:
            return {"loss_keypoint": logits.sum() * 0}
        return {"loss_keypoint": keypoint_loss(logits, torch.cat(cells), torch.cat(valid))}

    def predict(self, features: list[torch.Tensor], detections: list[dict]) -> None:
        boxes = [d["boxes"] for d in detections]
        logits = self.head(self.pooler(features, boxes))
        keypoints, scores = heatmaps_to_keypoints(logits, torch.cat(boxes))
        sizes = [len(b) for b in boxes]
        for detection, image_keypoints, image_scores in zip(detections, keypoints.split(sizes), scores.split(sizes)):
            detection["keypoints"], detection["keypoints_scores"] = image_keypoints, image_scores
