"""Winograd convolution for CPU inference: 3x3, stride 1 convolutions in 2.25x (F(2x2, 3x3)) or 4x (F(4x4, 3x3))
fewer multiplications, in plain torch operations.

A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): the output is cut into
``m x m`` tiles; each tile's ``(m + 2) x (m + 2)`` input patch ``d`` and the filter ``g`` are transformed
(``V = B^T d B``, ``U = G g G^T``), multiplied elementwise, and transformed back (``Y = A^T (U * V) A``). Summed over
the input channels, the elementwise products of all tiles are ``alpha^2 = (m + 2)^2`` matrix products
``[tiles, C] @ [C, K]``: the work of the convolution becomes ``alpha^2 / (9 m^2)`` of a direct one's (0.44 for
m = 2, 0.25 for m = 4), plus the transforms, which are additions over the tensors (memory-bound). Where the
channels are many the products dominate and this beats oneDNN's direct convolution on a CPU (docs/deployment.md
has the measured layers); where they are few (64) the transforms cost as much as they save.

Numerics: ``U`` is computed in float64 once, the rest in float32. The outputs differ from a direct convolution by
rounding: measured about 5e-7 (m = 2) and 1e-5 (m = 4) of the output's largest magnitude on VGG-16's layers,
against 1e-6 to 4e-6 for torch's own float32 convolution (both against float64). F(6x6, 3x3) and larger lose
more digits and are not offered.

Layouts (``x`` channels_last, so ``[N, H, W, C]`` in memory): the padded input ``[N, m th + 2, m tw + 2, C]``;
``T1 [alpha, N, th, Wp, C]`` after the transform down the rows (strided row views, one op per row of the tile);
``V [alpha^2, N th tw, C]`` after the one across the columns; ``M = V @ U`` ``[alpha^2, N th tw, K]``; the output
``[N, m th, m tw, K]``, written by the last transform through a strided view. Large layers run in bands of tile
rows (about :data:`BAND_BYTES` of ``V`` and ``M``) that stay in cache. Scratch tensors are kept per thread and
reused across calls and layers (a fresh output for every product halved its speed).
"""

from __future__ import annotations

import threading

import torch
from torch import nn

BAND_BYTES = 4 << 20  # V and M bytes per band of tile rows, unless U is larger (each band reads U again)

# G (Lavin and Gray's filter transform) and the bias slot: bias added to M[slot] reaches every output pixel once
# (A^T's second column is all ones, the point 0 of the interpolation).
_G = {2: [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
      4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
          [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]}
TILES = tuple(_G)


def _input_f2(d, o) -> None:
    """``o = B^T d`` along one axis, F(2, 3): B^T = [[1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]]."""
    torch.sub(d[0], d[2], out=o[0])
    torch.add(d[1], d[2], out=o[1])
    torch.sub(d[2], d[1], out=o[2])
    torch.sub(d[1], d[3], out=o[3])


def _output_f2(x, o) -> None:
    """``o = A^T x`` along one axis, F(2, 3): A^T = [[1,1,1,0], [0,1,-1,-1]]."""
    torch.add(x[0], x[1], out=o[0]).add_(x[2])
    torch.sub(x[1], x[2], out=o[1]).sub_(x[3])


def _input_f4(d, o) -> None:
    """``o = B^T d``, F(4, 3): B^T = [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0], [0,-2,-1,2,1,0],
    [0,2,-1,-2,1,0], [0,4,0,-5,0,1]], with the shared sums (d4 - 4 d2) +- (d3 - 4 d1), (d4 - d2) +- 2 (d3 - d1)."""
    torch.add(d[4], d[2], alpha=-5.0, out=o[0]).add_(d[0], alpha=4.0)
    torch.add(d[5], d[3], alpha=-5.0, out=o[5]).add_(d[1], alpha=4.0)
    p, q = torch.add(d[4], d[2], alpha=-4.0), torch.add(d[3], d[1], alpha=-4.0)
    torch.add(p, q, out=o[1])
    torch.sub(p, q, out=o[2])
    torch.sub(d[4], d[2], out=p)
    torch.sub(d[3], d[1], out=q)
    torch.add(p, q, alpha=2.0, out=o[3])
    torch.add(p, q, alpha=-2.0, out=o[4])


def _output_f4(x, o) -> None:
    """``o = A^T x``, F(4, 3): A^T = [[1,1,1,1,1,0], [0,1,-1,2,-2,0], [0,1,1,4,4,0], [0,1,-1,8,-8,1]]."""
    a, b = torch.add(x[1], x[2]), torch.sub(x[1], x[2])
    c, e = torch.add(x[3], x[4]), torch.sub(x[3], x[4])
    torch.add(a, c, out=o[0]).add_(x[0])
    torch.add(b, e, alpha=2.0, out=o[1])
    torch.add(a, c, alpha=4.0, out=o[2])
    torch.add(b, e, alpha=8.0, out=o[3]).add_(x[5])


_TRANSFORMS = {2: (_input_f2, _output_f2), 4: (_input_f4, _output_f4)}


def transform_weight(weight: torch.Tensor, m: int) -> torch.Tensor:
    """``U = G g G^T`` of a ``[K, C, 3, 3]`` weight, as float32 ``[alpha^2, C, K]`` (computed in float64)."""
    g = torch.tensor(_G[m], dtype=torch.float64)
    u = torch.einsum("ia,kcab,jb->ijck", g, weight.detach().to(torch.float64), g)
    return u.reshape(len(g) ** 2, weight.shape[1], weight.shape[0]).to(torch.float32).contiguous()


_scratch = threading.local()


def _buffer(role: str, shape: tuple) -> torch.Tensor:
    """A float32 scratch tensor of ``shape`` for ``role``, this thread's, grown as needed and reused."""
    store = _scratch.__dict__.setdefault("buffers", {})
    count = 1
    for size in shape:
        count *= size
    flat = store.get(role)
    if flat is None or flat.numel() < count:
        with torch.inference_mode(False):  # a normal tensor: usable both inside and outside inference mode
            flat = store[role] = torch.empty(count, dtype=torch.float32, device="cpu")
    return flat[:count].view(shape)


def release_scratch() -> None:
    """Free this thread's scratch tensors (they are rebuilt on the next call)."""
    _scratch.__dict__.pop("buffers", None)


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, m: int,
                     band_bytes: int | None = None) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1)`` for ``x`` float32 ``[N, C, H, W]`` (any layout; channels_last avoids
    a copy) and ``u = transform_weight(weight, m)``; returns ``[N, K, H, W]`` channels_last."""
    forward, backward = _TRANSFORMS[m]
    alpha = m + 2
    n, c, h, w = x.shape
    k = u.shape[2]
    th, tw = -(-h // m), -(-w // m)
    hp, wp = m * th + 2, m * tw + 2
    padded = _buffer("pad", (n, hp, wp, c))
    for border in (padded[:, 0], padded[:, h + 1:], padded[:, :, 0], padded[:, :, w + 1:]):
        border.zero_()
    padded[:, 1:h + 1, 1:w + 1].copy_(x.permute(0, 2, 3, 1))
    out = torch.empty((n, m * th, m * tw, k), dtype=torch.float32, device="cpu")
    if band_bytes is None:
        band_bytes = max(BAND_BYTES, 2 * u.numel() * 4)
    rows = max(1, band_bytes // (alpha * alpha * tw * (c + k) * 4))  # tile rows per band
    if rows >= th:  # whole images per band
        step = max(1, rows // th)
        bands = [(i, min(n, i + step), 0, th) for i in range(0, n, step)]
    else:
        bands = [(i, i + 1, t, min(th, t + rows)) for i in range(n) for t in range(0, th, rows)]
    for i0, i1, t0, t1 in bands:
        nb, tb = i1 - i0, t1 - t0
        block = padded[i0:i1, m * t0:m * t1 + 2]
        rows_t = _buffer("T1", (alpha, nb, tb, wp, c))
        forward([block[:, a:a + m * tb:m] for a in range(alpha)], list(rows_t))
        v = _buffer("V", (alpha * alpha, nb * tb * tw, c))
        v6 = v.view(alpha, alpha, nb, tb, tw, c)
        forward([rows_t[:, :, :, b:b + m * tw:m] for b in range(alpha)], [v6[:, j] for j in range(alpha)])
        product = torch.bmm(v, u, out=_buffer("M", (alpha * alpha, nb * tb * tw, k)))
        if bias is not None:
            product[alpha + 1].add_(bias)
        p6 = product.view(alpha, alpha, nb, tb, tw, k)
        half = _buffer("S", (m, alpha, nb, tb, tw, k))
        backward(list(p6), list(half))
        target = out[i0:i1, m * t0:m * t1].view(nb, tb, m, tw, m, k).permute(2, 4, 0, 1, 3, 5)
        backward([half[:, b] for b in range(alpha)], [target[:, j] for j in range(m)])
    if m * th != h or m * tw != w:
        out = out[:, :h, :w].contiguous()
    return out.permute(0, 3, 1, 2)


def planned(plan: dict, x: torch.Tensor) -> int:
    """The choice ``plan`` (``(N, H, W)`` -> a choice) makes for input ``x``: its size's, else the nearest measured
    size's (by ``N * H * W``), else 0."""
    n, _, h, w = x.shape
    if (n, h, w) in plan:
        return plan[n, h, w]
    if not plan:
        return 0
    return plan[min(plan, key=lambda key: abs(key[0] * key[1] * key[2] - n * h * w))]


def needs_autograd(conv: nn.Module, x: torch.Tensor) -> bool:
    """Whether a call of ``conv`` on ``x`` must be differentiable: the tuned kernels write into scratch tensors
    (``out=``), so such a call goes to the convolution itself."""
    bias = conv.bias
    return torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad
                                        or bias is not None and bias.requires_grad)


def eligible(conv: nn.Module) -> bool:
    """A float32 2D convolution this module can replace: 3x3, stride 1, padding 1, dilation 1, one group."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and conv.weight.dtype == torch.float32 and not conv.weight.is_cuda)


class WinogradConv2d(nn.Module):
    """A 3x3 stride-1 ``nn.Conv2d`` (see :func:`eligible`) for inference, run by Winograd's algorithm or by the
    convolution itself, whichever was measured fastest for the input's size.

    ``plan`` maps ``(N, H, W)`` to the tile size ``m`` (2 or 4) or 0 (the direct convolution); an input of a size
    not in it takes the plan of the nearest measured size (by ``N * H * W``), or the direct convolution when there
    is none. :func:`convzoo.export.kernels.tune_kernels` measures the plans.
    """

    def __init__(self, conv: nn.Module, plan: dict | None = None) -> None:
        super().__init__()
        if not eligible(conv):
            raise ValueError(f"WinogradConv2d: {conv} is not a float32 3x3 stride-1 padding-1 convolution")
        self.conv = conv
        self.plan = dict(plan or {})
        self._tiles = set(TILES) if plan is None else set(self.plan.values()) & set(TILES)
        for m in TILES:  # the transformed weights of the tile sizes in the plan (all of them while it is tuned)
            self.register_buffer(f"u{m}", None, persistent=False)
        self._transform()

    def _transform(self) -> None:
        """U of the planned tile sizes from the convolution's weight as it is now (again after it changes, e.g. by
        ``load_state_dict``: its version counter is checked on every call)."""
        for m in self._tiles:
            setattr(self, f"u{m}", transform_weight(self.conv.weight, m))
        self._version = self.conv.weight._version

    def choice(self, x: torch.Tensor) -> int:
        return planned(self.plan, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.choice(x) if x.dim() == 4 and x.dtype == torch.float32 and not x.is_cuda else 0
        if m == 0 or needs_autograd(self.conv, x):
            return self.conv(x)
        if self.conv.weight._version != self._version:
            self._transform()
        return winograd_conv3x3(x, getattr(self, f"u{m}"), self.conv.bias, m)
