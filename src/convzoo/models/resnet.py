"""ResNet (He et al. 2015, "Deep Residual Learning for Image Recognition"), Wide ResNet-50/101-2 and ResNeXt.

``RESNET_TABLE`` is the paper's Table 1: the block type and the number of blocks in conv2_x .. conv5_x.
The same code builds 1D, 2D and 3D networks (``ndim``), for sequences, images and volumes.

Layouts: ``variant="v1.5"`` (default, torchvision's) puts a bottleneck's stride in its 3x3 convolution;
``variant="v1"`` is the paper's (stride in the first 1x1). The paper's Table 1 "FLOPs" 3.8 / 7.6 / 11.3 x 10^9 for
ResNet-50/101/152 are multiply-adds (MACs) of the v1 layout at 224x224; v1.5 has 4.1 / 7.8 / 11.5 G.
ResNet-18/34 (1.8 / 3.6 G) have no bottleneck, so both layouts are the same.
Parameter names equal torchvision's; parameter counts are exactly torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.layers import batch_norm, conv, global_avg_pool, max_pool
from convzoo.models.base import Classifier, FeatureInfo, init_weights_he
from convzoo.models.resnet_blocks import BasicBlock, Bottleneck, projection, zero_init_last_bn
from convzoo.registry import register_model

# He et al. 2015, Table 1: (block, blocks in conv2_x, conv3_x, conv4_x, conv5_x).
RESNET_TABLE: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
_DEFAULT_SPATIAL = {1: (224,), 2: (224, 224), 3: (16, 112, 112)}


class ResNet(Classifier):
    """A 7x7/2 stem, 3x3/2 max pooling, four stages of residual blocks, global average pooling and a linear layer.

    Input Tensor[N, in_chans, *spatial]; stage outputs at strides 4, 8, 16, 32 (``feature_info``).
    ``groups`` and ``base_width`` give ResNeXt (cardinality x width) and Wide ResNet-50-2 (base width 128).
    """

    first_conv = "conv1"

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], *, num_classes: int = 1000,
                 in_chans: int = 3, ndim: int = 2, groups: int = 1, base_width: int = 64, variant: str = "v1.5",
                 zero_init_residual: bool = False, drop_rate: float = 0.0) -> None:
        super().__init__()
        if variant not in ("v1", "v1.5"):
            raise ValueError(f"variant must be 'v1' (the paper's) or 'v1.5' (torchvision's), got {variant!r}")
        self.ndim, self.in_chans, self.num_classes = ndim, in_chans, num_classes
        self.default_input_size = (in_chans, *_DEFAULT_SPATIAL[ndim])
        self.variant = variant
        block_args: dict[str, object] = {"groups": groups, "base_width": base_width}
        if block is Bottleneck:  # a basic block has no 1x1 convolution: the v1 and v1.5 layouts are the same
            block_args["stride_in_1x1"] = variant == "v1"
        self.conv1 = conv(ndim, in_chans, 64, 7, 2, padding=3, bias=False)
        self.bn1 = batch_norm(ndim, 64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = max_pool(ndim, 3, 2, padding=1)
        self.feature_info = [FeatureInfo("relu", 64, 2)]
        channels, stride = 64, 4
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            first_stride = 1 if index == 1 else 2
            stage, channels = _make_stage(ndim, block, channels, planes, blocks, first_stride, block_args)
            setattr(self, f"layer{index}", stage)
            stride *= first_stride
            self.feature_info.append(FeatureInfo(f"layer{index}", channels, stride))
        self.num_features = channels
        self.avgpool = global_avg_pool(ndim)
        self.drop_rate = drop_rate
        self.fc = nn.Linear(channels, num_classes)
        init_weights_he(self)
        if zero_init_residual:
            zero_init_last_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, C)
        if self.drop_rate:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)


def _make_stage(ndim: int, block: type[nn.Module], in_channels: int, planes: int, blocks: int, stride: int,
                block_args: dict) -> tuple[nn.Sequential, int]:
    """``blocks`` residual blocks; the first one changes stride/width, with a projection shortcut (option B)."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = projection(ndim, in_channels, out_channels, stride)
    layers = [block(ndim, in_channels, planes, stride, downsample=downsample, **block_args)]
    layers += [block(ndim, out_channels, planes, 1, **block_args) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_channels


def _resnet(depth: int, kwargs: dict) -> ResNet:
    block, layers = RESNET_TABLE[depth]
    return ResNet(block, layers, **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet-18: 11.7 M parameters, 1.8 G multiply-adds at 224 (Table 1)."""
    return _resnet(18, kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet-34: 21.8 M parameters, 3.6 G multiply-adds at 224 (Table 1)."""
    return _resnet(34, kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet-50: 25.6 M parameters; 3.8 G multiply-adds (v1, Table 1) or 4.1 G (v1.5, the default)."""
    return _resnet(50, kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44.5 M parameters; 7.6 G multiply-adds (v1, Table 1) or 7.8 G (v1.5)."""
    return _resnet(101, kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60.2 M parameters; 11.3 G multiply-adds (v1, Table 1) or 11.5 G (v1.5)."""
    return _resnet(152, kwargs)


@register_model
def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016; torchvision's): bottlenecks twice as wide, 68.9 M parameters."""
    return _resnet(50, {"base_width": 128, **kwargs})


@register_model
def wide_resnet101_2(**kwargs) -> ResNet:
    """Wide ResNet-101-2: bottlenecks twice as wide, 126.9 M parameters."""
    return _resnet(101, {"base_width": 128, **kwargs})


@register_model
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d) (Xie et al. 2016, Table 1): 25.0 M parameters, 4.2 G multiply-adds."""
    return _resnet(50, {"groups": 32, "base_width": 4, **kwargs})


@register_model
def resnext101_32x4d(**kwargs) -> ResNet:
    """ResNeXt-101 (32x4d) (Xie et al. 2016, Table 5): 44.2 M parameters, 8.0 G multiply-adds."""
    return _resnet(101, {"groups": 32, "base_width": 4, **kwargs})


@register_model
def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 (32x8d) (torchvision's; not in the paper's tables): 88.8 M parameters, 16.5 G multiply-adds."""
    return _resnet(101, {"groups": 32, "base_width": 8, **kwargs})


@register_model
def resnext101_64x4d(**kwargs) -> ResNet:
    """ResNeXt-101 (64x4d) (Xie et al. 2016, Table 5): 83.5 M parameters, 15.5 G multiply-adds."""
    return _resnet(101, {"groups": 64, "base_width": 4, **kwargs})
