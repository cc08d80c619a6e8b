"""NASNet-A (Zoph et al. 2017, "Learning Transferable Architectures for Scalable Image Recognition").

Every cell is built from one genotype table (``nasnet_genotype.py``): the normal cell (stride 1) and the reduction
cell (stride 2) differ only in their table. The ImageNet network (Figure 2, right) is a 3x3/2 stem convolution,
two reduction cells with filters/4 and filters/2 ("stem cells"), then N normal cells, a reduction cell, N normal
cells, a reduction cell and N normal cells, the filters doubling at each reduction; ReLU, global average pooling,
dropout 0.5, linear. "NASNet-A (N @ P)" names N and the penultimate width P = 24 x filters (6 x 4 x filters).

| model | N @ P | input | params | mult-adds (paper, Table 2/3) |
|---|---|---|---|---|
| ``nasnet_a_mobile`` | 4 @ 1056 | 224 | 5.3 M | 564 M |
| ``nasnet_a_large`` | 6 @ 4032 | 331 | 88.9 M | 23.8 G |

Where the paper is silent the released TF-slim model decides: BN eps 0.001; TF ``same`` padding for every
separable convolution and pooling (asymmetric when strided); the previous state h_{i-1} is brought to the current
shape by a factorized reduction (two 1x1 convolutions on the two pixel-shifted halves of a stride-2 subsampling)
when its resolution is higher, by ReLU-1x1-BN otherwise; the mobile model feeds the cell after a reduction with the
last normal cell as h_{i-1}, the large model with the one before (``skip_reduction_layer_input``).
Not included: the auxiliary head and ScheduledDropPath of the paper's training.

Parameter names follow timm's ``nasnetalarge`` (``conv0``, ``cell_stem_0``, ``cell_0``..., ``reduction_cell_0``,
``comb_iter_{block}_{left|right}.separable_1.depthwise_conv2d``, ``last_linear``), so its weights load by name.
timm's 3x3/2 average poolings count the zeros of the ``same`` padding in each average, TF does not:
``count_include_pad=True`` reproduces timm's logits, the default reproduces TF.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import avg_pool, conv, global_avg_pool, max_pool, pad_same
from convzoo.models.base import Classifier, FeatureInfo, init_weights_he
from convzoo.models.nasnet_genotype import NASNET_A, OP_NAMES, CellGenotype, Genotype, load_genotype
from convzoo.registry import register_model

BN_EPS = 0.001


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class ReLUConvBN(nn.Module):
    """ReLU -> 1x1 conv (no bias) -> BN: brings a state to ``out_channels`` channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv(2, in_channels, out_channels, 1, bias=False)
        self.bn = _bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class SeparableConv(nn.Module):
    """Depthwise kxk conv (``same`` padding, stride) followed by a pointwise 1x1 conv, no biases."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.depthwise_conv2d = conv(2, in_channels, in_channels, kernel, stride, padding="same", groups=in_channels,
                                     bias=False)
        self.pointwise_conv2d = conv(2, in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv2d(self.depthwise_conv2d(x))


class StackedSeparable(nn.Module):
    """The paper's "kxk separable conv": (ReLU, separable conv, BN) twice, the stride in the first."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.separable_1 = SeparableConv(in_channels, out_channels, kernel, stride)
        self.bn_sep_1 = _bn(out_channels)
        self.separable_2 = SeparableConv(out_channels, out_channels, kernel, 1)
        self.bn_sep_2 = _bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_sep_1(self.separable_1(F.relu(x)))
        return self.bn_sep_2(self.separable_2(F.relu(x)))


class ZeroPaddedAvgPool(nn.Module):
    """kxk average pooling after explicit TF-``same`` zero padding, the zeros counted (timm's strided pooling)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_same(x, (self.kernel,) * 2, (self.stride,) * 2, (1, 1))
        return F.avg_pool2d(padded, self.kernel, self.stride)


class ReLUConvBNOp(nn.Module):
    """ReLU -> conv (kernel ``(kh, kw)``, stride, dilation, ``same`` padding, no bias) -> BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv = conv(2, in_channels, out_channels, kernel, stride, padding="same", dilation=dilation, bias=False)
        self.bn = _bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class FactorizedConv(nn.Module):
    """The paper's "1xk then kx1 convolution": ReLU-conv 1xk-BN, ReLU-conv kx1-BN (the stride split over both)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_1xk = ReLUConvBNOp(in_channels, out_channels, (1, kernel), (1, stride))
        self.conv_kx1 = ReLUConvBNOp(out_channels, out_channels, (kernel, 1), (stride, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_kx1(self.conv_1xk(x))


class Projected(nn.Module):
    """A channel-keeping operation (pooling, identity) followed by ReLU-1x1/stride-BN where the cell needs other
    channels or (identity) a stride, as TF-slim ``nasnet_utils`` does."""

    def __init__(self, op: nn.Module, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.op = op
        self.project = ReLUConvBNOp(in_channels, out_channels, (1, 1), (stride, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.op(x))


def make_operation(op: str, in_channels: int, filters: int, stride: int, count_include_pad: bool) -> nn.Module:
    """One operation of the search space (``nasnet_genotype.OPERATIONS``) applied to a state of ``in_channels``
    channels with ``stride``: Tensor[N, in_channels, H, W] -> Tensor[N, filters, H/stride, W/stride]."""
    if op.startswith("sep"):
        return StackedSeparable(in_channels, filters, int(op[3:]), stride)
    if op in ("conv1", "conv3"):
        return ReLUConvBNOp(in_channels, filters, (int(op[4]),) * 2, (stride, stride))
    if op == "dil3":
        return ReLUConvBNOp(in_channels, filters, (3, 3), (stride, stride), dilation=2)
    if op in ("conv1x3_3x1", "conv1x7_7x1"):
        return FactorizedConv(in_channels, filters, int(op[6]), stride)
    if op == "none":
        return nn.Identity() if stride == 1 and in_channels == filters else \
            Projected(nn.Identity(), in_channels, filters, stride)
    if op[:3] in ("max", "avg") and op[3:] in ("3", "5", "7"):
        kernel = int(op[3:])
        if op.startswith("max"):
            pool = max_pool(2, kernel, stride, padding="same")
        elif stride > 1 and count_include_pad:
            pool = ZeroPaddedAvgPool(kernel, stride)
        else:
            pool = avg_pool(2, kernel, stride, padding="same")
        return pool if in_channels == filters else Projected(pool, in_channels, filters, 1)
    raise ValueError(f"unknown NASNet operation {op!r}; expected one of {', '.join(OP_NAMES)}")


class Cell(nn.Module):
    """A NASNet cell: (h_i Tensor[N, C_i, H, W], h_{i-1} Tensor[N, C_prev, H', W']) -> Tensor[N, C_out, H/s, W/s].

    ``prev_mode``: "raw" uses h_{i-1} as it comes (the first cell after the stem, where h_{i-1} = h_i),
    "factorized" halves its resolution (H' = 2H), "1x1" only adapts its channels. A block that concatenates gives
    2 x ``filters`` channels; ``out_channels`` is the sum over ``genotype.concat``.
    """

    def __init__(self, genotype: CellGenotype, reduction: bool, cur_channels: int, prev_channels: int, filters: int,
                 prev_mode: str, count_include_pad: bool = False) -> None:
        super().__init__()
        self.genotype, self.prev_mode = genotype, prev_mode
        self.conv_1x1 = ReLUConvBN(cur_channels, filters)
        if prev_mode == "factorized":
            self.path_1 = nn.Sequential(OrderedDict(conv=conv(2, prev_channels, filters // 2, 1, bias=False)))
            self.path_2 = nn.Sequential(OrderedDict(conv=conv(2, prev_channels, filters - filters // 2, 1,
                                                              bias=False)))
            self.final_path_bn = _bn(filters)
            prev_channels = filters
        elif prev_mode == "1x1":
            self.conv_prev_1x1 = ReLUConvBN(prev_channels, filters)
            prev_channels = filters
        elif prev_mode != "raw":
            raise ValueError(f"prev_mode must be 'raw', 'factorized' or '1x1', got {prev_mode!r}")
        channels = [filters, prev_channels]
        for k, block in enumerate(genotype.blocks):
            for side, (op, state) in zip(("left", "right"), block):
                stride = 2 if reduction and state < 2 else 1
                self.add_module(f"comb_iter_{k}_{side}",
                                make_operation(op, channels[state], filters, stride, count_include_pad))
            channels.append(filters * (2 if genotype.combination(k) == "concat" else 1))
        self.out_channels = sum(channels[i] for i in genotype.concat)

    def _adjust_prev(self, prev: torch.Tensor) -> torch.Tensor:
        if self.prev_mode == "1x1":
            return self.conv_prev_1x1(prev)
        if self.prev_mode == "raw":
            return prev
        # factorized reduction: 1x1/2 on the even pixels, and on the odd ones (shifted by one, zero past the border)
        prev = F.relu(prev)
        shifted = F.pad(prev, (0, 1, 0, 1))[:, :, 1:, 1:]
        halves = [self.path_1(prev[:, :, ::2, ::2]), self.path_2(shifted[:, :, ::2, ::2])]
        return self.final_path_bn(torch.cat(halves, dim=1))

    def forward(self, cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        states = [self.conv_1x1(cur), self._adjust_prev(prev)]
        for k, ((_, left), (_, right)) in enumerate(self.genotype.blocks):
            a = getattr(self, f"comb_iter_{k}_left")(states[left])
            b = getattr(self, f"comb_iter_{k}_right")(states[right])
            states.append(torch.cat([a, b], dim=1) if self.genotype.combination(k) == "concat" else a + b)
        return torch.cat([states[i] for i in self.genotype.concat], dim=1)


class NASNet(Classifier):
    """A NASNet of any genotype; input Tensor[N, in_chans, H, W] -> logits Tensor[N, num_classes].

    ``stem="imagenet"`` (Figure 2, right): a 3x3/2 convolution of ``stem_filters`` and two reduction cells at
    filters/4 and filters/2 (at least 32x32 inputs). ``stem="cifar"`` (Figure 2, left): a 3x3/1 convolution of
    ``stem_filters`` (default 3 x filters, TF-slim's ``stem_multiplier``). Then N = ``num_cells`` normal cells, a
    reduction cell, N normal, a reduction, N normal; ``filters`` is the first stage's, doubled at each reduction.
    """

    classifier_name = "last_linear"
    first_conv = "conv0.conv"

    def __init__(self, *, genotype: Genotype, num_cells: int, filters: int, stem: str, stem_filters: int | None,
                 skip_reduction_layer_input: bool, input_size: int, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.5, count_include_pad: bool = False) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be imagenet or cifar, got {stem!r}")
        for name, value in (("num_cells", num_cells), ("filters", filters)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if stem == "imagenet" and filters < 4:
            raise ValueError(f"filters must be at least 4 with the imagenet stem (its cells take filters/4), got "
                             f"{filters}")
        stem_filters = stem_filters or (3 * filters if stem == "cifar" else 32)
        self.genotype = genotype
        self.in_chans, self.num_classes = in_chans, num_classes
        self.default_input_size = (in_chans, input_size, input_size)
        stem_stride = 2 if stem == "imagenet" else 1
        self.conv0 = nn.Sequential(OrderedDict(
            conv=conv(2, in_chans, stem_filters, 3, stem_stride, padding="valid" if stem == "imagenet" else "same",
                      bias=False),
            bn=_bn(stem_filters)))
        # outputs[j] = (channels, stride) of the j-th computed state; schedule = (cell name, cur index, prev index)
        outputs: list[tuple[int, int]] = [(stem_filters, stem_stride)]
        self.schedule: list[tuple[str, int, int]] = []

        def add(name: str, reduction: bool, cur: int, prev: int, cell_filters: int, raw_prev: bool = False) -> None:
            (cur_ch, cur_stride), (prev_ch, prev_stride) = outputs[cur], outputs[prev]
            mode = "raw" if raw_prev else ("factorized" if prev_stride < cur_stride else "1x1")
            cell = Cell(genotype.reduction if reduction else genotype.normal, reduction, cur_ch, prev_ch,
                        cell_filters, mode, count_include_pad)
            self.add_module(name, cell)
            self.schedule.append((name, cur, prev))
            outputs.append((cell.out_channels, cur_stride * (2 if reduction else 1)))

        if stem == "imagenet":  # TF-slim ``_imagenet_stem``: two reduction cells at filters/4 and filters/2
            add("cell_stem_0", True, 0, 0, filters // 4, raw_prev=True)
            add("cell_stem_1", True, 1, 0, filters // 2)
            history = [0, 1, 2]
        else:  # TF-slim ``_cifar_stem``: the first cell's h_{i-1} is the stem itself
            history = [0, 0]
        # TF-slim ``_build_nasnet_base``: reductions before cells N and 2N; h_{i-1} of the cell after a reduction is
        # the last normal cell (mobile) or the one before it (large, ``skip_reduction_layer_input``)
        scale = 1
        for cell_num in range(3 * num_cells):
            prev = history[-2]
            if cell_num in (num_cells, 2 * num_cells):
                scale *= 2
                add(f"reduction_cell_{cell_num // num_cells - 1}", True, history[-1], history[-2], filters * scale)
                history.append(len(outputs) - 1)
                if not skip_reduction_layer_input:
                    prev = history[-2]
            add(f"cell_{cell_num}", False, history[-1], prev, filters * scale, raw_prev=cell_num == 0 and
                stem == "cifar")
            history.append(len(outputs) - 1)
        stage_end = [f"cell_{(s + 1) * num_cells - 1}" for s in range(3)]
        channels = {name: outputs[j + 1][0] for j, (name, _, _) in enumerate(self.schedule)}
        first = [FeatureInfo("cell_stem_0", outputs[1][0], 4)] if stem == "imagenet" else []
        self.feature_info = first + [FeatureInfo(name, channels[name], stem_stride * 4 ** (stem == "imagenet") * 2 ** s)
                                     for s, name in enumerate(stage_end)]
        self.num_features = outputs[-1][0]
        self.avgpool = global_avg_pool(2)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(self.num_features, num_classes)
        init_weights_he(self)

    def wiring(self) -> list[tuple[str, tuple[str, str]]]:
        """(cell, (source of h_i, source of h_{i-1})) for every cell in order; "conv0" is the stem convolution."""
        names = ["conv0"] + [name for name, _, _ in self.schedule]
        return [(name, (names[cur], names[prev])) for name, cur, prev in self.schedule]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[N, in_chans, H, W] -> ReLU of the last cell, Tensor[N, P, H/s, W/s] (s = 32 imagenet, 4 cifar)."""
        last_use = {j: step for step, (_, cur, prev) in enumerate(self.schedule) for j in (cur, prev)}
        outputs: list[torch.Tensor | None] = [self.conv0(x)]
        for step, (name, cur, prev) in enumerate(self.schedule):
            outputs.append(getattr(self, name)(outputs[cur], outputs[prev]))
            for j in (cur, prev):
                if last_use[j] == step:  # no later cell reads this state: let its memory go
                    outputs[j] = None
        return F.relu(outputs[-1])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.last_linear(x)


NASNetA = NASNet  # the class of the NASNet-A builders below


@register_model
def nasnet(genotype: Genotype | dict | str = "nasnet_a", num_cells: int = 4, filters: int = 44,
           stem: str = "imagenet", stem_filters: int | None = None, skip_reduction_layer_input: bool = False,
           input_size: int | None = None, **kwargs) -> NASNet:
    """NASNet of any genotype (a Genotype, its dict, JSON text, a JSON file or "nasnet_a"), N = ``num_cells``,
    ``filters`` and ``stem`` ("imagenet" or "cifar"). The defaults are NASNet-A Mobile (4 @ 1056, 5.3 M
    parameters); NASNet-A (6 @ 768) for CIFAR-10, ``stem="cifar", num_cells=6, filters=32``, has 3.3 M
    (Table 1, without the auxiliary head)."""
    return NASNet(genotype=load_genotype(genotype), num_cells=num_cells, filters=filters, stem=stem,
                  stem_filters=stem_filters, skip_reduction_layer_input=skip_reduction_layer_input,
                  input_size=input_size or (224 if stem == "imagenet" else 32), **kwargs)


@register_model
def nasnet_a_mobile(**kwargs) -> NASNet:
    """NASNet-A Mobile (4 @ 1056) at 224x224: 5.3 M parameters, 564 M mult-adds (Table 3)."""
    return NASNet(genotype=NASNET_A, num_cells=4, filters=1056 // 24, stem="imagenet", stem_filters=32,
                  skip_reduction_layer_input=False, input_size=224, **kwargs)


@register_model
def nasnet_a_large(**kwargs) -> NASNet:
    """NASNet-A Large (6 @ 4032) at 331x331: 88.9 M parameters, 23.8 G mult-adds (Table 2); timm-compatible names."""
    return NASNet(genotype=NASNET_A, num_cells=6, filters=4032 // 24, stem="imagenet", stem_filters=96,
                  skip_reduction_layer_input=True, input_size=331, **kwargs)
