"""RGB checkpoints for models with other input channels: the first convolution is adapted (weights/adapt.py)."""

from __future__ import annotations

import typing

import pytest
import torch
import torchvision.models as tvm
from torch import nn

import convzoo
from convzoo.detection.backbone import resnet_fpn_backbone
from convzoo.weights import WeightsMismatchError, load_weights
from convzoo.weights.adapt import adapt_input_conv

pytestmark = pytest.mark.usefixtures("one_thread")


def test_adapt_input_conv_by_hand():
    weight = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)  # one filter: R, G, B weights 1, 2, 3
    assert adapt_input_conv(weight, 3) is weight
    assert adapt_input_conv(weight, 1).flatten().tolist() == [6.0]  # 1 + 2 + 3
    assert adapt_input_conv(weight, 2).flatten().tolist() == [1.5, 3.0]  # (1, 2) x 3/2
    assert adapt_input_conv(weight, 4).flatten().tolist() == [0.75, 1.5, 2.25, 0.75]  # (1, 2, 3, 1) x 3/4
    assert adapt_input_conv(weight, 6).flatten().tolist() == [0.5, 1.0, 1.5, 0.5, 1.0, 1.5]  # (1, 2, 3, 1, 2, 3) / 2
    gray = torch.tensor([5.0]).reshape(1, 1, 1, 1)
    assert adapt_input_conv(gray, 3).flatten().tolist() == pytest.approx([5 / 3] * 3)  # 1 -> 3: divided by 3
    with pytest.raises(ValueError, match="in_chans must be a positive integer"):
        adapt_input_conv(weight, 0)


@pytest.fixture(scope="module")
def torchvision_resnet18() -> nn.Module:
    torch.manual_seed(0)
    model = tvm.resnet18(weights=None, num_classes=5)
    with torch.no_grad():  # non-default BatchNorm statistics, so that their loading is checked too
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_a_gray_model_sees_what_the_rgb_model_sees_on_a_gray_image(torchvision_resnet18):
    model = convzoo.create_model("resnet18", num_classes=5, in_chans=1)
    report = load_weights(model, torchvision_resnet18.state_dict(), source="torchvision")
    assert report.adapted == ["conv1.weight"] and "conv1.weight" in report.loaded
    assert "conv1.weight adapted from 3 to 1 input channels (summed over the file's 3)" in str(report)
    gray = torch.randn(2, 1, 48, 48)
    with torch.no_grad():  # summing the filters over RGB = the RGB network on the gray image in every channel
        expected = torchvision_resnet18(gray.expand(-1, 3, -1, -1))
        assert torch.allclose(model.eval()(gray), expected, atol=1e-5)


@pytest.mark.parametrize("in_chans", [2, 4, 6])
def test_more_channels_repeat_and_rescale(in_chans, torchvision_resnet18):
    model = convzoo.create_model("resnet18", num_classes=5, in_chans=in_chans).eval()
    report = load_weights(model, torchvision_resnet18.state_dict(), source="torchvision")
    rgb = torchvision_resnet18.conv1.weight
    assert model.conv1.weight.shape == (64, in_chans, 7, 7)
    for c in range(in_chans):
        assert torch.allclose(model.conv1.weight[:, c], rgb[:, c % 3] * 3 / in_chans)
    assert f"scaled by 3/{in_chans}" in str(report)
    if in_chans == 6:  # R, G, B, R, G, B: the image twice gives the RGB network's logits
        image = torch.randn(2, 3, 48, 48)
        with torch.no_grad():
            assert torch.allclose(model(image.repeat(1, 2, 1, 1)), torchvision_resnet18(image), atol=1e-5)


def _one_per_family() -> list[tuple[str, dict]]:
    """The first registered classifier of every model class, plus the variants that move the first convolution."""
    seen, cases = set(), []
    for name in convzoo.list_models(kind="classifier"):
        model_class = typing.get_type_hints(convzoo.get_model_builder(name))["return"]
        if model_class not in seen:
            seen.add(model_class)
            cases.append((name, {"spec": "CB-8-3-2-same,F,H-10"} if name == "spec" else {}))
    return cases + [("bn_inception", {"separable_stem": False}), ("spec", {"spec": "M-2-2,R-[C-2-3-1-same],F,H-4"}),
                    ("resnet18", {"ndim": 1})]


@pytest.mark.parametrize("name,kwargs", _one_per_family(), ids=lambda case: str(case))
def test_first_conv_names_the_convolution_that_takes_the_input(name, kwargs):
    with torch.device("meta"):  # no memory, no initialization: only the order of the calls is read
        model = convzoo.create_model(name, in_chans=2, **kwargs).eval()
        called = []
        for path, module in model.named_modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                module.register_forward_pre_hook(lambda m, inputs, path=path: called.append(path))
        model(torch.zeros(1, *model.default_input_size))
    assert model.first_conv == called[0]
    assert model.get_submodule(model.first_conv).in_channels == 2


def test_a_depthwise_stem_cannot_be_adapted_and_says_so():
    with torch.device("meta"):
        rgb, gray = convzoo.create_model("bn_inception"), convzoo.create_model("bn_inception", in_chans=1)
    with pytest.raises(WeightsMismatchError, match="conv1.depthwise.weight cannot be adapted to 1 input channels"):
        load_weights(gray, rgb.state_dict())


def test_a_detection_backbone_adapts_a_gray_classifier_to_rgb():
    gray = convzoo.create_model("resnet18", in_chans=1, num_classes=10)
    with pytest.warns(UserWarning, match="conv1.weight adapted from 1 to 3 input channels"):
        backbone = resnet_fpn_backbone("resnet18", state_dict=gray.state_dict(), frozen_bn=False)
    assert torch.allclose(backbone.body.conv1.weight, gray.conv1.weight.expand(-1, 3, -1, -1) / 3)
    assert torch.equal(backbone.body.layer4[1].conv2.weight, gray.layer4[1].conv2.weight)
    with pytest.raises(WeightsMismatchError, match="missing from the file: layer4"):
        resnet_fpn_backbone("resnet18", state_dict={k: v for k, v in gray.state_dict().items() if "layer4" not in k})
