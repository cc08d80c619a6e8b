"""U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation").

Figure 1: a contracting path of four steps (two 3x3 convolutions + ReLU, then 2x2 max pooling with stride 2, the
number of feature channels doubled at each step: 64, 128, 256, 512), two 3x3 convolutions with 1024 channels at
the bottom, and an expansive path of four steps (a 2x2 "up-convolution" that halves the channels, concatenation
with the cropped feature map of the contracting path, two 3x3 convolutions + ReLU), then a 1x1 convolution to the
classes: "In total the network has 23 convolutional layers" (Section 2): 8 + 2 + 4 x 3 + 1.
Drop-out "at the end of the contracting path" (Section 3.1; the paper gives no rate: 0.5 here) and the paper's
initialization, Gaussian with standard deviation sqrt(2/N), N = incoming nodes (Section 3: He's fan-in).

Padding: ``padding="valid"`` is the paper's (unpadded convolutions, the skip maps centre-cropped, a 572x572 tile
gives a 388x388 map of its centre: the overlap-tile strategy, Figure 2); the input must then have a size for which
every pooled map is even (``unet_output_size``). ``padding="same"`` (the default, a deviation) pads every 3x3
convolution by 1, mirrors the input at its bottom and right edges up to a multiple of 2^depth (the paper's mirroring
extrapolation, Figure 2) and crops the logits back, so any size of at least 2^depth pixels gives logits at the
input resolution.

Parameters (``base_width=64``, ``depth=4``, Figure 1, one input channel, two classes): 31,030,658; each further
class adds 65 and each further input channel 576 (31,031,810 for RGB and two classes, the default).
Options beyond the paper: ``base_width`` (the first step's channels; widths are base_width x 2^i), ``depth`` (the
number of poolings) and ``batch_norm`` (BatchNorm after every 3x3 convolution, without its bias).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import batch_norm, conv, conv_transpose, max_pool
from convzoo.models.segmentation.base import Segmenter, check_num_classes
from convzoo.registry import register_model


def unet_output_size(size: int, depth: int = 4) -> int:
    """The side of the logits of a ``padding="valid"`` U-Net for an input side ``size`` (572 -> 388, Figure 1).

    Raises ValueError when a max pooling would see an odd size or a map would vanish (Section 2: "it is important
    to select the input tile size such that all 2x2 max-pooling operations are applied to a layer with an even x-
    and y-size").
    """
    side = size
    for step in range(depth):
        side -= 4  # two unpadded 3x3 convolutions
        if side <= 0 or side % 2:
            raise ValueError(f"a padding='valid' U-Net of depth {depth} cannot take inputs of side {size}: the map "
                             f"before pooling {step + 1} has side {side} (it must be even and positive; 572 fits)")
        side //= 2
    side -= 4
    for _ in range(depth):
        side = side * 2 - 4
    if side <= 0:
        raise ValueError(f"a padding='valid' U-Net of depth {depth} needs inputs larger than side {size}")
    return side


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre ``size`` (h, w) of Tensor[N, C, H, W] (Figure 1's "copy and crop")."""
    top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return x[..., top:top + size[0], left:left + size[1]]


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (and BatchNorm before it with ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, padding: int, bn: bool) -> None:
        layers: list[nn.Module] = []
        for channels in (in_channels, out_channels):
            layers.append(conv(2, channels, out_channels, 3, padding=padding, bias=not bn))
            if bn:
                layers.append(batch_norm(2, out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(Segmenter):
    """U-Net: input Tensor[N, in_chans, H, W] -> {"out": Tensor[N, num_classes, H, W]} (``padding="same"``) or the
    logits of the input's centre (``padding="valid"``, ``unet_output_size``)."""

    first_conv = "down.0.0"
    classifier_name = "head"

    def __init__(self, *, num_classes: int = 2, in_chans: int = 3, base_width: int = 64, depth: int = 4,
                 padding: str = "same", batch_norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        check_num_classes(num_classes, in_chans)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' (padded 3x3 convolutions, any input size) or 'valid' (the "
                             f"paper's), got {padding!r}")
        if isinstance(base_width, bool) or not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"base_width must be a positive integer (the paper's is 64), got {base_width!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 6:
            raise ValueError(f"depth must be an integer from 1 to 6 (the paper's is 4), got {depth!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_classes, self.in_chans, self.padding, self.depth = num_classes, in_chans, padding, depth
        self.default_input_size = (in_chans, 572, 572)  # Figure 1's input tile
        pad = 1 if padding == "same" else 0
        widths = [base_width * 2 ** i for i in range(depth + 1)]  # 64, 128, 256, 512, 1024
        self.down = nn.ModuleList()
        channels = in_chans
        for width in widths[:-1]:
            self.down.append(DoubleConv(channels, width, pad, batch_norm))
            channels = width
        self.pool = max_pool(2, 2, 2)
        self.bottom = DoubleConv(channels, widths[-1], pad, batch_norm)
        self.dropout = nn.Dropout(dropout)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for width in reversed(widths[:-1]):  # 512, 256, 128, 64
            self.up.append(conv_transpose(2, width * 2, width, 2, stride=2))  # "up-convolution", halves channels
            self.decoder.append(DoubleConv(width * 2, width, pad, batch_norm))
        self.head = conv(2, widths[0], num_classes, 1)
        for m in self.modules():  # Section 3: N(0, sqrt(2 / N)), N = k * k * C_in incoming nodes
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        height, width = x.shape[-2:]
        if self.padding == "same":
            x = self._mirror_to_multiple(x)
        else:
            unet_output_size(height, self.depth), unet_output_size(width, self.depth)  # a clear error, early
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)  # (N, C, H / 2, W / 2)
        x = self.dropout(self.bottom(x))
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            x = up(x)  # (N, C / 2, 2 H, 2 W)
            x = block(torch.cat([center_crop(skip, x.shape[-2:]), x], 1))  # (N, C, 2 H, 2 W): copy and crop
        out = self.head(x)
        if self.padding == "same":
            out = out[..., :height, :width]
        return {"out": out}

    def _mirror_to_multiple(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2 ** self.depth
        height, width = x.shape[-2:]
        if min(height, width) < multiple:
            raise ValueError(f"UNet of depth {self.depth} needs inputs of at least {multiple}x{multiple} pixels, "
                             f"got {height}x{width} (input shape {list(x.shape)})")
        extra_h, extra_w = -height % multiple, -width % multiple
        if extra_h or extra_w:
            x = F.pad(x, (0, extra_w, 0, extra_h), mode="reflect")  # (N, C, H', W'), multiples of 2^depth
        return x


@register_model(kind="segmenter")
def unet(**kwargs) -> UNet:
    """U-Net (Ronneberger et al. 2015, Figure 1): 23 convolutional layers, 64..1024 channels; 31.0 M parameters."""
    return UNet(**kwargs)
