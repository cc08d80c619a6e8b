"""The registry: names, kinds, globbing, duplicates, load order, close-match errors, keyword checks, the model
interface and input errors."""

import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import convzoo
from convzoo import registry
from convzoo.registry import register_model

DETECTORS = ["fast_rcnn_r50_c4", "fast_rcnn_vgg16", "faster_rcnn_r50_c4", "faster_rcnn_r50_fpn", "faster_rcnn_vgg16",
             "keypoint_rcnn_r50_fpn", "mask_rcnn_r50_fpn"]


def test_list_and_glob():
    names = convzoo.list_models()
    assert names == sorted(names)
    assert {"vgg16", "resnet50", "resnet20", "plain110", "wrn28_10", "resnext101_64x4d"} <= set(names)
    assert convzoo.list_models("vgg1?_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def test_duplicate_name_is_an_error():
    def resnet18(**kwargs):
        return None

    with pytest.raises(ValueError, match=r"'resnet18' is already registered \(by convzoo\.models\.resnet\)"):
        register_model(resnet18)
    with pytest.raises(ValueError, match="already registered"):
        register_model(kind="detector")(resnet18)
    assert convzoo.get_model_builder("resnet18").__module__ == "convzoo.models.resnet"


def test_kinds():
    assert convzoo.list_models(kind="detector") == DETECTORS
    classifiers = convzoo.list_models(kind="classifier")
    assert "resnet50" in classifiers and not set(classifiers) & set(DETECTORS)
    segmenters = convzoo.list_models(kind="segmenter")
    assert "unet" in segmenters and convzoo.model_kind("unet") == "segmenter"
    assert convzoo.list_models(kind="supernet") == ["nasnet_search"]
    from convzoo.registry import KINDS

    assert sorted(sum((convzoo.list_models(kind=kind) for kind in KINDS), [])) == convzoo.list_models()
    assert convzoo.list_models("*_fpn", kind="detector") == ["faster_rcnn_r50_fpn", "keypoint_rcnn_r50_fpn",
                                                             "mask_rcnn_r50_fpn"]
    assert convzoo.list_models("vgg*", kind="detector") == []
    assert convzoo.model_kind("mask_rcnn_r50_fpn") == "detector"
    assert convzoo.model_kind("vgg16") == convzoo.model_kind("spec:CB-16-5-2-same,F,H-10") == "classifier"
    with pytest.raises(KeyError, match="did you mean .*resnet50"):
        convzoo.model_kind("resnet05")
    with pytest.raises(ValueError, match="unknown model kind 'detectors'; expected one of classifier, detector"):
        convzoo.list_models(kind="detectors")
    with pytest.raises(ValueError, match="unknown model kind"):
        register_model(kind="segmentation")


def test_user_model_with_a_new_name_and_kind(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # leave the registry as it was

    @register_model(kind="detector")
    def tiny_detector(**kwargs):
        return torch.nn.Identity()

    @register_model
    def tiny_classifier(**kwargs):
        return torch.nn.Identity()

    assert convzoo.model_kind("tiny_detector") == "detector" and convzoo.model_kind("tiny_classifier") == "classifier"
    assert "tiny_detector" in convzoo.list_models(kind="detector")
    assert isinstance(convzoo.create_model("tiny_classifier"), torch.nn.Identity)


def test_a_user_model_first_never_shrinks_the_list():
    # A fresh interpreter, so that the built-ins are not loaded yet when the user's model comes.
    code = textwrap.dedent("""
        import convzoo
        from convzoo.registry import register_model

        def resnet18(**kwargs):
            return None

        try:
            register_model(resnet18)
        except ValueError as error:
            print("error:", error)
        def my_net(**kwargs):
            return None
        register_model(my_net)
        print(len(convzoo.list_models()), convzoo.get_model_builder("resnet18").__module__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    error, counts = out.splitlines()
    assert error.startswith("error: a model named 'resnet18' is already registered (by convzoo.models.resnet)")
    assert counts == f"{len(convzoo.list_models()) + 1} convzoo.models.resnet"


def test_every_registering_module_is_in_a_builtin_package():
    # A built-in module outside BUILTIN_PACKAGES would be imported after the user's models, not before.
    root = pathlib.Path(convzoo.__file__).parent
    for path in root.rglob("*.py"):
        if path.name != "registry.py" and re.search(r"^\s*@?register_model\b", path.read_text(), re.MULTILINE):
            package = ".".join(("convzoo", *path.relative_to(root).parts[:-1]))
            assert package in registry.BUILTIN_PACKAGES, path


@pytest.mark.parametrize("kwargs,message", [
    ({"pretrained": True}, r"never downloads .*load_weights\(model, PATH, source='torchvision'\).*--pretrained FILE"),
    ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
    ({"num_classes": 2.5}, "num_classes must be a positive integer, got 2.5"),
    ({"num_classes": True}, "num_classes must be a positive integer, got True"),
    ({"in_chans": -1}, "in_chans must be a positive integer, got -1"),
    ({"in_chans": "3"}, "in_chans must be a positive integer, got '3'"),
])
def test_create_model_checks_its_keywords(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        convzoo.create_model("resnet20", **kwargs)
    assert "\n" not in str(info.value)


def test_create_model_accepts_what_it_checks():
    model = convzoo.create_model("resnet20", pretrained=False, num_classes=np.int64(4), in_chans=1)
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 4)


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


@pytest.mark.parametrize("name", convzoo.list_models())
def test_every_model_refuses_a_keyword_it_does_not_take(name):
    accepted = registry.model_keywords(name)
    assert accepted and "num_classes" in accepted  # every built-in states its keywords
    # refused before anything is built: no model of the registry is built by this test
    with pytest.raises(ValueError, match=rf"^{name}\(\) got an unexpected keyword 'not_an_option'; it takes ") as info:
        convzoo.create_model(name, not_an_option=1)
    assert "\n" not in str(info.value) and ", ".join(accepted) in str(info.value)


def test_keyword_errors_suggest_and_list():
    with pytest.raises(ValueError, match=r"resnet18\(\) got an unexpected keyword 'in_channels' \(did you mean "
                                         r"in_chans\?\); it takes num_classes, in_chans, ndim, groups"):
        convzoo.create_model("resnet18", in_channels=1)
    with pytest.raises(ValueError, match=r"got unexpected keywords 'in_chans', 'foo'; it takes backbone, "):
        convzoo.create_model("faster_rcnn_r50_fpn", in_chans=1, foo=2)
    # the architecture a builder fixes is not an option: VGG's batch norm, the plain nets' missing shortcuts
    for name, fixed in (("vgg11", "batch_norm_layers"), ("plain20", "shortcut"), ("nasnet_a_mobile", "stem_filters")):
        with pytest.raises(ValueError, match=f"unexpected keyword '{fixed}'"):
            convzoo.create_model(name, **{fixed: 1})
    assert registry.model_keywords("spec:CB-16-5-2-same,F,H-10") == ("spec", "num_classes", "in_chans",
                                                                      "input_size", "ndim")


def test_basic_blocks_refuse_resnext_options_like_torchvision():
    message = "BasicBlock only supports groups=1 and base_width=64"
    for kwargs in ({"groups": 32}, {"base_width": 128}, {"groups": 32, "base_width": 4}):
        with pytest.raises(ValueError, match=message):
            convzoo.create_model("resnet18", **kwargs)
    with torch.device("meta"):
        assert convzoo.create_model("resnet50", groups=32, base_width=4).layer1[0].conv2.groups == 32
        assert convzoo.create_model("resnet18", variant="v1").layer2[0].conv1.stride == (2, 2)  # no 1x1 to move


def test_a_user_builder_without_a_model_class_takes_any_keyword(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model
    def free_net(**kwargs) -> torch.nn.Module:  # nn.Module takes **kwargs: the keywords cannot be known
        return torch.nn.Linear(kwargs["width"], 2)

    @register_model
    def strict_net(width: int = 3) -> torch.nn.Module:
        return torch.nn.Linear(width, 2)

    assert registry.model_keywords("free_net") is None
    assert convzoo.create_model("free_net", width=4).in_features == 4
    with pytest.raises(ValueError, match=r"strict_net\(\) got an unexpected keyword 'depth'; it takes width"):
        convzoo.create_model("strict_net", depth=2)
