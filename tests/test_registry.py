"""The registry: names, globbing, duplicates, close-match errors, the model interface and input errors."""

import pytest
import torch

import convzoo
from convzoo.registry import register_model


def test_list_and_glob():
    names = convzoo.list_models()
    assert names == sorted(names)
    assert {"vgg16", "resnet50", "resnet20", "plain110", "wrn28_10", "resnext101_64x4d"} <= set(names)
    assert convzoo.list_models("vgg1?_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def test_duplicate_name_is_an_error():
    def resnet18(**kwargs):
        return None

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet18)


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError, match="resnet50") as info:
        convzoo.create_model("resnet05")
    assert "did you mean" in str(info.value)


def test_num_classes_in_chans_and_interface():
    model = convzoo.create_model("resnet18", num_classes=7, in_chans=1).eval()
    x = torch.randn(2, 1, 64, 64)
    features = model.forward_features(x)
    assert features.shape == (2, 512, 2, 2)
    assert model.forward_head(features, pre_logits=True).shape == (2, 512)
    assert model(x).shape == (2, 7)
    assert [(f.channels, f.stride) for f in model.feature_info] == [(64, 2), (64, 4), (128, 8), (256, 16), (512, 32)]
    for info in model.feature_info:
        model.get_submodule(info.module)  # every stated stage exists
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


def test_wrong_input_says_what_was_expected():
    model = convzoo.create_model("resnet18")
    with pytest.raises(ValueError, match=r"expects 3 input channels .* got 1 \(input shape \[8, 1, 32, 32\]\)"):
        model(torch.randn(8, 1, 32, 32))
    model1d = convzoo.create_model("resnet18", ndim=1)
    with pytest.raises(ValueError, match="expects a 1D input of shape"):
        model1d(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("ndim,size", [(1, (64,)), (3, (16, 32, 32))])
def test_resnet_family_in_1d_and_3d(ndim, size):
    model = convzoo.create_model("resnet18", ndim=ndim, num_classes=5)
    assert model(torch.randn(2, 3, *size)).shape == (2, 5)
    cifar = convzoo.create_model("resnet20", ndim=ndim)
    assert cifar(torch.randn(2, 3, *size)).shape == (2, 10)
    # the same code in every dimension: 2D weights have one more kernel axis than 1D
    assert model.conv1.weight.dim() == ndim + 2


def test_v1_moves_the_stride_into_the_first_1x1():
    v15 = convzoo.create_model("resnet50")
    v1 = convzoo.create_model("resnet50", variant="v1")
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    with pytest.raises(ValueError, match="variant"):
        convzoo.create_model("resnet50", variant="v2")
