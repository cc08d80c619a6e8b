"""Residual blocks in 1D/2D/3D (He et al. 2015, Figure 5), shared by the ImageNet, CIFAR and Wide ResNets.

Parameter names equal torchvision's (``conv1``, ``bn1``, ..., ``downsample.0``/``.1``), so its checkpoints load
as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import batch_norm, conv


def projection(ndim: int, in_channels: int, out_channels: int, stride: int | Sequence[int]) -> nn.Sequential:
    """Shortcut option B: a strided 1x1 convolution and BatchNorm where the shape changes (``stride``: one per axis
    or one for all)."""
    return nn.Sequential(conv(ndim, in_channels, out_channels, 1, stride, padding=0, bias=False),
                         batch_norm(ndim, out_channels))


class ZeroPadShortcut(nn.Module):
    """Shortcut option A (Section 4.2, CIFAR): identity, subsampled by ``stride``, with zero channels appended."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = (slice(None, None, self.stride),) * (x.dim() - 2)
        x = x[(slice(None), slice(None), *spatial)]  # (N, C_in, *spatial / stride)
        return F.pad(x, (0, 0) * (x.dim() - 2) + (0, self.extra))  # (N, C_out, ...): zeros after the channels


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34, CIFAR ResNets); ``shortcut=False`` gives the plain net's block.

    ``groups`` and ``base_width`` exist so that one ``ResNet`` passes the same options to either block; the basic
    block has no bottleneck to widen or split (ResNeXt, Xie et al. 2016, Sec. 3.3, groups only the bottleneck's
    3x3), so anything but groups=1 and base_width=64 is a ValueError (as torchvision's), never silently ignored.
    """

    expansion = 1

    def __init__(self, ndim: int, in_channels: int, planes: int, stride: int = 1, *,
                 downsample: nn.Module | None = None, shortcut: bool = True, groups: int = 1,
                 base_width: int = 64) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock only supports groups=1 and base_width=64, got groups={groups} and "
                             f"base_width={base_width} (ResNeXt and Wide ResNet widths need Bottleneck blocks: "
                             f"resnet50 and deeper)")
        self.conv1 = conv(ndim, in_channels, planes, 3, stride, padding=1, bias=False)
        self.bn1 = batch_norm(ndim, planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(ndim, planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = batch_norm(ndim, planes)
        self.downsample = downsample
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out += x if self.downsample is None else self.downsample(x)  # in place: no extra activation tensor
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand x4 (ResNet-50/101/152, Wide ResNet-50-2, ResNeXt).

    ``stride_in_1x1=True`` is the paper's layout (v1: the first 1x1 is strided); the default puts the stride in the
    3x3 as torchvision does (v1.5), which costs more multiply-adds (4.1 G instead of 3.8 G for ResNet-50).
    """

    expansion = 4

    def __init__(self, ndim: int, in_channels: int, planes: int, stride: int = 1, *,
                 downsample: nn.Module | None = None, groups: int = 1, base_width: int = 64,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups  # ResNeXt: cardinality x bottleneck width
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv(ndim, in_channels, width, 1, stride_1x1, padding=0, bias=False)
        self.bn1 = batch_norm(ndim, width)
        self.conv2 = conv(ndim, width, width, 3, stride_3x3, padding=1, groups=groups, bias=False)
        self.bn2 = batch_norm(ndim, width)
        self.conv3 = conv(ndim, width, planes * self.expansion, 1, padding=0, bias=False)
        self.bn3 = batch_norm(ndim, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place: no extra activation tensor
        return self.relu(out)


def zero_init_last_bn(model: nn.Module) -> None:
    """Zero the last BN scale of every residual branch (Goyal et al. 2017), so each block starts as the identity."""
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock) and m.shortcut:
            nn.init.zeros_(m.bn2.weight)
