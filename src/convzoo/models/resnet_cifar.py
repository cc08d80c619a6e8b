"""CIFAR-10 ResNets and plain nets (He et al. 2015, Section 4.2) and Wide ResNets (Zagoruyko & Komodakis 2016).

CIFAR ResNet-(6n+2): a 3x3 convolution with 16 filters, then 3 stages of n basic blocks with 16, 32, 64 filters
at feature-map sizes 32, 16, 8, global average pooling and a 10-way linear layer. Shortcuts are identities, with
zero-padded extra channels where the width doubles (option A, no parameters); the plain nets drop the shortcuts.
Paper's parameter counts: ResNet-20/32/44/56/110/1202 = 0.27/0.46/0.66/0.85/1.7/19.4 M.

WRN-d-k (Table 1 of Zagoruyko & Komodakis): pre-activation basic blocks (BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3)
with widths 16, 16k, 32k, 64k and (d - 4) / 6 blocks per group; dropout sits between the two convolutions
(Section 2.4); projection (1x1) shortcuts where the shape changes. WRN-28-10: 36.5 M, WRN-40-4: 8.9 M parameters.
All of them take ``ndim`` (1D/2D/3D) like the ImageNet ResNets.

For the Batch Normalization experiment (Ioffe & Szegedy 2015, Figure 2: the same network without BN, and with BN
and sigmoid instead of ReLU) the CIFAR nets take ``norm=False`` (every BatchNorm removed, each convolution gets a
bias, as networks before BN had) and ``activation="sigmoid"``; registered as ``plain20_nobn`` and
``plain20_sigmoid`` (same parameter count as plain20 up to the biases: 0.27 M).
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.layers import batch_norm, conv, global_avg_pool
from convzoo.models.base import Classifier, FeatureInfo, init_weights_he
from convzoo.models.resnet_blocks import BasicBlock, ZeroPadShortcut
from convzoo.registry import register_model


class CifarResNet(Classifier):
    """ResNet-(6n+2) or its plain counterpart for 32x32 inputs; stage outputs at strides 1, 2, 4."""

    first_conv = "conv1"

    def __init__(self, depth: int, shortcut: bool = True, *, num_classes: int = 10, in_chans: int = 3,
                 ndim: int = 2, norm: bool = True, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"activation must be relu or sigmoid, got {activation!r}")
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, 1202), got {depth}")
        blocks = (depth - 2) // 6
        self.ndim, self.in_chans, self.num_classes, self.num_features = ndim, in_chans, num_classes, 64
        self.default_input_size = (in_chans,) + (32,) * ndim
        self.conv1 = conv(ndim, in_chans, 16, 3, padding=1, bias=False)
        self.bn1 = batch_norm(ndim, 16)
        self.relu = nn.ReLU(inplace=True)
        self.feature_info = []
        channels = 16
        for index, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            stage = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                down = ZeroPadShortcut(channels, planes, s) if shortcut and (s != 1 or channels != planes) else None
                stage.append(BasicBlock(ndim, channels, planes, s, downsample=down, shortcut=shortcut))
                channels = planes
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            self.feature_info.append(FeatureInfo(f"layer{index}", planes, (1, 2, 4)[index - 1]))
        self.avgpool = global_avg_pool(ndim)
        self.fc = nn.Linear(64, num_classes)
        _replace_layers(self, norm, activation)
        init_weights_he(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, 64)
        return x if pre_logits else self.fc(x)


def _replace_layers(model: nn.Module, norm: bool, activation: str) -> None:
    """Without ``norm``: each BatchNorm becomes an identity and each convolution gets a bias; ``activation``
    "sigmoid": each ReLU becomes a sigmoid (the modules are called by name, so the blocks need no option)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if not norm and isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())
            elif not norm and isinstance(child, nn.modules.conv._ConvNd) and child.bias is None:
                child.bias = nn.Parameter(torch.zeros(child.out_channels))
            elif activation == "sigmoid" and isinstance(child, nn.ReLU):
                setattr(module, name, nn.Sigmoid())


class WideBasicBlock(nn.Module):
    """Pre-activation B(3,3) block: BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3, plus the shortcut."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = batch_norm(ndim, in_channels)
        self.conv1 = conv(ndim, in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn2 = batch_norm(ndim, out_channels)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = conv(ndim, out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv(ndim, in_channels, out_channels, 1, stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        # the projection sees the pre-activated input (He et al. 2016, "Identity Mappings", Fig. 4e)
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(Classifier):
    """WRN-depth-k for 32x32 inputs; groups of (depth - 4) / 6 blocks at widths 16k, 32k, 64k."""

    first_conv = "conv1"

    def __init__(self, depth: int, widen_factor: int, *, dropout: float = 0.0, num_classes: int = 10,
                 in_chans: int = 3, ndim: int = 2) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a Wide ResNet has depth 6n + 4 (16, 22, 28, 40, ...), got {depth}")
        blocks = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.ndim, self.in_chans, self.num_classes, self.num_features = ndim, in_chans, num_classes, widths[-1]
        self.default_input_size = (in_chans,) + (32,) * ndim
        self.conv1 = conv(ndim, in_chans, 16, 3, padding=1, bias=False)
        self.feature_info = []
        channels = 16
        for index, (width, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            stage = [WideBasicBlock(ndim, channels if b == 0 else width, width, stride if b == 0 else 1, dropout)
                     for b in range(blocks)]
            channels = width
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            self.feature_info.append(FeatureInfo(f"layer{index}", width, (1, 2, 4)[index - 1]))
        self.bn = batch_norm(ndim, channels)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = global_avg_pool(ndim)
        self.fc = nn.Linear(channels, num_classes)
        init_weights_he(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.relu(self.bn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, 64k)
        return x if pre_logits else self.fc(x)


def _register_cifar(depth: int, shortcut: bool) -> None:
    name = f"{'resnet' if shortcut else 'plain'}{depth}"

    def builder(**kwargs) -> CifarResNet:
        return CifarResNet(depth, shortcut, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (f"CIFAR {'ResNet' if shortcut else 'plain net'}-{depth} (He et al. 2015, Section 4.2): "
                       f"n = {(depth - 2) // 6} blocks per stage, 32x32 input, 10 classes by default.")
    register_model(builder)


def _register_bn_variant(name: str, **options) -> None:
    def builder(**kwargs) -> CifarResNet:
        return CifarResNet(20, False, **options, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (f"CIFAR plain net-20 with {options} (Ioffe & Szegedy 2015, Figure 2's variants): the Batch "
                       "Normalization experiment's network.")
    register_model(builder)


def _register_wrn(depth: int, widen_factor: int) -> None:
    def builder(**kwargs) -> WideResNet:
        return WideResNet(depth, widen_factor, **kwargs)

    builder.__name__ = builder.__qualname__ = f"wrn{depth}_{widen_factor}"
    builder.__doc__ = (f"WRN-{depth}-{widen_factor} (Zagoruyko & Komodakis 2016): 32x32 input; "
                       f"``dropout`` between the two convolutions of each block (the paper uses 0.3).")
    register_model(builder)


# He et al. 2015, Table 6 (CIFAR-10): the depths the paper trains, with and without shortcuts.
for _depth in (20, 32, 44, 56, 110, 1202):
    _register_cifar(_depth, shortcut=True)
for _depth in (20, 32, 44, 56, 110):
    _register_cifar(_depth, shortcut=False)
_register_bn_variant("plain20_nobn", norm=False)
_register_bn_variant("plain20_sigmoid", activation="sigmoid")
# Zagoruyko & Komodakis 2016, Tables 4-6: the (depth, widen factor) pairs reported.
for _depth, _k in ((16, 4), (16, 8), (16, 10), (22, 8), (28, 10), (28, 12), (40, 1), (40, 2), (40, 4), (40, 8),
                   (40, 10), (40, 14)):
    _register_wrn(_depth, _k)
