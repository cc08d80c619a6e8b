"""NASNet's search space and its cells as data (Zoph et al. 2018, "Learning Transferable Architectures for Scalable
Image Recognition"); no torch here.

Section 3 and Figure 3 of the paper: a cell has B blocks; each block picks two hidden states, applies one
operation to each and combines the two results by element-wise addition or concatenation along channels. Hidden
state 0 is h_i (the cell's current input after a ReLU-1x1-BN), 1 is h_{i-1} (the previous input, brought to the
same shape), 2 + k is the output of block k, so block k chooses among 2 + k states. The cell's output concatenates
the states listed in ``concat`` (in a searched cell: the block outputs no block reads, "all of the unused hidden
states"). The NASNet-A tables below are those of the released TF-slim ``nasnet_utils.py`` (``operations``,
``hiddenstate_indices``, ``used_hiddenstates``) written as (operation, state) pairs.

In a reduction cell the operations applied to h_i or h_{i-1} have stride 2, those applied to block outputs
(already reduced) stride 1.

A genotype in JSON (``Genotype.to_json``), each block ``[[op, state], [op, state]]`` with ``"concat"`` appended
when the block concatenates instead of adding::

    {"normal": {"blocks": [[["sep5", 0], ["sep3", 1]], ...], "concat": [1, 2, 3, 4, 5, 6]},
     "reduction": {"blocks": [...], "concat": [3, 4, 5, 6]}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The operations of the paper's search space (Section 3, the list after Figure 3), by name:
OPERATIONS: dict[str, str] = {
    "none": "identity",
    "conv1x3_3x1": "1x3 then 3x1 convolution",
    "conv1x7_7x1": "1x7 then 7x1 convolution",
    "dil3": "3x3 dilated convolution (dilation 2)",
    "avg3": "3x3 average pooling",
    "avg5": "5x5 average pooling",
    "avg7": "7x7 average pooling",
    "max3": "3x3 max pooling",
    "max5": "5x5 max pooling",
    "max7": "7x7 max pooling",
    "conv1": "1x1 convolution",
    "conv3": "3x3 convolution",
    "sep3": "3x3 depthwise-separable convolution",
    "sep5": "5x5 depthwise-separable convolution",
    "sep7": "7x7 depthwise-separable convolution",
}
OP_NAMES: tuple[str, ...] = tuple(OPERATIONS)
COMBINES: tuple[str, ...] = ("add", "concat")  # the paper's two combination methods
CELL_TYPES: tuple[str, ...] = ("normal", "reduction")
DECISIONS_PER_BLOCK = 5  # two hidden states, two operations, one combination: the controller's 5B softmaxes

# (operation, input state): "sep{k}" = ReLU-sepconv kxk-BN twice; "avg3"/"max3" = 3x3 pooling; "none" = identity
Op = tuple[str, int]


@dataclass(frozen=True)
class CellGenotype:
    """One cell: B (left, right) blocks, the states concatenated into the output, and each block's combination
    (``combine[k]`` "add" or "concat"; empty: all add)."""

    blocks: tuple[tuple[Op, Op], ...]
    concat: tuple[int, ...]
    combine: tuple[str, ...] = ()

    def combination(self, k: int) -> str:
        return self.combine[k] if self.combine else "add"

    def to_data(self) -> dict[str, Any]:
        blocks = [[list(left), list(right)] + (["concat"] if self.combination(k) == "concat" else [])
                  for k, (left, right) in enumerate(self.blocks)]
        return {"blocks": blocks, "concat": list(self.concat)}

    @classmethod
    def from_data(cls, data: Any, where: str = "cell") -> CellGenotype:
        """The cell of ``data`` (``to_data``'s form), validated; a ValueError names the field (where.blocks[2][0])."""
        if not isinstance(data, dict) or set(data) != {"blocks", "concat"}:
            raise ValueError(f"{where}: expected an object with keys blocks and concat, got {_short(data)}")
        raw = data["blocks"]
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{where}.blocks: expected a non-empty list of blocks, got {_short(raw)}")
        blocks, combine = [], []
        for k, block in enumerate(raw):
            here = f"{where}.blocks[{k}]"
            if not isinstance(block, list) or len(block) not in (2, 3):
                raise ValueError(f"{here}: expected [[op, state], [op, state]] (optionally + \"concat\"), "
                                 f"got {_short(block)}")
            mode = block[2] if len(block) == 3 else "add"
            if mode not in COMBINES:
                raise ValueError(f"{here}[2]: the combination must be add or concat, got {_short(mode)}")
            pair = []
            for side in (0, 1):
                item = block[side]
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise ValueError(f"{here}[{side}]: expected [operation, state], got {_short(item)}")
                op, state = item
                if op not in OPERATIONS:
                    raise ValueError(f"{here}[{side}]: unknown operation {_short(op)}; expected one of "
                                     f"{', '.join(OP_NAMES)}")
                if isinstance(state, bool) or not isinstance(state, int) or not 0 <= state < 2 + k:
                    raise ValueError(f"{here}[{side}]: state {_short(state)} out of range; block {k} reads "
                                     f"states 0..{1 + k} (0 h_i, 1 h_i-1, 2+j block j)")
                pair.append((op, state))
            blocks.append(tuple(pair))
            combine.append(mode)
        concat = data["concat"]
        if (not isinstance(concat, list) or not concat or len(set(concat)) != len(concat)
                or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2 + len(blocks) for s in concat)):
            raise ValueError(f"{where}.concat: expected distinct states in 0..{1 + len(blocks)}, got {_short(concat)}")
        return cls(tuple(blocks), tuple(concat), tuple(combine) if "concat" in combine else ())


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell with the same number of blocks; ``to_json``/``from_json`` is its file form."""

    normal: CellGenotype
    reduction: CellGenotype

    def __post_init__(self) -> None:
        if len(self.normal.blocks) != len(self.reduction.blocks):
            raise ValueError(f"genotype: the normal cell has {len(self.normal.blocks)} blocks, the reduction cell "
                             f"{len(self.reduction.blocks)}; expected the same B")

    def to_data(self) -> dict[str, Any]:
        return {"normal": self.normal.to_data(), "reduction": self.reduction.to_data()}

    def to_json(self) -> str:
        """One line per block, readable and stable (``from_json(to_json())`` is the same genotype)."""
        lines = ["{"]
        for i, name in enumerate(CELL_TYPES):
            cell = getattr(self, name).to_data()
            lines.append(f'  "{name}": {{"blocks": [')
            lines.append(",\n".join(f"    {json.dumps(b)}" for b in cell["blocks"]) + "],")
            lines.append(f'    "concat": {json.dumps(cell["concat"])}}}' + ("," if i == 0 else ""))
        return "\n".join(lines) + "\n}\n"

    @classmethod
    def from_data(cls, data: Any, where: str = "genotype") -> Genotype:
        if not isinstance(data, dict) or set(data) != set(CELL_TYPES):
            raise ValueError(f"{where}: expected an object with keys normal and reduction, got {_short(data)}")
        return cls(*(CellGenotype.from_data(data[name], f"{where} {name}") for name in CELL_TYPES))

    @classmethod
    def from_json(cls, text: str, where: str = "genotype") -> Genotype:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error})") from None
        return cls.from_data(data, where)


def load_genotype(value: Genotype | dict | str | Path) -> Genotype:
    """A Genotype from itself, its ``to_data`` dict, a JSON string, a JSON file path, or ``"nasnet_a"``."""
    if isinstance(value, Genotype):
        return value
    if isinstance(value, dict):
        return Genotype.from_data(value)
    if isinstance(value, str) and value == "nasnet_a":
        return NASNET_A
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return Genotype.from_json(value)
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"--genotype {value}: no such file (expected a genotype JSON file, a JSON string "
                                    "or nasnet_a)")
        return Genotype.from_json(path.read_text(), where=f"--genotype {value}")
    raise ValueError(f"genotype: expected a Genotype, a dict, JSON text or a file path, got {type(value).__name__}")


def unused_states(blocks: tuple[tuple[Op, Op], ...]) -> tuple[int, ...]:
    """The block outputs (states 2 + k) that no block reads: what a searched cell concatenates (the paper)."""
    read = {state for block in blocks for _, state in block}
    return tuple(2 + k for k in range(len(blocks)) if 2 + k not in read)


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


NASNET_A_NORMAL = CellGenotype(
    blocks=(
        (("sep5", 0), ("sep3", 1)),
        (("sep5", 1), ("sep3", 1)),
        (("avg3", 0), ("none", 1)),
        (("avg3", 1), ("avg3", 1)),
        (("sep3", 0), ("none", 0)),
    ),
    concat=(1, 2, 3, 4, 5, 6),  # h_{i-1} and every block: output channels 6 x filters
)

NASNET_A_REDUCTION = CellGenotype(
    blocks=(
        (("sep5", 0), ("sep7", 1)),
        (("max3", 0), ("sep7", 1)),
        (("avg3", 0), ("sep5", 1)),
        (("none", 3), ("avg3", 2)),
        (("sep3", 2), ("max3", 0)),
    ),
    concat=(3, 4, 5, 6),  # blocks 1-4 (block 0 feeds blocks 3 and 4): output channels 4 x filters
)

NASNET_A = Genotype(NASNET_A_NORMAL, NASNET_A_REDUCTION)
