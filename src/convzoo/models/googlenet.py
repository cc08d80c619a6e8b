"""GoogLeNet (Szegedy et al. 2014, "Going Deeper with Convolutions"), as the paper describes it.

No BatchNorm (it came a year later), convolutions with bias followed by ReLU, local response normalization after
the first pooling and after the second convolution, real 5x5 convolutions in the inception modules, 7x7 average
pooling, dropout 40% and one linear classifier. The two auxiliary classifiers of Section 5 sit on inception 4a and
4d: 5x5/3 average pooling, 1x1 convolution with 128 filters, FC-1024, dropout 70%, linear; their losses are weighted
by 0.3 (returned in training mode as an ``AuxOutput``, see ``convzoo.models.aux``).

Where the paper is silent the Caffe reference model (bvlc_googlenet, the paper's own release) decides: symmetric
padding, pooling that rounds up (``ceil_mode``, so the maps are 112/56/28/14/7 at 224x224), LRN with n=5,
alpha=1e-4/n per element, beta=0.75, k=1, Xavier initialization with biases 0.2.

Differences from torchvision's ``googlenet``: torchvision adds BatchNorm after every convolution, uses a 3x3 where
the paper's "5x5" branch is, and puts no LRN; its parameters do not load here.

Table 1 check (``convzoo summary googlenet --depth 1``): the ops of inception 3a-4e and 5b agree with the paper to
<1%. The paper's 5a row (1072K params, 54M ops) does not follow from its own filter numbers (1018K, 51M), nor do its
conv1 entries (2.7K params, 34M ops are those of a 7x7 depthwise-separable convolution with depth multiplier 8, not
of the plain 7x7x3x64 convolution the table lists: 9.4K, 118M); several params entries count in units of 1024.
We build the listed filters and do not fit to those numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import avg_pool, conv, global_avg_pool, local_response_norm, max_pool
from convzoo.models.aux import AuxOutput
from convzoo.models.base import Classifier, FeatureInfo
from convzoo.registry import register_model

# Table 1: inception module -> (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj). Output = 1x1+3x3+5x5+proj.
GOOGLENET_TABLE: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
AUX_AFTER = ("inception4a", "inception4d")  # Section 5: auxiliary classifiers on the outputs of 4a and 4d
AUX_WEIGHT = 0.3  # Section 5: "their loss gets added to the total loss of the network with a discount weight"
POOL_AFTER = ("inception3b", "inception4e")  # the 3x3/2 max poolings between the stages of Table 1

_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


class ConvReLU(nn.Module):
    """Convolution with bias followed by ReLU (Section 5: "All the convolutions ... use rectified linear")."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = conv(ndim, in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


class Inception(nn.Module):
    """Figure 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3/1 max pool -> 1x1, concatenated along channels."""

    def __init__(self, ndim: int, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = widths
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj
        self.branch1 = ConvReLU(ndim, in_channels, n1x1, 1)
        self.branch2 = nn.Sequential(ConvReLU(ndim, in_channels, n3x3_reduce, 1), ConvReLU(ndim, n3x3_reduce, n3x3, 3))
        self.branch3 = nn.Sequential(ConvReLU(ndim, in_channels, n5x5_reduce, 1), ConvReLU(ndim, n5x5_reduce, n5x5, 5))
        self.branch4 = nn.Sequential(max_pool(ndim, 3, 1, padding=1), ConvReLU(ndim, in_channels, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class AuxClassifier(nn.Module):
    """Section 5's auxiliary classifier: Tensor[N, C, 14, 14] (at 224 input) -> logits Tensor[N, num_classes].

    5x5/3 average pooling (14x14 -> 4x4), 1x1 conv with 128 filters + ReLU, FC-1024 + ReLU, dropout 70%, linear.
    Deviation for other input sizes only: an adaptive average pooling to 4x4 keeps FC-1024's 2048 inputs (at 224
    it is the identity).
    """

    def __init__(self, ndim: int, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.ndim = ndim
        self.pool = avg_pool(ndim, 5, 3, ceil_mode=True)
        self.conv = ConvReLU(ndim, in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 ** ndim, 1024)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[2:]) >= 5:
            x = self.pool(x)
        x = _ADAPTIVE_AVG[self.ndim](self.conv(x), 4)  # (N, 128, 4, 4)
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1)), inplace=True))
        return self.fc2(x)


class GoogLeNet(Classifier):
    """GoogLeNet of Table 1; input Tensor[N, in_chans, 224, 224] (any size >= 32 works; 1D/3D with ``ndim``).

    ``forward`` returns logits Tensor[N, num_classes]; in training mode with ``aux_logits`` it returns an
    ``AuxOutput(logits, (aux1, aux2), (0.3, 0.3))``.
    """

    first_conv = "conv1.conv"
    aux_heads = ("aux1", "aux2")

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, ndim: int = 2, aux_logits: bool = True,
                 dropout: float = 0.4, aux_dropout: float = 0.7) -> None:
        super().__init__()
        self.ndim, self.in_chans, self.num_classes, self.num_features = ndim, in_chans, num_classes, 1024
        self.default_input_size = (in_chans,) + (224,) * ndim
        self.aux_logits = aux_logits
        # Table 1, rows 1-5: conv 7x7/2, max pool 3x3/2, (LRN), conv 1x1 64 + conv 3x3 192, (LRN), max pool 3x3/2
        self.conv1 = ConvReLU(ndim, in_chans, 64, 7, stride=2)
        self.maxpool1 = max_pool(ndim, 3, 2, ceil_mode=True)
        self.lrn1 = local_response_norm(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0)  # Caffe: alpha/n per element
        self.conv2_reduce = ConvReLU(ndim, 64, 64, 1)
        self.conv2 = ConvReLU(ndim, 64, 192, 3)
        self.lrn2 = local_response_norm(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0)
        self.maxpool2 = max_pool(ndim, 3, 2, ceil_mode=True)
        self.feature_info = [FeatureInfo("conv2", 192, 4)]
        channels, stride = 192, 8
        self.stages: list[str] = []
        for name, widths in GOOGLENET_TABLE.items():
            module = Inception(ndim, channels, widths)
            setattr(self, name, module)
            self.stages.append(name)
            channels = module.out_channels
            if name in AUX_AFTER:
                setattr(self, f"aux{AUX_AFTER.index(name) + 1}",
                        AuxClassifier(ndim, channels, num_classes, aux_dropout) if aux_logits else None)
            if name in POOL_AFTER:
                self.feature_info.append(FeatureInfo(name, channels, stride))
                pool_name = f"maxpool{len(self.feature_info) + 1}"
                setattr(self, pool_name, max_pool(ndim, 3, 2, ceil_mode=True))
                self.stages.append(pool_name)
                stride *= 2
        self.feature_info.append(FeatureInfo("inception5b", channels, stride))
        self.avgpool = global_avg_pool(ndim)  # Table 1: avg pool 7x7/1 (the 7x7 map at 224)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """bvlc_googlenet: Xavier weights; convolution biases 0.2, linear biases 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.2 if not isinstance(m, nn.Linear) else 0.0)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        return self.maxpool2(self.lrn2(self.conv2(self.conv2_reduce(x))))

    def _run(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Backbone plus, when ``with_aux``, the auxiliary logits taken on the way."""
        x, aux = self._stem(x), []
        for name in self.stages:
            x = getattr(self, name)(x)
            if with_aux and name in AUX_AFTER:
                aux.append(getattr(self, f"aux{AUX_AFTER.index(name) + 1}")(x))
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[N, in_chans, 224, 224] -> Tensor[N, 1024, 7, 7] (inception 5b)."""
        return self._run(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """New final linear layers, for the main and for both auxiliary classifiers, with ``num_classes`` outputs."""
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = nn.Linear(aux.fc2.in_features, num_classes).to(aux.fc2.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        self.check_input(x)
        features, aux = self._run(x, with_aux=self.training and self.aux_logits)
        logits = self.forward_head(features)
        if aux:
            return AuxOutput(logits, tuple(aux), (AUX_WEIGHT,) * len(aux))
        return logits


@register_model
def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2014), Table 1, with both auxiliary classifiers (``aux_logits=False`` drops them)."""
    return GoogLeNet(**kwargs)
