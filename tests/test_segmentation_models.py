"""Segmentation models and losses: counts against the papers and torchvision, torchvision's weights, output shapes,
the losses against hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.model_table import shape_only
from convzoo.models.segmentation import unet_output_size
from convzoo.summary import count_params


def _meta(name: str, **kwargs) -> nn.Module:
    """The model with its parameters on the meta device: shapes and counts, no memory, no initialization."""
    with shape_only():
        return convzoo.create_model(name, **kwargs)


def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


# ---------------------------------------------------------------------------------------------------- U-Net


def test_unet_has_the_papers_23_convolutions_and_widths():
    model = _meta("unet", in_chans=1, num_classes=2, padding="valid")
    convs = _convs(model)
    assert len(convs) == 23  # Section 2: 8 contracting + 2 bottom + 4 x (up-conv + 2) expansive + the 1x1
    assert sorted({c.out_channels for c in convs}) == [2, 64, 128, 256, 512, 1024]
    assert sum(isinstance(c, nn.ConvTranspose2d) and c.kernel_size == (2, 2) for c in convs) == 4
    # Per step (C_in -> C): 9 C_in C + C + 9 C^2 + C; up-conv 2C -> C: 4 (2C) C + C; head 64 K + K:
    # contracting 37,568 + 221,440 + 885,248 + 3,539,968; bottom 14,157,824; up-convs 2,097,664 + 524,544 + 131,200
    # + 32,832; expansive 7,078,912 + 1,769,984 + 442,624 + 110,720; head 130: 31,030,658 (the docstring's)
    assert count_params(model) == 31_030_658
    assert count_params(_meta("unet")) == 31_030_658 + 2 * 576  # RGB, 2 classes: the default
    assert count_params(_meta("unet", in_chans=1, num_classes=5)) == 31_030_658 + 3 * 65


def test_unet_valid_is_the_overlap_tile_layout():
    assert unet_output_size(572) == 388  # Figure 1
    with pytest.raises(ValueError, match="before pooling 1 has side 567"):
        unet_output_size(571)
    model = convzoo.create_model("unet", base_width=2, padding="valid").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 188, 204))["out"].shape == (1, 2, 4, 20)
    with pytest.raises(ValueError, match="cannot take inputs of side 190"):
        model(torch.randn(1, 3, 190, 188))


def test_unet_same_padding_gives_the_input_resolution():
    model = convzoo.create_model("unet", base_width=4, num_classes=3, batch_norm=True)
    x = torch.randn(2, 3, 37, 50, requires_grad=True)
    out = model(x)
    assert set(out) == {"out"} and out["out"].shape == (2, 3, 37, 50)
    out["out"].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 16x16"):
        model(torch.randn(1, 3, 12, 40))
    with pytest.raises(ValueError, match="expects 3 input channels"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="padding must be 'same'"):
        convzoo.create_model("unet", padding="SAME")
