"""ENAS-style weight sharing (Pham et al. 2018) over NASNet's search space: one network holds every operation for
every (cell, block, side), so any sampled genotype runs on the shared weights and is scored without training.

The macro network is NASNet's CIFAR layout (Figure 2, left): a 3x3 stem convolution of 3 x ``filters``, then N
normal cells, a reduction cell, N normal, a reduction, N normal, the filters doubling at each reduction; ReLU,
global average pooling, linear. A genotype picks, in each cell, which operation each block applies to which
state: only those weights run (and get gradients) in a step.

Sharing across genotypes whose cell outputs concatenate different states: every cell ends in ENAS's masked
ReLU-1x1-BN (Pham et al. 2018, Section 2.3) to 2 F channels, whose weight holds one block of columns per state
(state i: columns 2 F i .. 2 F i + width), and a genotype uses the columns of the states it concatenates. So a
cell's output has the same width, scale and channel meaning for every genotype; without it the shared weights
did not learn (docs/nas.md has the measurements). Operations start near the identity (``_op_weight``).
Inside a cell, an operation's weights are sized for the widest state (2 F, a "concat" block) and a narrower one
uses the first channels. BatchNorm has no affine parameters and
always normalizes with the batch's statistics (as ENAS and DARTS do in search): running statistics would mix
architectures. Differences from the child network built later by ``create_model("nasnet", stem="cifar")``: the
first cell's h_{i-1} goes through a ReLU-1x1-BN too, the paddings are symmetric.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.models.nasnet_genotype import CELL_TYPES, OP_NAMES, CellGenotype, Genotype


def batch_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalization by the batch's own statistics, no affine transform."""
    return F.batch_norm(x, None, None, training=True, eps=1e-3)


def _weight(*shape: int) -> nn.Parameter:
    weight = torch.empty(*shape)
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    return nn.Parameter(weight)


def _op_weight(*shape: int, noise: float = 0.3) -> nn.Parameter:
    """An operation's convolution weight [out, in (1: depthwise), kh, kw]: the identity (a Dirac kernel, channel i
    to channel i) plus ``noise`` times a Kaiming draw. A deliberate deviation from ENAS's random initialization:
    every operation starts close to passing its input's channels through, so channel i means about the same
    after any operation and the shared projections can learn from the first steps (measured on Fashion-MNIST at
    16 px, N = 1, F = 8, uniform sampling: training accuracy over the 4th epoch 0.198 against 0.125; docs/nas.md)."""
    draw = _weight(*shape).detach()
    weight = torch.empty(*shape)
    if shape[1] == 1:  # depthwise: every channel its own Dirac kernel
        weight.zero_()[:, 0, shape[2] // 2, shape[3] // 2] = 1.0
    else:
        nn.init.dirac_(weight)
    return nn.Parameter(weight + noise * draw)


class SharedOp(nn.Module):
    """One operation of the space with weights for up to ``max_in`` input channels and ``filters`` outputs:
    ``forward(x Tensor[N, C<=max_in, H, W], stride) -> Tensor[N, filters, H/stride, W/stride]``."""

    def __init__(self, op: str, max_in: int, filters: int) -> None:
        super().__init__()
        self.op, self.filters = op, filters
        if op.startswith("sep"):
            k = int(op[3:])
            self.dw1, self.pw1 = _op_weight(max_in, 1, k, k), _op_weight(filters, max_in, 1, 1)
            self.dw2, self.pw2 = _op_weight(filters, 1, k, k), _op_weight(filters, filters, 1, 1)
        elif op in ("conv1", "conv3", "dil3"):
            k = 1 if op == "conv1" else 3
            self.w = _op_weight(filters, max_in, k, k)
        elif op in ("conv1x3_3x1", "conv1x7_7x1"):
            k = int(op[6])
            self.w1, self.w2 = _op_weight(filters, max_in, 1, k), _op_weight(filters, filters, k, 1)
        else:  # pooling or identity: a ReLU-1x1-BN projection where the width or (identity) the stride differs
            self.project = _op_weight(filters, max_in, 1, 1)

    def forward(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        c, op = x.shape[1], self.op
        if op.startswith("sep"):
            k = self.dw1.shape[-1]
            x = F.conv2d(F.relu(x), self.dw1[:c], stride=stride, padding=k // 2, groups=c)
            x = batch_norm(F.conv2d(x, self.pw1[:, :c]))
            x = F.conv2d(F.relu(x), self.dw2, padding=k // 2, groups=self.filters)
            return batch_norm(F.conv2d(x, self.pw2))
        if op in ("conv1", "conv3", "dil3"):
            dilation = 2 if op == "dil3" else 1
            return batch_norm(F.conv2d(F.relu(x), self.w[:, :c], stride=stride,
                                       padding=dilation * (self.w.shape[-1] // 2), dilation=dilation))
        if op in ("conv1x3_3x1", "conv1x7_7x1"):
            k = self.w2.shape[-2]
            x = batch_norm(F.conv2d(F.relu(x), self.w1[:, :c], stride=(1, stride), padding=(0, k // 2)))
            return batch_norm(F.conv2d(F.relu(x), self.w2, stride=(stride, 1), padding=(k // 2, 0)))
        if op == "none":
            if stride == 1 and c == self.filters:
                return x
            return batch_norm(F.conv2d(F.relu(x), self.project[:, :c], stride=stride))
        k = int(op[3:])
        if op.startswith("max"):
            x = F.max_pool2d(x, k, stride, padding=k // 2)
        else:
            x = F.avg_pool2d(x, k, stride, padding=k // 2, count_include_pad=False)
        return x if c == self.filters else batch_norm(F.conv2d(F.relu(x), self.project[:, :c]))


class SharedCell(nn.Module):
    """A cell position of the supernet: ``forward(cur Tensor[N, max_cur, H, W], prev Tensor[N, max_prev, H', W'],
    genotype CellGenotype) -> Tensor[N, out, H/s, W/s]`` with ``out = 2 filters`` whatever the genotype: the
    ``concat`` states go through ENAS's masked ReLU-1x1-BN (``output``: one column block per state slot)."""

    def __init__(self, blocks: int, reduction: bool, max_cur: int, max_prev: int, filters: int,
                 factorized: bool) -> None:
        super().__init__()
        self.blocks, self.reduction, self.filters, self.factorized = blocks, reduction, filters, factorized
        self.pre_cur = _weight(filters, max_cur, 1, 1)
        if factorized:  # h_{i-1} at twice the resolution: the factorized reduction of NASNet
            self.pre_prev_1, self.pre_prev_2 = _weight(filters // 2, max_prev, 1, 1), \
                _weight(filters - filters // 2, max_prev, 1, 1)
        else:
            self.pre_prev = _weight(filters, max_prev, 1, 1)
        self.ops = nn.ModuleList(
            nn.ModuleList(nn.ModuleDict({op: SharedOp(op, 2 * filters, filters) for op in OP_NAMES})
                          for _side in range(2))
            for _block in range(blocks))
        self.out_channels = 2 * filters
        # state i's channels are columns 2 F i .. 2 F i + width of the output projection
        self.output = _weight(self.out_channels, 2 * filters * (blocks + 2), 1, 1)

    def forward(self, cur: torch.Tensor, prev: torch.Tensor, genotype: CellGenotype) -> torch.Tensor:
        states = [batch_norm(F.conv2d(F.relu(cur), self.pre_cur))]
        prev = F.relu(prev)
        if self.factorized:
            shifted = F.pad(prev, (0, 1, 0, 1))[:, :, 1:, 1:]
            prev = torch.cat([F.conv2d(prev[:, :, ::2, ::2], self.pre_prev_1),
                              F.conv2d(shifted[:, :, ::2, ::2], self.pre_prev_2)], 1)
            states.append(batch_norm(prev))
        else:
            states.append(batch_norm(F.conv2d(prev, self.pre_prev)))
        for k, block in enumerate(genotype.blocks):
            outs = [self.ops[k][side][op](states[state], 2 if self.reduction and state < 2 else 1)
                    for side, (op, state) in enumerate(block)]
            states.append(torch.cat(outs, 1) if genotype.combination(k) == "concat" else outs[0] + outs[1])
        slot = 2 * self.filters
        columns = torch.cat([torch.arange(slot * i, slot * i + states[i].shape[1]) for i in genotype.concat])
        out = torch.cat([states[i] for i in genotype.concat], 1)
        return batch_norm(F.conv2d(F.relu(out), self.output.index_select(1, columns.to(out.device))))


class Supernet(nn.Module):
    """The shared weights of every NASNet cell of ``blocks`` blocks at N = ``num_cells`` and ``filters``:
    ``forward(x Tensor[N, in_chans, H, W], genotype Genotype) -> logits Tensor[N, num_classes]``."""

    def __init__(self, num_classes: int, in_chans: int = 3, num_cells: int = 1, filters: int = 8,
                 blocks: int = 5) -> None:
        super().__init__()
        self.blocks = blocks
        stem = 3 * filters
        self.stem = _weight(stem, in_chans, 3, 3)
        # (width, stride) of every state; each cell reads the last two
        widths, strides = [stem, stem], [1, 1]
        cells, scale = [], 1
        for index in range(3 * num_cells + 2):
            reduction = index in (num_cells, 2 * num_cells + 1)
            scale *= 2 if reduction else 1
            cell = SharedCell(blocks, reduction, widths[-1], widths[-2], filters * scale,
                              factorized=strides[-2] < strides[-1])
            cells.append(cell)
            widths.append(cell.out_channels)
            strides.append(strides[-1] * (2 if reduction else 1))
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(widths[-1], num_classes)
        nn.init.uniform_(self.classifier.weight, -1 / math.sqrt(widths[-1]), 1 / math.sqrt(widths[-1]))

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        if len(genotype.normal.blocks) != self.blocks:
            raise ValueError(f"genotype: {len(genotype.normal.blocks)} blocks, the supernet has {self.blocks}")
        prev = cur = batch_norm(F.conv2d(x, self.stem, padding=1))
        for cell in self.cells:
            prev, cur = cur, cell(cur, prev, getattr(genotype, CELL_TYPES[int(cell.reduction)]))
        return self.classifier(F.adaptive_avg_pool2d(F.relu(cur), 1).flatten(1))
