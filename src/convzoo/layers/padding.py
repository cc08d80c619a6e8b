"""Padding arithmetic (lecture: "Convolution Layer", valid and same padding).

``valid``: no padding, output = floor((input - dilation * (kernel - 1) - 1) / stride) + 1.
``same`` as TensorFlow/Keras define it: output = ceil(input / stride); the total padding is
``max((output - 1) * stride + dilation * (kernel - 1) + 1 - input, 0)``, split with the odd pixel at the end
(bottom/right). PyTorch's own ``padding="same"`` refuses strides > 1, hence these helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

Padding = str | int | Sequence[int]


def as_tuple(value: int | Sequence[int], ndim: int, what: str = "value") -> tuple[int, ...]:
    """``3 -> (3, 3)`` for ndim 2; a sequence must already have ``ndim`` entries."""
    if isinstance(value, int):
        return (value,) * ndim
    value = tuple(int(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{what} {value} has {len(value)} entries, expected {ndim} for a {ndim}D layer")
    return value


def same_padding_1d(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis under TF ``same``: output = ceil(size / stride), odd pixel after.
    Integer arithmetic only, so that a symbolic ``size`` (torch.export with a dynamic size) stays symbolic: the
    padding of an exported graph follows its input size instead of being fixed to the traced example's. Under
    ``torch.jit.trace`` (``convzoo.optimize``'s frozen graph) ``size`` is a tensor and the padding a constant: that
    graph is for the example's image size."""
    output = (size + stride - 1) // stride
    total = (output - 1) * stride + dilation * (kernel - 1) + 1 - size
    if isinstance(total, torch.Tensor):  # torch.jit.trace records sizes as tensors: the traced size's padding
        total = max(int(total), 0)
    else:
        total = torch.sym_max(total, 0)
    return total // 2, total - total // 2


def is_static_same(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> bool:
    """True when TF ``same`` padding does not depend on the input size and is symmetric (stride 1, odd extent)."""
    return all(s == 1 and (d * (k - 1)) % 2 == 0 for k, s, d in zip(kernel, stride, dilation))


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
             value: float = 0.0) -> torch.Tensor:
    """Pad the spatial axes of ``x`` (Tensor[N, C, *spatial]) so that a following layer gives TF ``same`` output."""
    pads: list[int] = []
    # F.pad takes (last_before, last_after, second_last_before, ...): walk the spatial axes backwards.
    for size, k, s, d in reversed(list(zip(x.shape[2:], kernel, stride, dilation))):
        pads.extend(same_padding_1d(size, k, s, d))
    if all(isinstance(p, int) and p == 0 for p in pads):  # (a symbolic size is never tested: no guard)
        return x
    return F.pad(x, pads, value=value)


def output_size(size: int, kernel: int, stride: int, padding: Padding, dilation: int = 1) -> int:
    """The output length of one axis for ``padding`` = "valid", "same" or an explicit symmetric number."""
    if padding == "same":
        return math.ceil(size / stride)
    pad = 0 if padding == "valid" else int(padding)  # type: ignore[arg-type]
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
