"""Segmentation heads on a dilated encoder: torchvision's FCN head, and DeepLabv3's ASPP (Chen et al. 2017).

Parameter names are torchvision's (``classifier.0.convs.1.0.weight``, ``classifier.4.weight``), so its
``fcn_resnet50`` and ``deeplabv3_resnet50`` checkpoints load into convzoo's models as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import batch_norm, conv


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int, dilation: int = 1) -> list[nn.Module]:
    """A k x k convolution (padding keeps the size, rate ``dilation``, no bias), BatchNorm and ReLU."""
    return [conv(2, in_channels, out_channels, kernel, padding="same", dilation=dilation, bias=False),
            batch_norm(2, out_channels), nn.ReLU(inplace=True)]


def fcn_head(in_channels: int, num_classes: int) -> nn.Sequential:
    """torchvision's FCN head (not Long et al.'s score layers, see ``fcn_vgg.py``): 3x3 conv to in/4 channels, BN,
    ReLU, dropout 0.1, 1x1 conv to the classes. Tensor[N, C, h, w] -> Tensor[N, num_classes, h, w]."""
    inter = in_channels // 4
    return nn.Sequential(*conv_bn_relu(in_channels, inter, 3), nn.Dropout(0.1), conv(2, inter, num_classes, 1))


class ImagePooling(nn.Sequential):
    """ASPP's image-level features (Sec. 3.3): global average pooling, 1x1 conv with BN and ReLU, bilinearly
    upsampled to the map's size. Tensor[N, C, h, w] -> Tensor[N, out_channels, h, w]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)  # (N, C', h, w)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (Chen et al. 2017, Sec. 3.3, Figure 5): one 1x1 and three 3x3 convolutions
    with ``rates`` (6, 12, 18 at output stride 16, doubled at 8), and image pooling, each with ``channels`` (256)
    filters, BN and ReLU; concatenated, then a 1x1 convolution with 256 filters, BN and ReLU (and ``dropout``:
    torchvision's 0.5, not in the paper). Tensor[N, C, h, w] -> Tensor[N, channels, h, w]."""

    def __init__(self, in_channels: int, rates: tuple[int, int, int], channels: int = 256,
                 dropout: float = 0.0) -> None:
        super().__init__()
        branches = [nn.Sequential(*conv_bn_relu(in_channels, channels, 1))]
        branches += [nn.Sequential(*conv_bn_relu(in_channels, channels, 3, rate)) for rate in rates]
        branches.append(ImagePooling(in_channels, channels))
        self.convs = nn.ModuleList(branches)
        project: list[nn.Module] = conv_bn_relu(len(branches) * channels, channels, 1)
        if dropout:
            project.append(nn.Dropout(dropout))
        self.project = nn.Sequential(*project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], 1))  # (N, 5 C', h, w) -> (N, C', h, w)


def deeplab_head(in_channels: int, num_classes: int, rates: tuple[int, int, int], layout: str) -> nn.Sequential:
    """DeepLabv3's head: ASPP, then the 1x1 convolution to the classes (``layout="paper"``, Sec. 3.3), or
    torchvision's layout: ASPP with dropout 0.5, an extra 3x3 convolution with 256 filters, BN and ReLU, then the
    1x1 convolution (``layout="torchvision"``)."""
    if layout == "paper":
        return nn.Sequential(ASPP(in_channels, rates), conv(2, 256, num_classes, 1))
    return nn.Sequential(ASPP(in_channels, rates, dropout=0.5), *conv_bn_relu(256, 256, 3),
                         conv(2, 256, num_classes, 1))
