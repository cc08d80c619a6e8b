"""What every convzoo segmenter shares: the output contract, input checking and the head description.

Contract: ``forward(x)`` with x Tensor[N, in_chans, H, W] returns a dict ``{"out": Tensor[N, num_classes, H, W]}``
of per-pixel logits at the input resolution, plus ``"aux"`` (the same shape) when the model has an auxiliary head
enabled, in training and in eval mode alike (as torchvision's segmentation models). ``segmentation_loss`` reads
that dict. (U-Net with ``padding="valid"``, the paper's layout, is the one exception: its ``"out"`` covers the
centre of the input, see ``convzoo.models.segmentation.unet``.)
"""

from __future__ import annotations

import torch
from torch import nn


class Segmenter(nn.Module):
    """Base of the segmenters: subclasses set ``in_chans``, ``num_classes``, ``default_input_size`` ((C, H, W), used
    for the model table's MACs), ``first_conv`` (the convolution that takes the input, whose weight ``load_weights``
    adapts to ``in_chans``), ``classifier_name`` and ``head_names`` (the layers whose shape depends on the label set,
    kept fresh by ``load_weights(..., ignore_mismatched_head=True)``)."""

    in_chans: int = 3
    num_classes: int = 21
    default_input_size: tuple[int, int, int] = (3, 512, 512)
    first_conv: str | None = None
    classifier_name: str = ""
    head_names: tuple[str, ...] = ()

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the expected and the received shape when ``x`` is not [N, in_chans, H, W]."""
        expected = f"[N, {self.in_chans}, H, W]"
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} expects images of shape {expected}, got a "
                             f"{x.dim()}-dimensional tensor of shape {list(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"{type(self).__name__} expects {self.in_chans} input channels (shape {expected}), "
                             f"got {x.shape[1]} (input shape {list(x.shape)})")


def check_num_classes(num_classes: int, in_chans: int) -> None:
    """Validate at the door (``create_model`` checks these too; the classes can also be built directly)."""
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
