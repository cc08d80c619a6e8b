"""Segmenters on a dilated encoder: DeepLabv3 (Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image
Segmentation") and torchvision's FCN (a dilated ResNet with a 3x3 head; Long et al.'s FCN-32s/16s/8s on VGG-16
are in ``fcn_vgg.py``).

Both read the encoder's deepest stage (and, with ``aux_loss=True``, the stage before it for an auxiliary FCN head,
as torchvision), score it and upsample the logits bilinearly to the input size. Any registry classifier with a
``feature_info`` is an encoder (``encoder="resnet18"``); ``output_stride`` 8, 16 or 32 by dilation (``encoder.py``).

DeepLabv3: output stride 16 by default (the paper trains at 16, Sec. 4.1), ASPP rates (6, 12, 18) at 16,
(12, 24, 36) at 8 and (3, 6, 9) at 32 (our extension of the paper's rule: rates scale with 16 / output_stride).
Multi-grid (Sec. 3.2): ``multi_grid=(1, 2, 4)``, the paper's best, multiplies the rates of the 3x3 convolutions of
the deepest stage's three units (at output stride 16: rates 2 x (1, 2, 4) = (2, 4, 8)); the default None leaves
them alone, as torchvision. Deviation: no cascaded blocks 5-7 (Sec. 3.1; the paper's best model is the ASPP one,
Sec. 3.3).

``fcn_resnet50`` and ``deeplabv3_resnet50`` are torchvision's models with torchvision's parameter names: a ResNet-50
(v1.5) dilated to output stride 8, torchvision's head layouts. Parameters with 21 classes: fcn_resnet50
32,957,013 (35,322,218 with ``aux_loss``), deeplabv3_resnet50 39,638,869 (42,004,074 with ``aux_loss``); the tests
compare both and the logits with torchvision's. Image pooling has a 1x1 map, so ASPP's BatchNorm needs batches of
2 or more in training mode (as torchvision's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.detection.backbone import stage_features
from convzoo.models.segmentation.base import Segmenter, check_num_classes
from convzoo.models.segmentation.encoder import build_encoder, set_rate
from convzoo.models.segmentation.heads import deeplab_head, fcn_head
from convzoo.registry import register_model


class DilatedSegmenter(Segmenter):
    """An encoder (``backbone``: a registry classifier without its head), ``classifier`` on its deepest stage and
    ``aux_classifier`` (an FCN head) on the stage before, or None. Tensor[N, in_chans, H, W] ->
    {"out": Tensor[N, num_classes, H, W], "aux": the same, with the auxiliary head}."""

    first_conv = "backbone.conv1"
    classifier_name = "classifier.4"

    def __init__(self, *, num_classes: int, in_chans: int, encoder: str, output_stride: int, aux_loss: bool) -> None:
        super().__init__()
        check_num_classes(num_classes, in_chans)
        self.num_classes, self.in_chans, self.encoder_name = num_classes, in_chans, encoder
        self.default_input_size = (in_chans, 513, 513)  # DeepLabv3's crop, Sec. 4.1
        self.backbone, infos = build_encoder(encoder, in_chans=in_chans, output_stride=output_stride)
        self.first_conv = f"backbone.{self.backbone.first_conv}" if self.backbone.first_conv else None
        self.output_stride = output_stride
        if aux_loss and len(infos) < 2:
            raise ValueError(f"aux_loss needs an encoder with two stages or more; {encoder} has {len(infos)}")
        self.stages = [info.module for info in (infos[-2:] if aux_loss else infos[-1:])]
        self.out_channels = infos[-1].channels
        self.aux_classifier = fcn_head(infos[-2].channels, num_classes) if aux_loss else None
        self.head_names = ("aux_classifier.4",) if aux_loss else ()

    def encoder_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A checkpoint of the encoder's classifier in this model's names (``load_encoder_weights``)."""
        head = self.backbone.classifier_name.split(".")[0] + "."
        return {f"backbone.{k}": v for k, v in state.items() if not k.startswith(head)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        size = x.shape[-2:]
        features = stage_features(self.backbone, self.stages, x)  # [aux stage,] deepest stage
        out = {"out": F.interpolate(self.classifier(features[-1]), size=size, mode="bilinear", align_corners=False)}
        if self.aux_classifier is not None:
            out["aux"] = F.interpolate(self.aux_classifier(features[0]), size=size, mode="bilinear",
                                       align_corners=False)
        return out


class FCN(DilatedSegmenter):
    """torchvision's FCN: a dilated encoder and ``fcn_head`` (3x3 conv to C/4, BN, ReLU, dropout, 1x1)."""

    def __init__(self, *, num_classes: int = 21, in_chans: int = 3, encoder: str = "resnet50",
                 output_stride: int = 8, aux_loss: bool = False) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, encoder=encoder, output_stride=output_stride,
                         aux_loss=aux_loss)
        self.classifier = fcn_head(self.out_channels, num_classes)


class DeepLabV3(DilatedSegmenter):
    """DeepLabv3: a dilated encoder, ASPP and a 1x1 convolution to the classes (``deeplab_head``)."""

    def __init__(self, *, num_classes: int = 21, in_chans: int = 3, encoder: str = "resnet50",
                 output_stride: int = 16, aux_loss: bool = False, atrous_rates: tuple[int, int, int] | None = None,
                 layout: str = "paper", multi_grid: tuple[int, ...] | None = None) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, encoder=encoder, output_stride=output_stride,
                         aux_loss=aux_loss)
        if multi_grid is not None:
            stage_rate = max(1, self.backbone.feature_info[-1].stride // output_stride)  # native stride / OS
            apply_multi_grid(self.backbone.get_submodule(self.stages[-1]), tuple(multi_grid), stage_rate, encoder)
        if layout not in ("paper", "torchvision"):
            raise ValueError(f"layout must be 'paper' (ASPP, then the 1x1 classifier) or 'torchvision' (dropout "
                             f"and an extra 3x3 convolution), got {layout!r}")
        if atrous_rates is None:
            atrous_rates = tuple(rate * 16 // output_stride for rate in (6, 12, 18))  # Sec. 3.3, 4.1
        elif len(atrous_rates) != 3 or not all(isinstance(r, int) and r >= 1 for r in atrous_rates):
            raise ValueError(f"atrous_rates must be three positive integers (the paper's: 6,12,18 at output stride "
                             f"16), got {atrous_rates!r}")
        self.atrous_rates, self.layout = tuple(atrous_rates), layout
        self.classifier = deeplab_head(self.out_channels, num_classes, self.atrous_rates, layout)
        self.classifier_name = f"classifier.{len(self.classifier) - 1}"


def apply_multi_grid(stage: nn.Module, unit_rates: tuple[int, ...], stage_rate: int, name: str = "the encoder"
                     ) -> None:
    """Rate ``stage_rate`` x ``unit_rates[i]`` for every k>1 convolution of the i-th unit of ``stage`` (Sec. 3.2:
    "output_stride = 16 and Multi_Grid = (1, 2, 4), the three convolutions will have rates = 2 x (1, 2, 4)"), the
    first unit included (torchvision's rule, without multi-grid, gives that one the previous stage's rate)."""
    units = list(stage.children())
    if len(units) != len(unit_rates) or not all(isinstance(r, int) and r >= 1 for r in unit_rates):
        raise ValueError(f"multi_grid must be {len(units)} positive integers, one per unit of {name}'s deepest "
                         f"stage (the paper's: 1,2,4), got {unit_rates!r}")
    for unit, unit_rate in zip(units, unit_rates):
        for module in unit.modules():
            if isinstance(module, nn.Conv2d) and max(module.kernel_size) > 1:
                set_rate(module, stage_rate * unit_rate)


@register_model(kind="segmenter")
def fcn(**kwargs) -> FCN:
    """torchvision's FCN head on any registry classifier (``encoder``, default resnet50, output stride 8)."""
    return FCN(**kwargs)


@register_model(kind="segmenter")
def fcn_resnet50(*, num_classes: int = 21, in_chans: int = 3, aux_loss: bool = False) -> FCN:
    """torchvision's fcn_resnet50: 32,957,013 parameters (35,322,218 with aux_loss) for 21 classes."""
    return FCN(num_classes=num_classes, in_chans=in_chans, encoder="resnet50", output_stride=8, aux_loss=aux_loss)


@register_model(kind="segmenter")
def deeplabv3(**kwargs) -> DeepLabV3:
    """DeepLabv3 (Chen et al. 2017) on any registry classifier (``encoder``, default resnet50), output stride 16."""
    return DeepLabV3(**kwargs)


@register_model(kind="segmenter")
def deeplabv3_resnet50(*, num_classes: int = 21, in_chans: int = 3, aux_loss: bool = False) -> DeepLabV3:
    """torchvision's deeplabv3_resnet50 (output stride 8, rates 12/24/36): 39,638,869 parameters (42,004,074 with
    aux_loss) for 21 classes."""
    return DeepLabV3(num_classes=num_classes, in_chans=in_chans, encoder="resnet50", output_stride=8,
                     aux_loss=aux_loss, layout="torchvision")
