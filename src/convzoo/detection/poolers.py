"""RoI feature extraction from one map or from an FPN pyramid (lecture: "RoI pooling", "RoIAlign").

``method="pool"`` is Fast R-CNN's RoIPool (Sec. 2.1: max over a quantized H x W grid of sub-windows);
``method="align"`` is Mask R-CNN's RoIAlign (Sec. 3: bilinear samples, no quantization). With a pyramid, each RoI
is read from the level chosen by FPN eq. (1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convzoo.detection import ops
from convzoo.detection.boxes import box_area
from convzoo.detection.ops import boxes_to_rois


def fpn_levels(boxes: torch.Tensor, k_min: int, k_max: int, canonical_size: float = 224.0,
               canonical_level: int = 4, eps: float = 1e-6) -> torch.Tensor:
    """FPN eq. (1): the pyramid level ``k = floor(k0 + log2(sqrt(w h) / 224))`` of Tensor[K, 4] (xyxy) boxes,
    clamped to [k_min, k_max] -> Tensor[K] int64. ``eps`` guards exact powers of two against rounding down
    (as Detectron and torchvision)."""
    sizes = torch.sqrt(box_area(boxes))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_size) + torch.tensor(eps, dtype=sizes.dtype))
    return levels.clamp(min=k_min, max=k_max).to(torch.int64)


class RoIPooler(nn.Module):
    """Feature maps (finest first, with ``strides``) and per-image boxes -> Tensor[K, C, S, S] RoI features.

    ``sampling_ratio`` (RoIAlign's bilinear samples per bin side; <= 0 adapts to the bin size) and ``aligned``
    (the half-pixel shift of Detectron2; torchvision's detectors use ``False``) only affect RoIAlign.
    """

    def __init__(self, output_size: int, strides: list[int], *, method: str = "align", sampling_ratio: int = 2,
                 aligned: bool = False) -> None:
        super().__init__()
        if method not in ("align", "pool"):
            raise ValueError(f"RoI method must be 'align' (RoIAlign) or 'pool' (RoIPool), got {method!r}")
        self.output_size, self.strides = output_size, list(strides)
        self.method, self.sampling_ratio, self.aligned = method, sampling_ratio, aligned

    def _extract(self, feature: torch.Tensor, rois: torch.Tensor, stride: int) -> torch.Tensor:
        size = (self.output_size, self.output_size)
        if self.method == "pool":
            return ops.roi_pool(feature, rois, size, 1.0 / stride)
        return ops.roi_align(feature, rois, size, 1.0 / stride, self.sampling_ratio, self.aligned)

    def forward(self, features: list[torch.Tensor], boxes: list[torch.Tensor]) -> torch.Tensor:
        features = features[:len(self.strides)]
        rois = boxes_to_rois(boxes)
        if len(features) == 1:
            return self._extract(features[0], rois, self.strides[0])
        k_min, k_max = int(math.log2(self.strides[0])), int(math.log2(self.strides[-1]))
        levels = fpn_levels(rois[:, 1:], k_min, k_max) - k_min
        channels = features[0].shape[1]
        result = features[0].new_zeros((len(rois), channels, self.output_size, self.output_size))
        for level, (feature, stride) in enumerate(zip(features, self.strides)):
            index = torch.nonzero(levels == level).squeeze(1)
            result[index] = self._extract(feature, rois[index], stride).to(result.dtype)
        return result

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, strides={self.strides}, method={self.method!r}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
