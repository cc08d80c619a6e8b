"""Per-layer summary: the papers' tables (type, patch size/stride, output size, params, ops) for any model.

Counting convention: MACs are the multiply-accumulates of convolutions (also transposed) and linear
layers for ONE input; FLOPs = 2 x MACs. Papers that say "FLOPs" for ResNet/ResNeXt mean multiply-adds (= MACs).
Parameters are the ``nn.Parameter`` tensors (BN scale and shift included, running statistics excluded).
Totals are printed in the unit that fits their size (k, M or G), so a small network does not read "0.000 GMACs".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T_TYPES = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass
class SummaryRow:
    """One module: ``output_shape`` without the batch axis; ``macs`` for one input."""

    name: str
    kind: str
    kernel: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass
class Summary:
    """The rows and totals. ``not_run``: the outermost modules with parameters that did not run for this input,
    with their parameter counts (``aux_heads``: those of them that are the model's auxiliary classifiers, which run
    only in training mode); their parameters are in ``total_params``, they have no MACs, and the printed table
    marks their rows with ``*`` and explains them in a footnote."""

    rows: list[SummaryRow] = field(default_factory=list)
    total_params: int = 0
    total_macs: int = 0
    input_size: tuple[int, ...] = ()
    not_run: dict[str, int] = field(default_factory=dict)
    aux_heads: list[str] = field(default_factory=list)

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    def __str__(self) -> str:
        header = ("layer", "type", "patch/stride", "output size", "params", "ops (MACs)")
        lines = [header]
        for r in self.rows:
            name = r.name + (" *" if any(r.name == n or r.name.startswith(n + ".") for n in self.not_run) else "")
            patch = "" if r.kernel is None else "x".join(map(str, r.kernel)) + "/" + "x".join(map(str, r.stride or ()))
            shape = "" if r.output_shape is None else "x".join(map(str, r.output_shape))
            lines.append((name, r.kind, patch, shape, _human(r.params), _human(r.macs)))
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        text = ["  ".join(str(c).ljust(w) if i < 4 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                for line in lines]
        text.insert(1, "-" * len(text[0]))
        text.append("-" * len(text[0]))
        text.append(f"input {'x'.join(map(str, self.input_size))}: {self.total_params:,} parameters, "
                    f"{scaled(self.total_macs, 'MACs')} (multiply-adds of conv and linear layers), "
                    f"{scaled(self.total_flops, 'FLOPs')} (= 2 x MACs)")
        return "\n".join(text + self._footnotes())

    def _footnotes(self) -> list[str]:
        notes = []
        for names, why in ((self.aux_heads, "auxiliary classifiers, which run only in training mode (the summary "
                                            "runs eval mode)"),
                           ([n for n in self.not_run if n not in self.aux_heads], "did not run for this input")):
            if names:
                params = sum(self.not_run[n] for n in names)
                notes.append(f"* {', '.join(names)}: {why}: 0 MACs; their {_human(params)} parameters are counted")
        return notes


def scaled(count: int, unit: str) -> str:
    """``count`` with 3 decimals in the SI prefix that fits its size: 1_814_000_000 -> "1.814 GMACs", 52_000 -> "52.000
    kMACs", 12 -> "12 MACs"."""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.3f} {prefix}{unit}"
    return f"{count} {unit}"


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def layer_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """MACs of one conv/linear layer for one sample, from its ``inputs`` and ``output`` (Tensor[1, ...])."""
    if isinstance(module, _CONV_TYPES):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return output[0].numel() * per_output
    if isinstance(module, _CONV_T_TYPES):
        # every input position scatters kernel x (out / groups) products: count from the input side
        return inputs[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def _first_tensor(output) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _kernel_stride(module: nn.Module) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    kernel = getattr(module, "kernel_size", None)
    stride = getattr(module, "stride", None)
    if kernel is None:
        return None, None
    kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,)
    stride = tuple(stride) if isinstance(stride, (tuple, list)) else (stride if stride is not None else kernel[0],)
    return kernel, stride


@torch.no_grad()
def summary(model: nn.Module, input_size: tuple[int, ...] | None = None, depth: int | None = None,
            device: str | torch.device = "cpu") -> Summary:
    """Run ``model`` once (eval mode, batch 1) on zeros of ``(C, *spatial)`` = ``input_size`` and tabulate it
    (zeros of the model's ``input_dtype``, float32 unless it says otherwise: token indices for a text model).

    ``input_size`` defaults to the model's ``default_input_size``. With ``depth=None`` each row is a leaf module;
    with ``depth=d`` rows are the modules ``d`` levels deep (e.g. ``depth=1``: the stages or inception modules),
    each with the parameters and MACs of everything inside it. Parameters of modules that did not run (e.g.
    auxiliary heads in eval mode) are counted in ``total_params`` but have no MACs; ``not_run`` names them and
    the printed table explains them in a footnote.
    """
    if input_size is None:
        input_size = tuple(model.default_input_size)
    input_size = tuple(int(s) for s in input_size)
    leaf_macs: dict[str, int] = {}
    outputs: dict[str, tuple[int, ...]] = {}
    handles = []

    def hook(name: str):
        def fn(module: nn.Module, inputs, output) -> None:
            tensor = _first_tensor(output)
            if tensor is None:
                return
            outputs[name] = tuple(tensor.shape[1:])
            first_input = _first_tensor(inputs)
            macs = layer_macs(module, first_input, tensor) if first_input is not None else 0
            leaf_macs[name] = leaf_macs.get(name, 0) + macs
        return fn

    named = dict(model.named_modules())
    for name, module in named.items():
        handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros((1, *input_size), device=device, dtype=getattr(model, "input_dtype", torch.float32)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    leaves = [n for n, m in named.items() if not any(True for _ in m.children())]  # [""]: a bare layer
    result = Summary(input_size=input_size)
    # a ModuleList/ModuleDict is never called itself: it ran when its children did
    ran = set(outputs) | {n for n, m in named.items() if isinstance(m, (nn.ModuleList, nn.ModuleDict))
                          and any(f"{n}.{child}" in outputs for child, _ in m.named_children())}
    idle = [n for n, m in named.items() if n not in ran and any(True for _ in m.parameters())]
    result.not_run = {n: count_params(named[n]) for n in idle  # the outermost ones only
                      if not any(n.startswith(other + ".") for other in idle)}
    result.aux_heads = [n for n in result.not_run if n in getattr(model, "aux_heads", ())]
    result.total_params = sum(p.numel() for p in model.parameters())
    result.total_macs = sum(leaf_macs.get(n, 0) for n in leaves)
    if depth is None:
        selected = leaves
    else:
        selected = [n for n in named if n in leaves or (n and n.count(".") == depth - 1)]
        selected = [n for n in selected if not n or n.count(".") <= depth - 1]
    for name in selected:
        module = named[name]
        inside = [n for n in leaves if n == name or n.startswith(name + ".")]
        kernel, stride = _kernel_stride(module)
        result.rows.append(SummaryRow(
            name=name or type(module).__name__, kind=type(module).__name__, kernel=kernel, stride=stride,
            output_shape=outputs.get(name),
            params=sum(p.numel() for p in module.parameters()),
            macs=sum(leaf_macs.get(n, 0) for n in inside),
        ))
    return result


def count_params(model: nn.Module) -> int:
    """The number of parameters (trainable tensors; BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
