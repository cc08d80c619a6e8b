"""Inception-v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer Vision").

The network of Table 1 as it was released (TF-slim ``inception_v3``, the source of every public checkpoint): a
stem of 3x3 convolutions, 3 modules at 35x35 (Figure 5), a grid reduction (Figure 10), 4 modules at 17x17 with the
7x7 factorized into 1x7 and 7x1 (Figure 6, n=7), a second reduction, 2 modules at 8x8 with the expanded filter bank
(Figure 7), average pooling, dropout and a linear classifier. Every convolution is conv (no bias) -> BatchNorm
(eps 0.001) -> ReLU ("BN-auxiliary": the auxiliary classifier on the 17x17 grid is batch-normalized too, Section 7).
Input 299x299.

Each module is data: a list of branches, each branch a chain of convolutions ``(name, filters, kernel, stride)``;
a chain may start with a pooling and may end in a parallel split (Figure 7) whose outputs are concatenated.

Compatibility: the parameter names and count equal torchvision's ``inception_v3`` (with and without ``aux_logits``),
so its weights load 1:1 and give the same logits. Two released-model facts are kept on purpose: the 35x35 modules
keep one 5x5 branch (Figure 5 of the paper replaces it by two 3x3s), and the 3x3 average poolings of the branches
count the zero padding in the average (torchvision's choice, needed for its weights). ``transform_input=True``
reproduces torchvision's option for its ImageNet weights: inputs normalized with the ImageNet mean/std are mapped to
the (x - 0.5) / 0.5 normalization that the Google checkpoint was trained with; with ``False`` (the default here and
in ``torchvision.models.inception_v3(weights=None)``) the input goes in unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import avg_pool, conv, global_avg_pool, max_pool
from convzoo.models.aux import AuxOutput
from convzoo.models.base import Classifier, FeatureInfo, init_weights_he
from convzoo.registry import register_model

Kernel = int | tuple[int, int]
Step = tuple  # (name, filters, kernel) or (name, filters, kernel, stride)
Chain = list  # of "avg" | "max" | Step | list[Step] (a parallel split, last)

AUX_WEIGHT = 0.4  # the weight of the auxiliary loss in the TF-slim training script (the paper gives none)
BN_EPS = 0.001


def module_35(pool_features: int) -> list[Chain]:
    """Figure 5 as released (35x35 grid): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""
    return [[("branch1x1", 64, 1)],
            [("branch5x5_1", 48, 1), ("branch5x5_2", 64, 5)],
            [("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3), ("branch3x3dbl_3", 96, 3)],
            ["avg", ("branch_pool", pool_features, 1)]]


def reduction_35() -> list[Chain]:
    """Figure 10 (35x35 -> 17x17): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""
    return [[("branch3x3", 384, 3, 2)],
            [("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3), ("branch3x3dbl_3", 96, 3, 2)],
            ["max"]]


def module_17(channels_7x7: int) -> list[Chain]:
    """Figure 6 with n=7 (17x17 grid): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg -> 1x1."""
    c = channels_7x7
    return [[("branch1x1", 192, 1)],
            [("branch7x7_1", c, 1), ("branch7x7_2", c, (1, 7)), ("branch7x7_3", 192, (7, 1))],
            [("branch7x7dbl_1", c, 1), ("branch7x7dbl_2", c, (7, 1)), ("branch7x7dbl_3", c, (1, 7)),
             ("branch7x7dbl_4", c, (7, 1)), ("branch7x7dbl_5", 192, (1, 7))],
            ["avg", ("branch_pool", 192, 1)]]


def reduction_17() -> list[Chain]:
    """The second grid reduction (17x17 -> 8x8): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""
    return [[("branch3x3_1", 192, 1), ("branch3x3_2", 320, 3, 2)],
            [("branch7x7x3_1", 192, 1), ("branch7x7x3_2", 192, (1, 7)), ("branch7x7x3_3", 192, (7, 1)),
             ("branch7x7x3_4", 192, 3, 2)],
            ["max"]]


def module_8() -> list[Chain]:
    """Figure 7 (8x8 grid, expanded filter bank): 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x3 -> (1x3 | 3x1) | avg -> 1x1."""
    return [[("branch1x1", 320, 1)],
            [("branch3x3_1", 384, 1), [("branch3x3_2a", 384, (1, 3)), ("branch3x3_2b", 384, (3, 1))]],
            [("branch3x3dbl_1", 448, 1), ("branch3x3dbl_2", 384, 3),
             [("branch3x3dbl_3a", 384, (1, 3)), ("branch3x3dbl_3b", 384, (3, 1))]],
            ["avg", ("branch_pool", 192, 1)]]


# Table 1 (as released): the grid modules in order. The stem ends with 192 channels at 35x35.
INCEPTION_V3_TABLE: list[tuple[str, list[Chain]]] = [
    ("Mixed_5b", module_35(32)), ("Mixed_5c", module_35(64)), ("Mixed_5d", module_35(64)),
    ("Mixed_6a", reduction_35()),
    ("Mixed_6b", module_17(128)), ("Mixed_6c", module_17(160)), ("Mixed_6d", module_17(160)),
    ("Mixed_6e", module_17(192)),
    ("Mixed_7a", reduction_17()),
    ("Mixed_7b", module_8()), ("Mixed_7c", module_8()),
]
# Table 1's stem: (name, filters, kernel, stride, padding); a max pool 3x3/2 follows Conv2d_2b and Conv2d_4a.
STEM_POOLS = {"Conv2d_2b_3x3": "maxpool1", "Conv2d_4a_3x3": "maxpool2"}
STEM = [("Conv2d_1a_3x3", 32, 3, 2, 0), ("Conv2d_2a_3x3", 32, 3, 1, 0), ("Conv2d_2b_3x3", 64, 3, 1, 1),
        ("Conv2d_3b_1x1", 80, 1, 1, 0), ("Conv2d_4a_3x3", 192, 3, 1, 0)]
AUX_AFTER = "Mixed_6e"


class ConvBN(nn.Module):
    """conv (no bias) -> BatchNorm -> ReLU; stride 1 pads 'same' (k // 2 per axis), stride 2 is 'valid'."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Kernel, stride: int = 1,
                 padding: int | str | None = None) -> None:
        super().__init__()
        if padding is None:
            padding = "same" if stride == 1 else "valid"
        self.conv = conv(2, in_channels, out_channels, kernel, stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _step(step: Step) -> tuple[str, int, Kernel, int]:
    name, filters, kernel, *stride = step
    return name, filters, kernel, (stride[0] if stride else 1)


class Mixed(nn.Module):
    """One inception module built from its branch table; Tensor[N, C, H, W] -> concatenation of the branches."""

    def __init__(self, in_channels: int, branches: list[Chain]) -> None:
        super().__init__()
        self.branches = branches
        self.out_channels = 0
        for chain in branches:
            channels = in_channels
            for item in chain:
                if isinstance(item, str):  # a pooling keeps the channels
                    continue
                parallel = item if isinstance(item, list) else [item]
                for name, filters, kernel, stride in map(_step, parallel):
                    self.add_module(name, ConvBN(channels, filters, kernel, stride))
                channels = sum(step[1] for step in parallel)
            self.out_channels += channels

    def _chain(self, x: torch.Tensor, chain: Chain) -> torch.Tensor:
        for item in chain:
            if item == "avg":  # 3x3/1, zero padding counted in the average (see the module docstring)
                x = F.avg_pool2d(x, 3, stride=1, padding=1)
            elif item == "max":
                x = F.max_pool2d(x, 3, stride=2)
            elif isinstance(item, list):
                x = torch.cat([getattr(self, step[0])(x) for step in item], dim=1)
            else:
                x = getattr(self, item[0])(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._chain(x, chain) for chain in self.branches], dim=1)


class InceptionAux(nn.Module):
    """The BN auxiliary classifier on the 17x17x768 grid (Section 7, Figure 8).

    5x5/3 average pooling (17 -> 5), 1x1 conv 128, 5x5 conv 768 (5 -> 1), global average, linear to the classes.
    Deviation for inputs below 299 only (torchvision fails there): an adaptive average pooling brings the grid to
    the 5x5 that the 5x5 convolution needs (at 299 it is the identity).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = avg_pool(2, 5, 3, count_include_pad=True)
        self.conv0 = ConvBN(in_channels, 128, 1)
        self.conv1 = ConvBN(128, 768, 5, padding="valid")
        self.avgpool = global_avg_pool(2)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[2:]) >= 5:
            x = self.pool(x)
        x = self.conv1(F.adaptive_avg_pool2d(self.conv0(x), 5))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def transform_input(x: torch.Tensor) -> torch.Tensor:
    """Tensor[N, 3, H, W] normalized with ImageNet mean/std -> normalized with mean 0.5 and std 0.5 per channel."""
    mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x * std + mean - 0.5) / 0.5


class InceptionV3(Classifier):
    """Inception-v3; input Tensor[N, in_chans, 299, 299] (at least 75x75).

    ``forward`` returns logits Tensor[N, num_classes]; in training mode with ``aux_logits`` it returns
    ``AuxOutput(logits, (aux,), (0.4,))``.
    """

    first_conv = "Conv2d_1a_3x3.conv"
    aux_heads = ("AuxLogits",)

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 dropout: float = 0.5, transform_input: bool = False) -> None:
        super().__init__()
        if transform_input and in_chans != 3:
            raise ValueError(f"transform_input maps ImageNet RGB normalization and needs in_chans=3, got {in_chans}")
        self.in_chans, self.num_classes, self.num_features = in_chans, num_classes, 2048
        self.default_input_size = (in_chans, 299, 299)
        self.aux_logits, self.transform_input = aux_logits, transform_input
        channels = in_chans
        for name, filters, kernel, stride, padding in STEM:
            self.add_module(name, ConvBN(channels, filters, kernel, stride, padding))
            channels = filters
            if name in STEM_POOLS:
                self.add_module(STEM_POOLS[name], max_pool(2, 3, 2))
        self.feature_info = [FeatureInfo("Conv2d_2b_3x3", 64, 2), FeatureInfo("Conv2d_4a_3x3", 192, 4)]
        stride = 8
        for name, branches in INCEPTION_V3_TABLE:
            module = Mixed(channels, branches)
            self.add_module(name, module)
            channels = module.out_channels
            if name == AUX_AFTER:
                self.AuxLogits = InceptionAux(channels, num_classes) if aux_logits else None
            if name in ("Mixed_5d", "Mixed_6e", "Mixed_7c"):
                self.feature_info.append(FeatureInfo(name, channels, stride))
                stride *= 2
        self.avgpool = global_avg_pool(2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        init_weights_he(self)

    def _run(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.transform_input:
            x = transform_input(x)
        aux = None
        for name, module in self.named_children():
            if name in ("AuxLogits", "avgpool", "dropout", "fc"):
                continue
            x = module(x)
            if with_aux and name == AUX_AFTER:
                aux = self.AuxLogits(x)
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[N, in_chans, 299, 299] -> Tensor[N, 2048, 8, 8] (Mixed_7c)."""
        return self._run(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """New final linear layers, for the main and for the auxiliary classifier, with ``num_classes`` outputs."""
        super().reset_classifier(num_classes)
        if self.AuxLogits is not None:
            fc = self.AuxLogits.fc
            self.AuxLogits.fc = nn.Linear(fc.in_features, num_classes).to(fc.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        self.check_input(x)
        features, aux = self._run(x, with_aux=self.training and self.aux_logits)
        logits = self.forward_head(features)
        return AuxOutput(logits, (aux,), (AUX_WEIGHT,)) if aux is not None else logits


@register_model
def inception_v3(**kwargs) -> InceptionV3:
    """Inception-v3 at 299x299 with the BN auxiliary head (``aux_logits=False`` drops it); torchvision-compatible."""
    return InceptionV3(**kwargs)
