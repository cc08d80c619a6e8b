"""Feature Pyramid Network (Lin et al. 2017, "Feature Pyramid Networks for Object Detection").

Section 3: a 1x1 lateral convolution brings every backbone stage C_i to ``out_channels`` (256), the top-down pathway
adds the 2x nearest-neighbour upsampled coarser map, and a 3x3 convolution smooths each sum into P_i. P6 (for the
RPN's largest anchors, Sec. 4.1) is a stride-2 subsampling of P5 (max pooling with kernel 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeaturePyramid(nn.Module):
    """Backbone maps C_2..C_5 (list of Tensor[N, C_i, H_i, W_i], finest first) -> P_2..P_6 (Tensor[N, 256, ...])."""

    def __init__(self, in_channels: list[int], out_channels: int = 256, extra_max_pool: bool = True) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.extra_max_pool = extra_max_pool
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)  # Detectron's FPN initialization
                nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        top_down = self.lateral[-1](features[-1])
        pyramid = [self.output[-1](top_down)]
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            top_down = lateral + F.interpolate(top_down, size=lateral.shape[-2:], mode="nearest")
            pyramid.insert(0, self.output[level](top_down))
        if self.extra_max_pool:
            pyramid.append(F.max_pool2d(pyramid[-1], kernel_size=1, stride=2))  # P6
        return pyramid
