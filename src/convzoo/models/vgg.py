"""VGG (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale Image Recognition").

``VGG_TABLE`` is the paper's Table 1, column by column: ``conv3-64`` is a 3x3 convolution with 64 filters (stride 1,
padding 1), ``conv1-256`` a 1x1 convolution (configuration C), ``LRN`` Krizhevsky's local response normalization
(A-LRN); each inner list ends with a 2x2/2 max pooling. The classifier is FC-4096, FC-4096, FC-classes with dropout
0.5 after the first two (Section 3.1). Parameter names equal torchvision's (``features.N``, ``classifier.N``), and
``vgg11/13/16/19`` and their ``_bn`` variants have exactly torchvision's parameters.

Deviation (as torchvision): an adaptive average pooling to 7x7 before the classifier lets other input sizes through;
at 224x224 it is the identity. The ``_bn`` variants (BatchNorm after every convolution) are not in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.layers import batch_norm, conv, local_response_norm, max_pool
from convzoo.models.base import Classifier, FeatureInfo
from convzoo.registry import register_model

# Simonyan & Zisserman 2014, Table 1 (ConvNet configurations A-E), one inner list per block of convolutions.
VGG_TABLE: dict[str, list[list[str]]] = {
    "A": [["conv3-64"], ["conv3-128"], ["conv3-256", "conv3-256"], ["conv3-512", "conv3-512"],
          ["conv3-512", "conv3-512"]],
    "A-LRN": [["conv3-64", "LRN"], ["conv3-128"], ["conv3-256", "conv3-256"], ["conv3-512", "conv3-512"],
              ["conv3-512", "conv3-512"]],
    "B": [["conv3-64", "conv3-64"], ["conv3-128", "conv3-128"], ["conv3-256", "conv3-256"],
          ["conv3-512", "conv3-512"], ["conv3-512", "conv3-512"]],
    "C": [["conv3-64", "conv3-64"], ["conv3-128", "conv3-128"], ["conv3-256", "conv3-256", "conv1-256"],
          ["conv3-512", "conv3-512", "conv1-512"], ["conv3-512", "conv3-512", "conv1-512"]],
    "D": [["conv3-64", "conv3-64"], ["conv3-128", "conv3-128"], ["conv3-256", "conv3-256", "conv3-256"],
          ["conv3-512", "conv3-512", "conv3-512"], ["conv3-512", "conv3-512", "conv3-512"]],
    "E": [["conv3-64", "conv3-64"], ["conv3-128", "conv3-128"], ["conv3-256", "conv3-256", "conv3-256", "conv3-256"],
          ["conv3-512", "conv3-512", "conv3-512", "conv3-512"], ["conv3-512", "conv3-512", "conv3-512", "conv3-512"]],
}


class VGG(Classifier):
    """A VGG configuration from ``VGG_TABLE``; input Tensor[N, in_chans, *spatial] (224x224 in the paper)."""

    classifier_name = "classifier.6"
    first_conv = "features.0"

    def __init__(self, config: str, batch_norm_layers: bool = False, *, num_classes: int = 1000, in_chans: int = 3,
                 ndim: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        self.ndim, self.in_chans, self.num_classes, self.num_features = ndim, in_chans, num_classes, 512
        self.default_input_size = (in_chans,) + (224,) * ndim
        layers: list[nn.Module] = []
        self.feature_info = []
        channels, stride = in_chans, 1
        for block in VGG_TABLE[config]:
            for entry in block:
                if entry == "LRN":
                    layers.append(local_response_norm())
                    continue
                kernel, filters = (int(v) for v in entry.removeprefix("conv").split("-"))
                layers.append(conv(ndim, channels, filters, kernel, padding=kernel // 2))
                if batch_norm_layers:
                    layers.append(batch_norm(ndim, filters))
                layers.append(nn.ReLU(inplace=True))
                channels = filters
            # the features of a block are its last ReLU, before the pooling (VGG-16 conv5_3: stride 16)
            self.feature_info.append(FeatureInfo(f"features.{len(layers) - 1}", channels, stride))
            layers.append(max_pool(ndim, 2, 2))
            stride *= 2
        self.features = nn.Sequential(*layers)
        self.avgpool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[ndim](7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 ** ndim, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)  # Section 3.1: weights from N(0, 10^-2), biases 0
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, 512 * 7^ndim)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def _vgg(config: str, bn: bool, kwargs: dict) -> VGG:
    return VGG(config, bn, **kwargs)


@register_model
def vgg11(**kwargs) -> VGG:
    """VGG configuration A (11 weight layers), 132.9 M parameters."""
    return _vgg("A", False, kwargs)


@register_model
def vgg11_lrn(**kwargs) -> VGG:
    """VGG configuration A-LRN: A with local response normalization after the first convolution."""
    return _vgg("A-LRN", False, kwargs)


@register_model
def vgg13(**kwargs) -> VGG:
    """VGG configuration B (13 weight layers), 133 M parameters."""
    return _vgg("B", False, kwargs)


@register_model
def vgg16_c(**kwargs) -> VGG:
    """VGG configuration C: 16 weight layers, three of them 1x1 convolutions; 134 M parameters."""
    return _vgg("C", False, kwargs)


@register_model
def vgg16(**kwargs) -> VGG:
    """VGG configuration D (16 weight layers, all 3x3), 138 M parameters."""
    return _vgg("D", False, kwargs)


@register_model
def vgg19(**kwargs) -> VGG:
    """VGG configuration E (19 weight layers), 144 M parameters."""
    return _vgg("E", False, kwargs)


@register_model
def vgg11_bn(**kwargs) -> VGG:
    """Configuration A with BatchNorm after every convolution (not in the paper; torchvision's vgg11_bn)."""
    return _vgg("A", True, kwargs)


@register_model
def vgg13_bn(**kwargs) -> VGG:
    """Configuration B with BatchNorm after every convolution (torchvision's vgg13_bn)."""
    return _vgg("B", True, kwargs)


@register_model
def vgg16_bn(**kwargs) -> VGG:
    """Configuration D with BatchNorm after every convolution (torchvision's vgg16_bn)."""
    return _vgg("D", True, kwargs)


@register_model
def vgg19_bn(**kwargs) -> VGG:
    """Configuration E with BatchNorm after every convolution (torchvision's vgg19_bn)."""
    return _vgg("E", True, kwargs)
