"""Transfer to another number of input channels: adapt the weight of a model's first convolution.

An ImageNet checkpoint has a first convolution for 3 (RGB) input channels; a model for gray images (``in_chans=1``)
or for extra bands (depth, infrared: ``in_chans=4``) has another shape there and nowhere else. The adapted weight
keeps what the filters compute, as timm's pretrained loading does:

- to 1 channel: the sum over the file's channels, so a gray image gives exactly the responses that the original
  network gives to that image copied into every channel (``conv(x, sum_c w_c) = sum_c conv(x, w_c)``);
- to C channels, C > 1: the file's channels repeated cyclically (R, G, B, R, ...) and scaled by ``I / C`` (I the
  file's channels), so an input whose channels repeat the original image in the same cycle (C a multiple of I)
  gives exactly the original responses, and otherwise the summed weight keeps the activations' scale
  (Carreira & Zisserman 2017, Sec. 2.4, inflate filters the same way over time: repeat, then divide by the count).

Every model family names the convolution that takes the input in ``first_conv`` (``models/base.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """The weight Tensor[O, I, *kernel] of a convolution for I input channels, adapted to ``in_chans``.

    Returns Tensor[O, in_chans, *kernel] of the same dtype: ``weight.sum(1, keepdim=True)`` for one channel, else
    channel ``c`` is ``weight[:, c % I] * I / in_chans``. The input is returned unchanged when I == ``in_chans``.
    """
    if in_chans < 1:
        raise ValueError(f"in_chans must be a positive integer, got {in_chans}")
    source = weight.shape[1]
    if in_chans == source:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    cycle = torch.arange(in_chans, device=weight.device) % source  # R, G, B, R, G, ...
    return weight[:, cycle] * (source / in_chans)


def adapt_first_conv(model: nn.Module, state: Mapping[str, torch.Tensor]
                     ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """``state`` with the weight of ``model.first_conv`` adapted to the model's input channels where it differs.

    Only the input-channel axis may differ (same output channels and kernel); the bias does not depend on it.
    Returns (state, adapted keys, notes): one note per adapted key (``conv1.weight adapted from 3 to 1 input
    channels (...)``), or one saying why not when more than that differs (a depthwise stem). ``state`` is returned
    unchanged (and no note) when the model names no ``first_conv`` or the shapes agree.
    """
    state = dict(state)
    name = getattr(model, "first_conv", None)
    key = f"{name}.weight"
    if not name or key not in state:
        return state, [], []
    layer = model.get_submodule(name)
    old, new = tuple(state[key].shape), tuple(layer.weight.shape)
    if old == new:
        return state, [], []
    if layer.groups != 1 or len(old) != len(new) or old[0] != new[0] or old[2:] != new[2:]:
        return state, [], [f"{key} cannot be adapted to {layer.in_channels} input channels: the file's weight "
                           f"{list(old)} and the model's {list(new)} differ in more than the input channels "
                           f"(e.g. a depthwise stem, whose width follows its input channels)"]
    state[key] = adapt_input_conv(state[key], new[1])
    how = f"summed over the file's {old[1]}" if new[1] == 1 else f"repeated cyclically, scaled by {old[1]}/{new[1]}"
    return state, [key], [f"{key} adapted from {old[1]} to {new[1]} input channels ({how})"]
