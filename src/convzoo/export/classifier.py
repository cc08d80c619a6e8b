"""What a classifier's export takes: its example input, which axes may vary, and its sidecar fields.

A classifier exports as it is: ``images`` Tensor[N, C, *spatial] (normalized by the caller) -> ``logits``
Tensor[N, num_classes] (the main head; auxiliary heads run only in training). The batch axis is always free; the
spatial axes are free unless the model was built for one input size (``spec:`` strings with ``F``, VoxNet: their
fully connected layer is sized for it), or ``dynamic_size=False``.
"""

from __future__ import annotations

import torch
from torch import nn

SPATIAL_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def fixed_size(model: nn.Module) -> bool:
    """True when the model only takes its ``default_input_size`` (a flatten sized for it)."""
    from convzoo.models.spec import SpecNet
    from convzoo.models.voxnet import VoxNet

    return isinstance(model, (SpecNet, VoxNet))


def example_input(model: nn.Module, batch: int = 2, input_size: tuple[int, ...] | None = None) -> torch.Tensor:
    """A random Tensor[batch, C, *spatial] at ``input_size`` ((C, *spatial)) or the model's ``default_input_size``."""
    size = tuple(input_size or getattr(model, "default_input_size", (3, 224, 224)))
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch, *size), generator=generator)


def axis_names(example: torch.Tensor) -> list[str | None]:
    """The name of every axis of a classifier input that may be dynamic (None: the channels)."""
    return ["batch", None, *SPATIAL_NAMES[example.dim() - 2]]


def dynamic_axes(model: nn.Module, example: torch.Tensor, dynamic_batch: bool, dynamic_size: bool
                 ) -> dict[int, str]:
    """Axis index -> name of the axes to export as dynamic."""
    names = axis_names(example)
    axes = {0: names[0]} if dynamic_batch else {}
    if dynamic_size and not fixed_size(model):
        axes.update({index: names[index] for index in range(2, example.dim())})
    return axes


def output_spec(model: nn.Module, example: torch.Tensor, dynamic_batch: bool) -> list[dict]:
    from convzoo.export.contract import tensor_spec

    with torch.no_grad():
        logits = model(example)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    return [tensor_spec("logits", ["batch" if dynamic_batch else int(logits.shape[0]), int(logits.shape[1])])]
