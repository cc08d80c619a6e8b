"""Convolution kernels chosen by measurement for CPU inference: ``optimize(model, example, tune_kernels=True)``.

For the input sizes each convolution sees on the example, the candidates are timed and the fastest kept:

- a 3x3 stride-1 convolution (:func:`convzoo.export.winograd.eligible`): PyTorch's own, Winograd F(2x2, 3x3) and
  F(4x4, 3x3) (:class:`~convzoo.export.winograd.WinogradConv2d`);
- a 1x1 convolution (:func:`pointwise`): PyTorch's own and oneDNN's (:class:`OneDnnConv2d`). On one thread PyTorch
  runs 1x1 filters on its own GEMM-based kernel ("slow_conv2d") rather than oneDNN's, which measured 1.08-1.40x
  faster on five of six ResNet-50 / FPN shapes here and 0.92x on the sixth (docs/deployment.md): so it is measured.

A candidate replaces PyTorch's only when it takes less than :data:`MARGIN` of its time and its output is within
``1e-4`` of the largest output magnitude. The convolution's weights stay the module's (``module.conv``).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from convzoo.export.winograd import (
    TILES,
    WinogradConv2d,
    eligible,
    needs_autograd,
    planned,
    release_scratch,
    winograd_conv3x3,
)

# A candidate is kept only when it takes less than this fraction of PyTorch's time: a layer timed alone can gain
# less inside the model (Inception-v3 at batch 8 ran 6% slower with the eight layers a tuning without the margin
# gave F(4x4, 3x3)).
MARGIN = 0.9


def pointwise(conv: nn.Module) -> bool:
    """A float32 CPU 1x1 ``nn.Conv2d`` (any stride, no padding, one group) that oneDNN can run."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.padding == (0, 0)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.weight.dtype == torch.float32
            and not conv.weight.is_cuda and torch.backends.mkldnn.is_available())


class OneDnnConv2d(nn.Module):
    """A 1x1 ``nn.Conv2d`` (see :func:`pointwise`) for inference, run by oneDNN (``aten::mkldnn_convolution``) at
    the input sizes its ``plan`` (``(N, H, W)`` -> 1 or 0, the nearest measured size for others) says, else by
    the convolution itself."""

    def __init__(self, conv: nn.Module, plan: dict | None = None) -> None:
        super().__init__()
        if not pointwise(conv):
            raise ValueError(f"OneDnnConv2d: {conv} is not a float32 1x1 convolution without padding")
        self.conv = conv
        self.plan = dict(plan or {})
        self.register_buffer("weight_cl", None, persistent=False)
        self._version = -1  # the weight's version weight_cl was made from (remade when the weight changes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use = planned(self.plan, x) if x.dim() == 4 and x.dtype == torch.float32 and not x.is_cuda else 0
        if not use or needs_autograd(self.conv, x):
            return self.conv(x)
        bias = self.conv.bias
        if self.conv.weight._version != self._version:
            self.weight_cl = self.conv.weight.detach().contiguous(memory_format=torch.channels_last)
            self._version = self.conv.weight._version
        return torch.ops.aten.mkldnn_convolution(x.contiguous(memory_format=torch.channels_last), self.weight_cl,
                                                 None if bias is None else bias.detach(), [0, 0],
                                                 list(self.conv.stride), [1, 1], 1)


def _best_seconds(call, trials: int) -> float:
    call()  # warm-up: scratch tensors grow, oneDNN primitives are made
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _candidates(conv: nn.Module) -> tuple[nn.Module, dict]:
    """The replacement module (all candidates built) and ``{choice: function of x}`` besides PyTorch's (0)."""
    if pointwise(conv):
        module = OneDnnConv2d(conv, {(0, 0, 0): 1})  # one entry: every size takes oneDNN while it is timed
        return module, {1: module}
    module = WinogradConv2d(conv)
    return module, {m: (lambda x, m=m: winograd_conv3x3(x, getattr(module, f"u{m}"), conv.bias, m)) for m in TILES}


@torch.no_grad()
def tune_kernels(model: nn.Module, run, trials: int = 2, min_channels: int = 32) -> dict:
    """Replace the 3x3 stride-1 and 1x1 convolutions of ``model`` (in place) with at least ``min_channels`` input
    channels by :class:`~convzoo.export.winograd.WinogradConv2d` / :class:`OneDnnConv2d` modules whose plans are
    measured: ``run()`` (one forward pass) records the input sizes each convolution sees; at each, PyTorch's
    convolution and the candidates are timed (a warm-up, then the best of ``trials`` calls) and the fastest kept
    (see the module doc). Convolutions that keep PyTorch's kernel everywhere stay as they are. Returns ``{module
    name: plan}`` of the replaced ones (plan values: 0 PyTorch, 1 oneDNN, 2 and 4 Winograd's tile size)."""
    convs = {id(m): (name, m) for name, m in model.named_modules()
             if (eligible(m) or pointwise(m)) and m.in_channels >= min_channels}
    seen: dict = {}

    def record(module, inputs):
        x = inputs[0]
        if x.dim() != 4:
            return
        key = (x.shape[0], x.shape[2], x.shape[3])
        if key not in seen.setdefault(id(module), {}):
            seen[id(module)][key] = x.detach().clone(memory_format=torch.channels_last)

    handles = [m.register_forward_pre_hook(record) for _, m in convs.values()]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    plans = {}
    for key, inputs in seen.items():
        name, conv = convs[key]
        module, candidates = _candidates(conv)
        plan = {}
        for size, x in inputs.items():
            reference = conv(x)
            times = {0: _best_seconds(lambda: conv(x), trials)}  # noqa: B023 (called at once)
            for choice, function in candidates.items():
                if (function(x) - reference).abs().max() <= 1e-4 * reference.abs().max():
                    times[choice] = _best_seconds(lambda: function(x), trials)  # noqa: B023
            best = min(times, key=times.get)
            plan[size] = best if times[best] < MARGIN * times[0] else 0
        if any(plan.values()):
            plans[name] = plan
            kind = OneDnnConv2d if pointwise(conv) else WinogradConv2d
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, kind(conv, plan))
    release_scratch()
    return plans
