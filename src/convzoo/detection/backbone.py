"""Detection backbones: a classifier of the registry cut into feature maps (with FPN, or a single map).

Every backbone maps Tensor[N, 3, H, W] to a list of feature maps (finest first) and states ``out_channels`` and
``strides``. The classifier's own ``feature_info`` says where its stages are, so any registry
model that states its feature maps can serve (VGG-16's conv5_3 at stride 16, ResNet's layer1..layer4 at 4..32).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from convzoo.detection.fpn import FeaturePyramid
from convzoo.layers import freeze_bn
from convzoo.models.base import Classifier
from convzoo.registry import create_model
from convzoo.weights.load import load_weights


class _StopForward(Exception):
    """Raised by the last feature hook: the classifier's remaining layers are not needed."""


def stage_features(body: Classifier, stages: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``body.forward_features(x)`` and return the outputs of the stages ``stages`` (attribute paths).

    The forward pass stops right after the deepest requested stage (a private exception raised by its hook), so
    later layers (VGG's pool5, a C4 trunk's res5) cost nothing. Under ``torch.export`` (which cannot trace an
    exception) the hooks only record and the later layers, whose results nothing uses, are dropped from the graph.
    """
    outputs: dict[str, torch.Tensor] = {}
    stop = not torch.compiler.is_exporting()

    def save(name: str):
        def hook(module, inputs, output):
            outputs[name] = output
            if stop and len(outputs) == len(stages):
                raise _StopForward
        return hook

    handles = [body.get_submodule(name).register_forward_hook(save(name)) for name in stages]
    try:
        body.forward_features(x)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return [outputs[name] for name in stages]


def build_classifier(name: str, frozen_bn: bool, state_dict: dict | None) -> Classifier:
    """The registry classifier ``name`` (3 input channels), optionally with ``state_dict`` loaded and BatchNorm frozen.

    ``state_dict`` is a classifier's, in convzoo's names, and must fit ``name`` (a ``WeightsMismatchError`` lists
    what does not), except for its classifier (any number of classes: it is dropped) and a first convolution for
    another number of input channels (a classifier trained on 1-channel images), which is adapted to RGB
    (``convzoo.weights.adapt``: repeated, divided by 3) with a warning.
    """
    body = create_model(name)
    if not hasattr(body, "feature_info"):
        raise ValueError(f"backbone {name!r} states no feature_info, so its feature maps cannot be found")
    if state_dict is not None:
        report = load_weights(body, state_dict, ignore_mismatched_head=True)  # the head is dropped below
        for key in report.adapted:
            warnings.warn(f"backbone {name!r}: {next(n for n in report.notes if n.startswith(key))}", stacklevel=3)
    # the classifier head (ResNet's fc, VGG's fully connected layers) is not part of a detection backbone
    setattr(body, body.classifier_name.split(".")[0], nn.Identity())
    if frozen_bn:
        freeze_bn(body)
    return body


class FPNBackbone(nn.Module):
    """A classifier's last four stages (C_2..C_5) + a feature pyramid: P_2..P_6, strides 4..64, 256 channels."""

    def __init__(self, body: Classifier, out_channels: int = 256, stages: int = 4) -> None:
        super().__init__()
        infos = body.feature_info[-stages:]
        self.body, self.stages = body, [info.module for info in infos]
        self.fpn = FeaturePyramid([info.channels for info in infos], out_channels)
        self.out_channels = out_channels
        self.strides = [info.stride for info in infos] + [infos[-1].stride * 2]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(stage_features(self.body, self.stages, x))


class SingleMapBackbone(nn.Module):
    """One feature map of a classifier: VGG-16 conv5_3 or ResNet C4 (stride 16), as in Fast/Faster R-CNN."""

    def __init__(self, body: Classifier, stage: str) -> None:
        super().__init__()
        info = next(info for info in body.feature_info if info.module == stage)
        self.body, self.stages = body, [stage]
        self.out_channels = info.channels
        self.strides = [info.stride]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_features(self.body, self.stages, x)


def resnet_fpn_backbone(name: str = "resnet50", *, trainable_layers: int = 3, frozen_bn: bool = True,
                        state_dict: dict | None = None, out_channels: int = 256) -> FPNBackbone:
    """ResNet + FPN (Mask R-CNN's R50-FPN); by default conv1 and layer1 frozen, BatchNorm frozen (torchvision)."""
    body = build_classifier(name, frozen_bn, state_dict)
    _freeze_body(body, trainable_layers)
    return FPNBackbone(body, out_channels)


def resnet_c4_backbone(name: str = "resnet50", *, trainable_layers: int = 3, frozen_bn: bool = True,
                       state_dict: dict | None = None) -> tuple[SingleMapBackbone, nn.Module]:
    """ResNet C4 (He et al. 2016, Sec. "Object detection"): stages up to res4 as the trunk (stride 16) and res5,
    taken out of the trunk, returned separately as the RoI head."""
    body = build_classifier(name, frozen_bn, state_dict)
    _freeze_body(body, trainable_layers)
    res5 = body.layer4
    body.layer4 = nn.Identity()
    return SingleMapBackbone(body, "layer3"), res5


def vgg_conv5_backbone(name: str = "vgg16", *, trainable_from: int = 10, state_dict: dict | None = None,
                       ) -> SingleMapBackbone:
    """VGG conv5_3 (stride 16, 512 channels). Fast R-CNN Sec. 4.5: conv1 and conv2 stay fixed, so training starts at
    ``features.10`` (conv3_1) by default."""
    body = build_classifier(name, False, state_dict)
    for index, layer in enumerate(body.features):
        for parameter in layer.parameters():
            parameter.requires_grad_(index >= trainable_from)
    conv5 = [info.module for info in body.feature_info if info.stride == 16][-1]
    return SingleMapBackbone(body, conv5)


def _freeze_body(body: Classifier, trainable_layers: int) -> None:
    """Train only the last ``trainable_layers`` stages of ``feature_info``; all of them means the stem too."""
    names = [info.module for info in body.feature_info]
    if not 0 <= trainable_layers <= len(names):
        raise ValueError(f"trainable_layers must be in [0, {len(names)}], got {trainable_layers}")
    trainable = tuple(name + "." for name in names[len(names) - trainable_layers:])
    for name, parameter in body.named_parameters():
        parameter.requires_grad_(trainable_layers == len(names) or name.startswith(trainable))
