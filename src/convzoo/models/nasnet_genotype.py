"""The NASNet-A cells as data (Zoph et al. 2017, "Learning Transferable Architectures for Scalable Image Recognition").

Figure 4 of the paper: each cell has 5 blocks; a block picks two hidden states, applies one operation to each and
adds the results. Hidden state 0 is h_i (the cell's current input after a ReLU-1x1-BN), 1 is h_{i-1} (the
previous input, brought to the same shape), 2 + k is the output of block k. The cell's output concatenates the
states listed in ``concat`` along channels. These are the tables of the released TF-slim ``nasnet_utils.py``
(``operations``, ``hiddenstate_indices``, ``used_hiddenstates``) written as (operation, state) pairs.

In a reduction cell the operations applied to h_i or h_{i-1} have stride 2, those applied to block outputs
(already reduced) stride 1.
"""

from __future__ import annotations

from typing import NamedTuple

# (operation, input state): "sep{k}" = ReLU-sepconv kxk-BN twice; "avg3"/"max3" = 3x3 pooling; "none" = identity
Op = tuple[str, int]


class Genotype(NamedTuple):
    """One cell: five (left, right) blocks and the states concatenated into the output."""

    blocks: tuple[tuple[Op, Op], ...]
    concat: tuple[int, ...]


NASNET_A_NORMAL = Genotype(
    blocks=(
        (("sep5", 0), ("sep3", 1)),
        (("sep5", 1), ("sep3", 1)),
        (("avg3", 0), ("none", 1)),
        (("avg3", 1), ("avg3", 1)),
        (("sep3", 0), ("none", 0)),
    ),
    concat=(1, 2, 3, 4, 5, 6),  # h_{i-1} and every block: output channels 6 x filters
)

NASNET_A_REDUCTION = Genotype(
    blocks=(
        (("sep5", 0), ("sep7", 1)),
        (("max3", 0), ("sep7", 1)),
        (("avg3", 0), ("sep5", 1)),
        (("none", 3), ("avg3", 2)),
        (("sep3", 2), ("max3", 0)),
    ),
    concat=(3, 4, 5, 6),  # blocks 1-4 (block 0 feeds blocks 3 and 4): output channels 4 x filters
)
