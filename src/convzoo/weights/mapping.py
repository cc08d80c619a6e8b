"""Parameter names of other libraries' checkpoints -> convzoo's, per source and model family.

convzoo's VGG, ResNet (also Wide ResNet and ResNeXt) and Inception-v3 use torchvision's parameter names on purpose,
so their torchvision checkpoints need no renaming (``tests/test_weights.py`` checks the logits, not only the names).
timm names its ResNet family and Inception-v3 as torchvision does, and convzoo's NASNet-A uses the names of timm's
``nasnetalarge``. Families whose checkpoints differ register a conversion here, keyed by the source and the convzoo
model class name (so that this module imports no model module): timm's VGG.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

SOURCES = ("convzoo", "torchvision", "timm")

Renamer = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
_RENAMERS: dict[tuple[str, str], Renamer] = {}

# Checkpoints that share a model's name but not its architecture: the message says so instead of only listing keys.
INCOMPATIBLE = {
    ("torchvision", "GoogLeNet"): ("torchvision's googlenet is not the paper's (it adds BatchNorm and has 3x3 "
                                   "convolutions where the paper has 5x5), so its weights cannot fit convzoo's "
                                   "googlenet"),
}


def register_renamer(source: str, model_class: str) -> Callable[[Renamer], Renamer]:
    """Decorator: ``fn(state) -> state`` renames the keys of ``source`` checkpoints for ``model_class``."""
    def decorator(fn: Renamer) -> Renamer:
        _RENAMERS[(source, model_class)] = fn
        return fn
    return decorator


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r}; expected one of {', '.join(SOURCES)}")


def map_names(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """``state`` with its keys renamed from ``source``'s convention to ``model``'s (unchanged where they agree)."""
    check_source(source)
    renamer = _RENAMERS.get((source, type(model).__name__))
    return renamer(state) if renamer is not None else state


def rename_prefixes(state: dict[str, torch.Tensor], table: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Replace the first matching prefix of every key by its counterpart from ``table`` [(old, new), ...]."""
    out = {}
    for key, value in state.items():
        for old, new in table:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


@register_renamer("timm", "VGG")
def timm_vgg(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's VGG writes FC-4096, FC-4096 as convolutions (``pre_logits.fc1``: 7x7 on the 512x7x7 map, ``fc2``: 1x1)
    and the last layer as ``head.fc``; convzoo (as torchvision) has ``classifier.0/3/6`` linear layers.

    A 7x7 convolution over a 7x7 map is the linear layer on the flattened map: weight [4096, 512, 7, 7] ->
    [4096, 512 * 7 * 7], flattened in the same (channel, row, column) order as ``torch.flatten(x, 1)``.
    """
    state = rename_prefixes(state, [("pre_logits.fc1.", "classifier.0."), ("pre_logits.fc2.", "classifier.3."),
                                    ("head.fc.", "classifier.6.")])
    for key in ("classifier.0.weight", "classifier.3.weight"):
        if key in state and state[key].dim() > 2:
            state[key] = state[key].flatten(1)  # (out, in, *kernel) -> (out, in * prod(kernel))
    return state
