"""Video ResNets (Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions for Action Recognition",
arXiv:1711.11248): R3D-18, MC3-18 and R(2+1)D-18, the 18-layer residual networks of the paper (Sec. 3, Table 1).

Input clips Tensor[N, C, T, H, W] (frames on axis 2); the default input size is (3, 16, 112, 112), the paper's
16-frame 112x112 clips, and the default head has the 400 classes of Kinetics-400, as torchvision's. Every network is
a stem (stride 1 in time, 2 in space, no max pooling), four stages conv2_x .. conv5_x of two basic blocks with
64, 128, 256, 512 channels, global average pooling over (T, H, W) and a linear layer. ``VIDEO_TABLE`` says which
convolution each network uses where:

- ``"3d"``: a full t x d x d convolution (R3D, Sec. 3.3);
- ``"2d"``: a 1 x d x d convolution, applied to every frame alone, that never strides in time (MCx, Sec. 3.4);
- ``"2+1d"``: a 1 x d x d spatial convolution to M channels, BatchNorm, ReLU, then a t x 1 x 1 temporal one
  (R(2+1)D, Sec. 3.5), where M_i = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i)) gives the pair the parameters
  of the t x d x d convolution from N_{i-1} to N_i channels (t = d = 3 in the blocks): ``mid_channels``.

Parameter names and counts equal ``torchvision.models.video``'s, so its checkpoints load with strict=True. Where
torchvision's layout differs from the paper's text, convzoo follows torchvision (so that its weights load), namely:

- R(2+1)D's stem has 45 intermediate channels, torchvision's constant; the rule (t = 3, d = 7, 3 -> 64) gives 83.
- Both (2+1)D convolutions of a block take M from the block's input and output widths, so the second one of each
  stage's first block (N_{i-1} = N_i = 128, 256, 512: M = 288, 576, 1152 by the rule) has 230, 460, 921. Hence
  R(2+1)D-18 has 31.5 M parameters, not the 33.4 M of R3D-18 that the rule aims at.

``width`` (default 64, the paper's) sets the channels of conv2_x, doubled in each later stage (width, 2 width, 4 width,
8 width), so that a CPU trains the same networks narrower (``--width 8``: about 1/60 of the multiply-adds). At a
width other than 64 the R(2+1)D stem's intermediate width is torchvision's 45 scaled by width / 64 (a convzoo
choice: neither the paper nor torchvision has narrow variants); the blocks keep the rule of Sec. 3.5.

``feature_info`` gives the spatial stride of each stage (2, 2, 4, 8, 16: a 112x112 clip ends at 7x7), which is
what detection code reads; the temporal strides are 1, 1, 2, 4, 8 (R3D, R(2+1)D) and 1 everywhere (MC3).
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.layers import batch_norm, conv, global_avg_pool
from convzoo.models.base import Classifier, FeatureInfo, init_weights_he
from convzoo.models.resnet_blocks import projection
from convzoo.registry import register_model

KINDS = ("3d", "2d", "2+1d")
# The networks of Sec. 3 / Fig. 1: (the stem's convolution, the convolution of conv2_x, conv3_x, conv4_x, conv5_x).
VIDEO_TABLE: dict[str, tuple[str, tuple[str, str, str, str]]] = {
    "r3d_18": ("3d", ("3d", "3d", "3d", "3d")),            # Sec. 3.3: 3D convolutions everywhere
    "mc3_18": ("3d", ("3d", "2d", "2d", "2d")),            # Sec. 3.4: 3D in conv1 and conv2_x, 2D from conv3_x on
    "r2plus1d_18": ("2+1d", ("2+1d", "2+1d", "2+1d", "2+1d")),  # Sec. 3.5: every 3D convolution factorized
}
BLOCKS_18 = (2, 2, 2, 2)  # basic blocks in conv2_x .. conv5_x (Table 1, 18 layers)
STEM_MID_CHANNELS = 45  # torchvision's R(2+1)D stem; the rule of Sec. 3.5 would give 83 (see the module docstring)
WIDTH = 64  # channels of conv2_x in the paper (Table 1)


def mid_channels(in_channels: int, out_channels: int, t: int = 3, d: int = 3) -> int:
    """Sec. 3.5: M_i = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i)), the width between a (2+1)D block's
    spatial and temporal convolutions at which the pair has the parameters of one t x d x d convolution:
    M (d^2 N_{i-1} + t N_i) = t d^2 N_{i-1} N_i. E.g. 64 -> 64: 27 * 64 * 64 / (576 + 192) = 144."""
    return (t * d * d * in_channels * out_channels) // (d * d * in_channels + t * out_channels)


def temporal_kernel(model: nn.Module) -> int:
    """The longest temporal kernel (axis 2 of Tensor[N, C, T, H, W]) of ``model``'s 3D convolutions: the fewest
    frames a clip needs for every temporal convolution to see frames, not only zero padding (3 for the video
    ResNets); 1 for a model without 3D convolutions."""
    return max((m.kernel_size[0] for m in model.modules() if isinstance(m, nn.Conv3d)), default=1)


def spatiotemporal_conv(kind: str, in_channels: int, out_channels: int, *, kernel: tuple[int, int] = (3, 3),
                        stride: tuple[int, int] = (1, 1), mid: int | None = None) -> nn.Module:
    """One convolution of ``kind`` ("3d", "2d" or "2+1d"; module docstring) with ``kernel`` = (t, d) and
    ``stride`` = (temporal, spatial); "2d" ignores t and the temporal stride, "2+1d" needs ``mid`` channels.

    Tensor[N, in_channels, T, H, W] -> Tensor[N, out_channels, T / s_t, H / s, W / s]; padding keeps the size
    at stride 1 (t // 2 frames, d // 2 pixels), no bias (BatchNorm follows). "3d" and "2d" are one ``nn.Conv3d``,
    "2+1d" is ``nn.Sequential(spatial conv, BN, ReLU, temporal conv)``, as torchvision's ``Conv2Plus1D``.
    """
    if kind not in KINDS:
        raise ValueError(f"convolution kind must be one of {', '.join(KINDS)}, got {kind!r}")
    (t, d), (s_t, s) = kernel, stride
    if kind == "3d":
        return conv(3, in_channels, out_channels, (t, d, d), (s_t, s, s), padding=(t // 2, d // 2, d // 2), bias=False)
    if kind == "2d":
        return conv(3, in_channels, out_channels, (1, d, d), (1, s, s), padding=(0, d // 2, d // 2), bias=False)
    if mid is None:
        raise ValueError("a (2+1)D convolution needs its intermediate width mid (Sec. 3.5: mid_channels)")
    return nn.Sequential(
        conv(3, in_channels, mid, (1, d, d), (1, s, s), padding=(0, d // 2, d // 2), bias=False),  # space
        batch_norm(3, mid),
        nn.ReLU(inplace=True),
        conv(3, mid, out_channels, (t, 1, 1), (s_t, 1, 1), padding=(t // 2, 0, 0), bias=False),  # time
    )


class VideoBasicBlock(nn.Module):
    """He et al.'s basic block with spatiotemporal convolutions of ``kind``: two 3x3x3 (or 1x3x3, or (2+1)D)
    convolutions with BatchNorm and a shortcut; torchvision's names (``conv1`` = conv, BN, ReLU; ``conv2`` = conv,
    BN; ``downsample``). ``stride`` strides both space and time, except for "2d", which keeps every frame.

    Both (2+1)D convolutions get M from (in_channels, planes), as torchvision's ``BasicBlock`` (module docstring).
    """

    expansion = 1

    def __init__(self, kind: str, in_channels: int, planes: int, stride: int = 1, *,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        mid = mid_channels(in_channels, planes) if kind == "2+1d" else None
        self.conv1 = nn.Sequential(spatiotemporal_conv(kind, in_channels, planes, stride=(stride, stride), mid=mid),
                                   batch_norm(3, planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(spatiotemporal_conv(kind, planes, planes, mid=mid), batch_norm(3, planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        out += x if self.downsample is None else self.downsample(x)  # in place: no extra activation tensor
        return self.relu(out)


def video_stem(kind: str, in_channels: int, out_channels: int = WIDTH) -> nn.Sequential:
    """The stem (conv1 of Table 1): a 3x7x7 convolution, stride 1 in time and 2 in space, BN and ReLU; for
    "2+1d" it is factorized into 1x7x7 to ``STEM_MID_CHANNELS`` (scaled by ``out_channels / 64``) and 3x1x1
    (torchvision's ``R2Plus1dStem``).

    Names as torchvision's: ``stem.0`` (the convolution; "2+1d": ``stem.0`` .. ``stem.3``), then BN and ReLU.
    """
    mid = max(1, STEM_MID_CHANNELS * out_channels // WIDTH)
    layer = spatiotemporal_conv(kind, in_channels, out_channels, kernel=(3, 7), stride=(1, 2), mid=mid)
    layers = list(layer) if isinstance(layer, nn.Sequential) else [layer]  # flat, as torchvision's stem.0 .. stem.5
    return nn.Sequential(*layers, batch_norm(3, out_channels), nn.ReLU(inplace=True))


class VideoResNet(Classifier):
    """A video ResNet: ``video_stem(stem)``, four stages of ``VideoBasicBlock`` whose convolutions are ``stages``
    (one kind per stage), ``layers`` blocks each, global average pooling over (T, H, W) and a linear layer.

    Input clips Tensor[N, in_chans, T, H, W] -> logits Tensor[N, num_classes]; default input size
    (in_chans, 16, 112, 112). Any T, H, W of at least 1 work (the pooling is global), but a clip shorter than
    the temporal kernels (3 frames, ``temporal_kernel``) only convolves zero padding in time. ``width``: the
    channels of conv2_x (module docstring); ``ndim`` must be 3 (the classification task passes the number of axes).

    Deviations from torchvision: ``zero_init_residual=True`` zeroes the last BN scale of every block (Goyal et al.
    2017), where torchvision's video ResNet zeroes only bottleneck blocks' and so leaves a basic block unchanged;
    the linear layer is initialized as torchvision's (normal, std 0.01; zero bias), the rest by ``init_weights_he``.
    """

    ndim = 3
    first_conv = "stem.0"

    def __init__(self, stem: str, stages: tuple[str, ...], layers: tuple[int, ...] = BLOCKS_18, *,
                 num_classes: int = 400, in_chans: int = 3, width: int = WIDTH, ndim: int = 3,
                 zero_init_residual: bool = False, drop_rate: float = 0.0) -> None:
        super().__init__()
        if len(stages) != len(layers):
            raise ValueError(f"one convolution kind per stage expected: {len(layers)} stages, got {stages}")
        if ndim != 3:
            raise ValueError(f"video ResNets are 3D networks (inputs [N, C, T, H, W]): ndim must be 3, got {ndim}")
        if width < 1:
            raise ValueError(f"width (the channels of conv2_x) must be at least 1, got {width}")
        self.in_chans, self.num_classes = in_chans, num_classes
        self.default_input_size = (in_chans, 16, 112, 112)
        self.stem = video_stem(stem, in_chans, width)
        self.feature_info = [FeatureInfo("stem", width, 2)]
        channels, stride = width, 2
        planes_of_stages = (width, 2 * width, 4 * width, 8 * width)  # 64, 128, 256, 512 in Table 1
        for index, (kind, planes, blocks) in enumerate(zip(stages, planes_of_stages, layers), start=1):
            first_stride = 1 if index == 1 else 2
            setattr(self, f"layer{index}", _make_stage(kind, channels, planes, blocks, first_stride))
            channels, stride = planes, stride * first_stride
            self.feature_info.append(FeatureInfo(f"layer{index}", channels, stride))  # spatial stride
        self.num_features = channels
        self.avgpool = global_avg_pool(3)
        self.drop_rate = drop_rate
        self.fc = nn.Linear(channels, num_classes)
        init_weights_he(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, VideoBasicBlock):
                    nn.init.zeros_(m.conv2[1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, 64, T, H / 2, W / 2)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, C, 1, 1, 1) -> (N, C)
        if self.drop_rate:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)


def _make_stage(kind: str, in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` basic blocks; the first changes stride/width, with a projection shortcut that strides as its
    convolutions do (space and time; space only for "2d", as torchvision's ``get_downsample_stride``)."""
    downsample = None
    if stride != 1 or in_channels != planes:
        downsample = projection(3, in_channels, planes, (1 if kind == "2d" else stride, stride, stride))
    layers = [VideoBasicBlock(kind, in_channels, planes, stride, downsample=downsample)]
    layers += [VideoBasicBlock(kind, planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _video_resnet(name: str, kwargs: dict) -> VideoResNet:
    stem, stages = VIDEO_TABLE[name]
    return VideoResNet(stem, stages, BLOCKS_18, **kwargs)


@register_model
def r3d_18(**kwargs) -> VideoResNet:
    """R3D-18 (Sec. 3.3): 3x3x3 convolutions throughout; 33.4 M parameters, 40.7 G multiply-adds at 3x16x112x112."""
    return _video_resnet("r3d_18", kwargs)


@register_model
def mc3_18(**kwargs) -> VideoResNet:
    """MC3-18 (Sec. 3.4): 3D convolutions in conv1 and conv2_x, 1x3x3 from conv3_x on; 11.7 M parameters,
    43.3 G multiply-adds at 3x16x112x112."""
    return _video_resnet("mc3_18", kwargs)


@register_model
def r2plus1d_18(**kwargs) -> VideoResNet:
    """R(2+1)D-18 (Sec. 3.5): every 3D convolution factorized into 1xdxd and tx1x1; 31.5 M parameters,
    40.5 G multiply-adds at 3x16x112x112."""
    return _video_resnet("r2plus1d_18", kwargs)
