"""BN-Inception (Ioffe & Szegedy 2015, "Batch Normalization", Section 4.2 and Figure 5); "Inception-v2" in TF-slim.

GoogLeNet with BatchNorm after every convolution (conv without bias -> BN -> ReLU), the 5x5 convolutions replaced
by two consecutive 3x3 ("double 3x3"), average pooling in most modules, and the stride-2 modules 3c and 4e that
reduce the grid themselves (stride-2 3x3s next to a max pooling that passes its input through). No auxiliary heads,
no LRN, and no dropout (Section 4.2.1, "Remove Dropout"; ``dropout`` re-adds it before the classifier).

Two readings where Figure 5 is not self-consistent, both taken from the released TF-slim ``inception_v2`` (whose
numbers the NASNet paper's Table 3 quotes: 11.2 M parameters, 1.94 G mult-adds at 224):
- the pool projections of 4c and 4d: Figure 5 prints 128, which would make these modules 608 channels wide while
  its output column says 576; TF-slim uses 96, which gives 576. (The Caffe port of BN-Inception keeps 128/608.)
- the first layer is a depthwise-separable 7x7/2 convolution with depth multiplier 8 (3 -> 24 -> 64 channels):
  2.7 K weights and 34 M mult-adds, exactly the numbers GoogLeNet's Table 1 lists for its conv1.
  ``separable_stem=False`` builds a plain 7x7 convolution instead (+84 M mult-adds, 2.02 G in total).

Padding is TF ``same`` throughout (so 224 -> 112/56/28/14/7), average poolings exclude the padding.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.layers import avg_pool, batch_norm, conv, global_avg_pool, max_pool
from convzoo.models.base import Classifier, FeatureInfo, init_weights_he
from convzoo.registry import register_model

# Figure 5: module -> (#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, pool proj, stride).
# A module with stride 2 has no 1x1 branch and passes its max pooling through (pool proj 0).
BN_INCEPTION_TABLE: dict[str, tuple[int, int, int, int, int, str, int, int]] = {
    "inception3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "inception3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "inception3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "inception4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "inception4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "inception4c": (160, 128, 160, 128, 160, "avg", 96, 1),  # Figure 5: 128 (inconsistent, see above)
    "inception4d": (96, 128, 192, 160, 192, "avg", 96, 1),  # Figure 5: 128 (inconsistent, see above)
    "inception4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "inception5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "inception5b": (352, 192, 320, 192, 224, "max", 128, 1),
}
BN_EPS = 0.001  # TF-slim's batch_norm epsilon


class ConvBNReLU(nn.Sequential):
    """conv (no bias, TF ``same`` padding) -> BatchNorm -> ReLU."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = conv(ndim, in_channels, out_channels, kernel_size, stride, padding="same", bias=False)
        self.bn = batch_norm(ndim, out_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)


class SeparableStem(nn.Sequential):
    """Depthwise 7x7/2 with depth multiplier 8 (no norm in between), pointwise 1x1 to 64, BN, ReLU."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, multiplier: int = 8) -> None:
        super().__init__()
        self.depthwise = conv(ndim, in_channels, in_channels * multiplier, 7, 2, padding="same", groups=in_channels,
                              bias=False)
        self.pointwise = conv(ndim, in_channels * multiplier, out_channels, 1, bias=False)
        self.bn = batch_norm(ndim, out_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)


class BNInceptionModule(nn.Module):
    """One row of Figure 5: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1), concatenated along channels."""

    def __init__(self, ndim: int, in_channels: int, row: tuple[int, int, int, int, int, str, int, int]) -> None:
        super().__init__()
        n1x1, n3x3_reduce, n3x3, dbl_reduce, dbl, pool, pool_proj, stride = row
        self.branch1 = ConvBNReLU(ndim, in_channels, n1x1, 1) if n1x1 else None
        self.branch2 = nn.Sequential(ConvBNReLU(ndim, in_channels, n3x3_reduce, 1),
                                     ConvBNReLU(ndim, n3x3_reduce, n3x3, 3, stride))
        self.branch3 = nn.Sequential(ConvBNReLU(ndim, in_channels, dbl_reduce, 1), ConvBNReLU(ndim, dbl_reduce, dbl, 3),
                                     ConvBNReLU(ndim, dbl, dbl, 3, stride))
        pooling = (avg_pool if pool == "avg" else max_pool)(ndim, 3, stride, padding="same")
        self.branch4 = nn.Sequential(pooling, ConvBNReLU(ndim, in_channels, pool_proj, 1)) if pool_proj else pooling
        self.out_channels = n1x1 + n3x3 + dbl + (pool_proj or in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch2(x), self.branch3(x), self.branch4(x)]
        if self.branch1 is not None:
            branches.insert(0, self.branch1(x))
        return torch.cat(branches, dim=1)


class BNInception(Classifier):
    """BN-Inception of Figure 5; input Tensor[N, in_chans, 224, 224] (1D/3D with ``ndim``)."""

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, ndim: int = 2, separable_stem: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.ndim, self.in_chans, self.num_classes, self.num_features = ndim, in_chans, num_classes, 1024
        self.default_input_size = (in_chans,) + (224,) * ndim
        self.conv1 = SeparableStem(ndim, in_chans, 64) if separable_stem else ConvBNReLU(ndim, in_chans, 64, 7, 2)
        self.first_conv = "conv1.depthwise" if separable_stem else "conv1.conv"  # a depthwise one cannot be adapted
        self.maxpool1 = max_pool(ndim, 3, 2, padding="same")
        self.conv2_reduce = ConvBNReLU(ndim, 64, 64, 1)
        self.conv2 = ConvBNReLU(ndim, 64, 192, 3)
        self.maxpool2 = max_pool(ndim, 3, 2, padding="same")
        self.feature_info = [FeatureInfo("conv2", 192, 4)]
        channels, stride = 192, 8
        self.stages = list(BN_INCEPTION_TABLE)
        for name, row in BN_INCEPTION_TABLE.items():
            if row[-1] == 2:  # the features of a stage are the module before its grid reduction
                self.feature_info.append(FeatureInfo(self.stages[self.stages.index(name) - 1], channels, stride))
                stride *= 2
            module = BNInceptionModule(ndim, channels, row)
            setattr(self, name, module)
            channels = module.out_channels
        self.feature_info.append(FeatureInfo("inception5b", channels, stride))
        self.avgpool = global_avg_pool(ndim)  # Figure 5: avg pool 7x7/1
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        init_weights_he(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[N, in_chans, 224, 224] -> Tensor[N, 1024, 7, 7] (inception 5b)."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv2(self.conv2_reduce(x)))
        for name in self.stages:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)


@register_model
def bn_inception(**kwargs) -> BNInception:
    """BN-Inception (Ioffe & Szegedy 2015, Figure 5) at 224x224: 11.2 M parameters, 1.94 G mult-adds."""
    return BNInception(**kwargs)
