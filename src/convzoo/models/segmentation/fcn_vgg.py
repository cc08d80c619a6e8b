"""FCN-32s, FCN-16s and FCN-8s on VGG-16 (Long, Shelhamer & Darrell 2015, "Fully Convolutional Networks for
Semantic Segmentation").

Sec. 3.1 and 4.1: VGG-16's fully connected layers become convolutions, fc6 a 7x7 convolution with 4096 filters on
pool5 and fc7 a 1x1 convolution with 4096 (ReLU and dropout 0.5 after each, as in the classifier), then a 1x1
convolution ``score_fr`` to the classes at stride 32. Sec. 4.2 and Figure 3: FCN-32s upsamples these scores 32x;
FCN-16s adds a 1x1 ``score_pool4`` on pool4 to the 2x upsampled scores and upsamples 16x; FCN-8s adds ``score_pool3``
on pool3 to their 2x upsampling and upsamples 8x. Upsampling is a transposed convolution ("deconvolution", Sec.
3.3): the 2x layers are initialized to bilinear interpolation and learned, the final one is fixed to bilinear
interpolation (Sec. 4.2, "Upsampling"; ``learn_final_upsampling=True`` learns it too); the class scoring layers are
zero-initialized (Sec. 4.3).

The VGG-16 is convzoo's (``features.N``: torchvision's names), so a VGG-16 classifier's checkpoint initializes it:
``load_encoder_weights(model, "vgg16.pth", source="torchvision")`` loads ``features`` and reshapes ``classifier.0``
(Linear 25088 -> 4096) into fc6 and ``classifier.3`` into fc7.

Deviation: the reference Caffe models pad conv1_1 by 100 pixels, leave fc6 unpadded and crop every map with Caffe's
offsets; here the input is zero-padded at its bottom and right to a multiple of 32, fc6 is padded by 3, so every map
aligns with its stride exactly, and the logits are cropped back to the input size.

Parameters with 21 classes (PASCAL VOC): FCN-32s 134,346,581 (fixed final upsampling, a buffer), FCN-16s
134,364,410, FCN-8s 134,376,863; the tests count them layer by layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers import conv, conv_transpose
from convzoo.models.segmentation.base import Segmenter, check_num_classes
from convzoo.models.vgg import VGG
from convzoo.registry import create_model, register_model


def bilinear_kernel(factor: int) -> torch.Tensor:
    """The (2f - f mod 2) x (2f - f mod 2) kernel of bilinear upsampling by ``factor`` f with a transposed
    convolution of stride f (the Caffe FCN reference's ``upsample_filt``): 1 - |i - c| / f per axis, c the centre.
    factor 2 -> the outer product of (0.25, 0.75, 0.75, 0.25)."""
    size = 2 * factor - factor % 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor  # (size,)
    return ramp[:, None] * ramp[None, :]  # (size, size)


def bilinear_upsampling(num_classes: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable transposed convolution, K -> K channels, stride ``factor``, output exactly ``factor`` x the input,
    initialized to bilinear interpolation of each class separately (no bias, as the reference)."""
    layer = conv_transpose(2, num_classes, num_classes, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        kernel = bilinear_kernel(factor)  # an even size 2f: (H - 1) f - f + 2f = H f
        for k in range(num_classes):
            layer.weight[k, k] = kernel
    return layer


def fixed_bilinear_upsampling(x: torch.Tensor, kernel: torch.Tensor, factor: int) -> torch.Tensor:
    """Tensor[N, K, h, w] -> Tensor[N, K, h f, w f], each channel upsampled with the fixed ``kernel`` (2f x 2f)."""
    channels = x.shape[1]
    weight = kernel.to(x.dtype).expand(channels, 1, *kernel.shape)  # (K, 1, 2f, 2f): one filter per class
    return F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2, groups=channels)


def _vgg16_features(in_chans: int, device: torch.device) -> nn.Sequential:
    """convzoo's VGG-16 ``features`` on ``device``, initialized as VGG initializes them; its classifier (123 M
    parameters, replaced here by fc6 and fc7) is built on the meta device only, so it costs no memory or time."""
    with torch.device("meta"):
        vgg = create_model("vgg16", in_chans=in_chans)
    features = vgg.features.to_empty(device=device)
    VGG._init_weights(features)  # the VGG rule (He normal, zero biases) for the modules of ``features`` alone
    return features


class FCNVGG(Segmenter):
    """FCN-``stride``s (32, 16 or 8) on VGG-16: Tensor[N, in_chans, H, W] -> {"out": Tensor[N, num_classes, H, W]}."""

    first_conv = "features.0"
    classifier_name = "score_fr"
    encoder_name = "vgg16"

    def __init__(self, stride: int, *, num_classes: int = 21, in_chans: int = 3, dropout: float = 0.5,
                 learn_final_upsampling: bool = False) -> None:
        super().__init__()
        check_num_classes(num_classes, in_chans)
        if stride not in (32, 16, 8):
            raise ValueError(f"FCN stride must be 32, 16 or 8, got {stride!r}")
        self.stride, self.num_classes, self.in_chans = stride, num_classes, in_chans
        self.default_input_size = (in_chans, 500, 500)  # PASCAL VOC images are at most 500 pixels a side
        self.fc6 = conv(2, 512, 4096, 7, padding=3)
        self.features = _vgg16_features(in_chans, self.fc6.weight.device)  # conv1_1 .. pool5
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self.taps = {pools[2]: "pool3", pools[3]: "pool4"}  # features index -> name, for the skips
        self.fc7 = conv(2, 4096, 4096, 1)
        self.dropout = nn.Dropout(dropout)
        self.score_fr = conv(2, 4096, num_classes, 1)
        heads = ["score_fr"]
        if stride <= 16:
            self.upscore2 = bilinear_upsampling(num_classes, 2)
            self.score_pool4 = conv(2, 512, num_classes, 1)
            heads += ["upscore2", "score_pool4"]
        if stride == 8:
            self.upscore_pool4 = bilinear_upsampling(num_classes, 2)
            self.score_pool3 = conv(2, 256, num_classes, 1)
            heads += ["upscore_pool4", "score_pool3"]
        for name in heads:
            if name.startswith("score"):
                nn.init.zeros_(getattr(self, name).weight)  # Sec. 4.3: zero-initialized class scoring layers
                nn.init.zeros_(getattr(self, name).bias)
        if learn_final_upsampling:
            self.upscore = bilinear_upsampling(num_classes, stride)
            heads.append("upscore")
        else:
            self.upscore = None
            self.register_buffer("upscore_kernel", bilinear_kernel(stride), persistent=False)
        self.head_names = tuple(heads)

    def encoder_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A VGG-16 classifier's state (``features.N``, ``classifier.0/3/6``) in this model's names: the features
        as they are, fc6 and fc7 from the first two linear layers (Sec. 3.1: "convolutionalization")."""
        mapped = {k: v for k, v in state.items() if k.startswith("features.")}
        mapped["fc6.weight"] = state["classifier.0.weight"].reshape(4096, 512, 7, 7)  # (out, C * 7 * 7) -> conv
        mapped["fc6.bias"] = state["classifier.0.bias"]
        mapped["fc7.weight"] = state["classifier.3.weight"].reshape(4096, 4096, 1, 1)
        mapped["fc7.bias"] = state["classifier.3.bias"]
        return mapped

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % 32, 0, -height % 32))  # (N, C, 32 h, 32 w): every map aligned with its stride
        skips = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                skips[self.taps[index]] = x
        x = self.dropout(F.relu(self.fc6(x)))
        x = self.dropout(F.relu(self.fc7(x)))
        score = self.score_fr(x)  # (N, K, h, w) at stride 32
        if self.stride <= 16:
            score = self.upscore2(score) + self.score_pool4(skips["pool4"])  # stride 16
        if self.stride == 8:
            score = self.upscore_pool4(score) + self.score_pool3(skips["pool3"])  # stride 8
        if self.upscore is not None:
            out = self.upscore(score)
        else:
            out = fixed_bilinear_upsampling(score, self.upscore_kernel, self.stride)  # (N, K, 32 h, 32 w)
        return {"out": out[..., :height, :width]}


@register_model(kind="segmenter")
def fcn32s(**kwargs) -> FCNVGG:
    """FCN-32s on VGG-16 (Long et al. 2015, Figure 3): 134,346,581 parameters with 21 classes."""
    return FCNVGG(32, **kwargs)


@register_model(kind="segmenter")
def fcn16s(**kwargs) -> FCNVGG:
    """FCN-16s on VGG-16: FCN-32s plus a pool4 skip; 134,364,410 parameters with 21 classes."""
    return FCNVGG(16, **kwargs)


@register_model(kind="segmenter")
def fcn8s(**kwargs) -> FCNVGG:
    """FCN-8s on VGG-16: FCN-16s plus a pool3 skip; 134,376,863 parameters with 21 classes."""
    return FCNVGG(8, **kwargs)
