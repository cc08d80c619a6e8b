"""One ndim-generic factory for convolution and pooling (lecture: "Convolution Layer", "Pooling").

``conv(ndim, ...)`` returns a ``torch.nn.Conv{1,2,3}d`` whenever the padding can be expressed by PyTorch directly
(so state dicts keep the plain ``weight``/``bias`` names), and a subclass that pads first when TF-style strided
``same`` padding needs input-dependent, asymmetric padding. The same holds for ``max_pool`` and ``avg_pool``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convzoo.layers.padding import Padding, as_tuple, is_static_same, pad_same

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_DROPOUT = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}


def _check_ndim(ndim: int) -> None:
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")


class _SameConvMixin:
    """Pads the input as TensorFlow's ``same`` does (odd pixel at the end) before the convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size, self.stride, self.dilation))  # type: ignore[misc]


class _SameMaxPoolMixin:
    """Max pooling with TF ``same`` padding: padded positions are -inf and never win."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ndim = x.dim() - 2
        kernel, stride = as_tuple(self.kernel_size, ndim), as_tuple(self.stride, ndim)  # type: ignore[attr-defined]
        return super().forward(pad_same(x, kernel, stride, (1,) * ndim, value=float("-inf")))  # type: ignore[misc]


class _SameAvgPoolMixin:
    """Average pooling with TF ``same`` padding: padded positions are excluded from each average."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ndim = x.dim() - 2
        kernel, stride = as_tuple(self.kernel_size, ndim), as_tuple(self.stride, ndim)  # type: ignore[attr-defined]
        dilation = (1,) * ndim
        summed = super().forward(pad_same(x, kernel, stride, dilation))  # type: ignore[misc]
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        count = super().forward(pad_same(ones, kernel, stride, dilation))  # type: ignore[misc]
        return summed / count


_SAME_CONV = {n: type(f"Conv{n}dSame", (_SameConvMixin, c), {}) for n, c in _CONV.items()}
_SAME_MAX_POOL = {n: type(f"MaxPool{n}dSame", (_SameMaxPoolMixin, c), {}) for n, c in _MAX_POOL.items()}
_SAME_AVG_POOL = {n: type(f"AvgPool{n}dSame", (_SameAvgPoolMixin, c), {}) for n, c in _AVG_POOL.items()}


def _resolve_padding(padding: Padding, kernel: tuple[int, ...], stride: tuple[int, ...],
                     dilation: tuple[int, ...], ndim: int) -> tuple[int, ...] | None:
    """Explicit symmetric padding for PyTorch, or None when TF ``same`` needs the padding subclass."""
    if padding == "valid":
        return (0,) * ndim
    if padding == "same":
        if is_static_same(kernel, stride, dilation):
            return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        return None
    if isinstance(padding, str):
        raise ValueError(f"padding must be 'valid', 'same' or numbers, got {padding!r}")
    return as_tuple(padding, ndim, "padding")


def conv(ndim: int, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
         stride: int | Sequence[int] = 1, padding: Padding = "same", dilation: int | Sequence[int] = 1,
         groups: int = 1, bias: bool = True) -> nn.Module:
    """A ``ndim``-dimensional convolution; ``padding`` is "valid", "same" (TF semantics, any stride) or numbers.

    Input Tensor[N, in_channels, *spatial] -> Tensor[N, out_channels, *spatial_out].
    """
    _check_ndim(ndim)
    kernel, strides = as_tuple(kernel_size, ndim, "kernel_size"), as_tuple(stride, ndim, "stride")
    dilations = as_tuple(dilation, ndim, "dilation")
    pad = _resolve_padding(padding, kernel, strides, dilations, ndim)
    cls = _CONV[ndim] if pad is not None else _SAME_CONV[ndim]
    return cls(in_channels, out_channels, kernel, strides, padding=pad if pad is not None else 0,
               dilation=dilations, groups=groups, bias=bias)


def conv_transpose(ndim: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 2,
                   padding: int = 0, bias: bool = True) -> nn.Module:
    """A ``ndim``-dimensional transposed convolution ("deconvolution"), e.g. Mask R-CNN's 2x upsampling."""
    _check_ndim(ndim)
    return _CONV_T[ndim](in_channels, out_channels, kernel_size, stride, padding=padding, bias=bias)


def _pool(table: dict, same_table: dict, ndim: int, kernel_size, stride, padding: Padding, **kwargs) -> nn.Module:
    _check_ndim(ndim)
    kernel = as_tuple(kernel_size, ndim, "kernel_size")
    strides = as_tuple(kernel_size if stride is None else stride, ndim, "stride")
    pad = _resolve_padding(padding, kernel, strides, (1,) * ndim, ndim)
    if pad is None:
        return same_table[ndim](kernel, strides, **kwargs)
    return table[ndim](kernel, strides, padding=pad, **kwargs)


def max_pool(ndim: int, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
             padding: Padding = "valid", ceil_mode: bool = False) -> nn.Module:
    """Max pooling; ``stride`` defaults to ``kernel_size``; ``ceil_mode`` as Caffe (GoogLeNet) rounds up."""
    return _pool(_MAX_POOL, _SAME_MAX_POOL, ndim, kernel_size, stride, padding, ceil_mode=ceil_mode)


def avg_pool(ndim: int, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
             padding: Padding = "valid", ceil_mode: bool = False, count_include_pad: bool = False) -> nn.Module:
    """Average pooling; padding is not counted unless ``count_include_pad`` (TF ``same`` never counts it)."""
    return _pool(_AVG_POOL, _SAME_AVG_POOL, ndim, kernel_size, stride, padding, ceil_mode=ceil_mode,
                 count_include_pad=count_include_pad)


def global_avg_pool(ndim: int) -> nn.Module:
    """Average over all spatial positions: Tensor[N, C, *spatial] -> Tensor[N, C, 1, ...]."""
    _check_ndim(ndim)
    return _ADAPTIVE_AVG[ndim](1)


def channel_dropout(ndim: int, p: float) -> nn.Module:
    """Dropout of whole channels (feature maps) in ``ndim`` dimensions."""
    _check_ndim(ndim)
    return _DROPOUT[ndim](p)
