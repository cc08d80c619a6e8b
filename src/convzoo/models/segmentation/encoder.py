"""Encoders: any registry classifier, its head removed, its deepest stages dilated to an output stride.

The classifier's ``feature_info`` says where its stages are and at which stride (ResNet: ``layer1..layer4`` at
4..32; VGG: the last ReLU of each block). ``build_encoder`` keeps the classifier module itself (so a segmenter's
``backbone.layer1.0.conv1.weight`` is the classifier's ``layer1.0.conv1.weight``, torchvision's names) and the
segmenter reads the stages with ``convzoo.detection.backbone.stage_features`` (forward hooks that stop after the
deepest stage).

Output stride by dilation (atrous convolution; Chen et al. 2017, DeepLabv3, Sec. 3.1 and Figure 3; torchvision's
``replace_stride_with_dilation``): in every stage whose stride would pass ``output_stride``, the strided layers
get stride 1 and the 3x3 (any k>1) convolutions after them dilation r (and padding r (k-1)/2), r doubling with each
such stage. The strided convolution itself (and any before it in its stage) takes the previous stage's rate, as in
torchvision, so its checkpoints give its logits. Only stages that contain their strided layers can be dilated (the
ResNet family); an encoder whose downsampling lies between its stages (VGG's pooling layers) keeps its native
strides, and asking it for a smaller output stride is an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from convzoo.models.base import Classifier, FeatureInfo
from convzoo.registry import create_model, model_keywords, model_kind

OUTPUT_STRIDES = (8, 16, 32)


def build_encoder(name: str, *, in_chans: int = 3, output_stride: int = 32) -> tuple[Classifier, list[FeatureInfo]]:
    """The registry classifier ``name`` without its classifier head, dilated to ``output_stride`` (8, 16 or 32).

    Returns the module and its stages' ``FeatureInfo`` with the strides after dilation (``stride`` at most
    ``output_stride``). The module's forward must not be called (its head is gone): read its stages with
    ``stage_features``.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, got {output_stride!r}")
    if model_kind(name) != "classifier":
        raise ValueError(f"encoder {name!r} is a {model_kind(name)}; an encoder must be a registry classifier")
    # auxiliary classifiers (GoogLeNet's, Inception-v3's) score intermediate stages for a classification loss: off
    options = {"aux_logits": False} if "aux_logits" in (model_keywords(name) or ()) else {}
    body = create_model(name, in_chans=in_chans, **options)
    infos = getattr(body, "feature_info", None)
    if not infos or getattr(body, "ndim", 2) != 2:
        raise ValueError(f"encoder {name!r} states no 2D feature_info, so its feature maps cannot be found")
    if output_stride > infos[-1].stride:
        raise ValueError(f"encoder {name!r}'s deepest feature map ({infos[-1].module}) has stride "
                         f"{infos[-1].stride}; output_stride must be at most that, got {output_stride}")
    # the classifier head (ResNet's fc, VGG's fully connected layers) is not part of an encoder
    setattr(body, body.classifier_name.split(".")[0], nn.Identity())
    return body, dilate_stages(body, infos, output_stride, name)


def dilate_stages(body: nn.Module, infos: list[FeatureInfo], output_stride: int, name: str = "the encoder"
                  ) -> list[FeatureInfo]:
    """Replace the strides of the stages beyond ``output_stride`` by dilation, in place; the new stage infos."""
    result, dilation, previous = [], 1, 1
    for info in infos:
        factor = info.stride // previous
        previous = info.stride
        if info.stride <= output_stride:
            result.append(info)
            continue
        if not _dilate_stage(body.get_submodule(info.module), dilation, dilation * factor):
            raise ValueError(f"{name} cannot reach output_stride {output_stride} by dilation: its stage "
                             f"{info.module!r} (stride {info.stride}) holds no strided layer (its downsampling "
                             f"lies outside the stage), so output_stride must be at least {info.stride}")
        dilation *= factor
        result.append(FeatureInfo(info.module, info.channels, output_stride))
    return result


def _dilate_stage(stage: nn.Module, old: int, new: int) -> bool:
    """Stride 1 for the strided layers of ``stage``; rate ``old`` for its k>1 convolutions up to the first strided
    layer (that one included), rate ``new`` after it; False when the stage has no strided layer."""
    seen_stride = False
    for module in stage.modules():
        if isinstance(module, nn.Conv2d):
            if max(module.kernel_size) > 1:  # a 1x1 convolution has no rate
                set_rate(module, new if seen_stride else old)
            if max(module.stride) > 1:
                module.stride, seen_stride = (1, 1), True
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and _pool_stride(module) > 1:
            kernel = module.kernel_size if isinstance(module.kernel_size, int) else max(module.kernel_size)
            if kernel % 2 == 0 or module.padding not in (kernel // 2, (kernel // 2,) * 2):
                raise ValueError(f"cannot remove the stride of a {kernel}x{kernel} pooling with padding "
                                 f"{module.padding} without changing its output size")
            module.stride, seen_stride = 1, True
    return seen_stride or old == new


def set_rate(module: nn.Conv2d, rate: int) -> None:
    """Dilation ``rate`` with the padding that keeps a stride-1 output the size of its input."""
    kernel = module.kernel_size
    if module.padding != tuple((k - 1) // 2 * d for k, d in zip(kernel, module.dilation)):
        raise ValueError(f"cannot dilate a {kernel} convolution with padding {module.padding}: only convolutions "
                         f"that keep the size (padding (k - 1) / 2) can")
    module.dilation = (rate, rate)
    module.padding = tuple((k - 1) // 2 * rate for k in kernel)


def _pool_stride(module: nn.Module) -> int:
    stride = module.stride
    return stride if isinstance(stride, int) else max(stride)


def load_encoder_weights(model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor], *,
                         source: str = "convzoo"):
    """Initialize ``model``'s encoder from a checkpoint of the classifier it was built from (transfer learning).

    ``weights``: a file or a state dict of the classifier ``model.encoder_name`` (any number of classes: its head
    is dropped; another number of input channels is adapted), in ``source``'s names (``convzoo.load_weights``).
    ``model.encoder_state(classifier_state)`` maps the classifier's keys (its head included) to the model's
    (the dilated-encoder segmenters: ``backbone.`` + the key, the head dropped; FCN-VGG also turns the
    classifier's first two linear layers into fc6 and fc7 convolutions). Returns the classifier's
    ``LoadReport``; a key that the model lacks or that has another shape is a ValueError.
    """
    from convzoo.weights.load import load_weights

    classifier = create_model(model.encoder_name, in_chans=model.in_chans)
    report = load_weights(classifier, weights, source=source, ignore_mismatched_head=True)
    mapped = model.encoder_state(classifier.state_dict())
    target = model.state_dict()
    wrong = [k for k, v in mapped.items() if k not in target or target[k].shape != v.shape]
    if wrong:
        raise ValueError(f"the encoder weights do not fit {type(model).__name__}: {', '.join(wrong[:6])}")
    model.load_state_dict(mapped, strict=False)
    return report

