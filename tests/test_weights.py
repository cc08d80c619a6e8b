"""Loading torchvision (and timm) checkpoints into convzoo models: identical logits, clear errors, no unpickling."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torchvision.models as tvm
from safetensors.torch import save_file
from torch import nn

from convzoo import create_model, list_models, load_weights, save_weights
from convzoo.models import googlenet, inception_v3, resnet, vgg
from convzoo.weights import LoadReport, WeightsMismatchError, files, head_keys, read_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")


def randomize_batch_norm(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every BatchNorm non-default scale, shift and statistics, so that loading them is actually checked."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return model


def build_uninitialized(builder, **kwargs) -> nn.Module:
    """The model with allocated but uninitialized tensors (skips a slow initialization; the test loads them all)."""
    with torch.device("meta"):
        model = builder(**kwargs)
    return model.to_empty(device="cpu")


def assert_same_logits(reference: nn.Module, model: nn.Module, input_size: tuple[int, ...]) -> None:
    x = torch.randn(2, *input_size)
    with torch.no_grad():
        expected, actual = reference.eval()(x), model.eval()(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-5


# Every torchvision classifier that convzoo has under the same name (except GoogLeNet, whose torchvision version
# is another network): names and shapes must agree one to one. Built on the meta device: no memory, no init.
SHARED_NAMES = sorted(set(tvm.list_models(module=tvm)) & set(list_models()) - {"googlenet"})


def test_the_issue_s_families_are_all_shared_with_torchvision() -> None:
    required = {"vgg11", "vgg16", "vgg19_bn", "resnet18", "resnet50", "resnet152", "wide_resnet50_2",
                "wide_resnet101_2", "resnext50_32x4d", "resnext101_64x4d", "inception_v3"}
    assert required <= set(SHARED_NAMES)


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_every_torchvision_state_dict_fits_by_name_and_shape(name: str) -> None:
    with torch.device("meta"):
        reference = tvm.get_model(name, weights=None, num_classes=7)
        model = create_model(name, num_classes=7)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


# (torchvision builder, convzoo builder, builder kwargs for torchvision, input size): one model per family.
LOGIT_CASES = [
    pytest.param(tvm.resnet18, resnet.resnet18, {}, (3, 64, 64), id="resnet18"),
    pytest.param(tvm.resnet50, resnet.resnet50, {}, (3, 64, 64), id="resnet50"),
    pytest.param(tvm.resnext50_32x4d, resnet.resnext50_32x4d, {}, (3, 64, 64), id="resnext50_32x4d"),
    pytest.param(tvm.vgg11_bn, vgg.vgg11_bn, {"init_weights": False}, (3, 32, 32), id="vgg11_bn"),
    pytest.param(tvm.inception_v3, inception_v3.inception_v3, {"init_weights": False}, (3, 75, 75),
                 id="inception_v3"),
    pytest.param(tvm.wide_resnet50_2, resnet.wide_resnet50_2, {}, (3, 64, 64), id="wide_resnet50_2",
                 marks=pytest.mark.slow),
    pytest.param(tvm.vgg16, vgg.vgg16, {"init_weights": False}, (3, 32, 32), id="vgg16", marks=pytest.mark.slow),
    pytest.param(tvm.resnext101_64x4d, resnet.resnext101_64x4d, {}, (3, 64, 64), id="resnext101_64x4d",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("reference_builder, builder, kwargs, input_size", LOGIT_CASES)
def test_torchvision_weights_give_identical_logits(reference_builder, builder, kwargs, input_size, tmp_path) -> None:
    reference = randomize_batch_norm(reference_builder(weights=None, num_classes=10, **kwargs))
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    model = build_uninitialized(builder, num_classes=10)
    report = load_weights(model, path, source="torchvision")
    assert len(report.loaded) == len(model.state_dict()) and not report.reinitialized
    assert_same_logits(reference, model, input_size)


@pytest.fixture(scope="module")
def resnet18_reference() -> nn.Module:
    torch.manual_seed(3)
    return randomize_batch_norm(tvm.resnet18(weights=None)).eval()


@pytest.mark.parametrize("layout", ["plain", "model", "state_dict+module.", "model_state_dict+epoch", "safetensors"])
def test_checkpoint_files_and_containers(layout: str, resnet18_reference: nn.Module, tmp_path) -> None:
    state = resnet18_reference.state_dict()
    path = tmp_path / ("weights.safetensors" if layout == "safetensors" else "checkpoint.pth")
    if layout == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        wrapped = {
            "plain": state,
            "model": {"model": state, "optimizer": {"lr": 0.1}},
            "state_dict+module.": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
            "model_state_dict+epoch": {"model_state_dict": state, "epoch": 7, "best": 0.5},
        }[layout]
        torch.save(wrapped, path)
    model = resnet.resnet18()
    load_weights(model, path, source="torchvision")
    assert_same_logits(resnet18_reference, model, (3, 48, 48))


def test_a_file_without_a_known_suffix_is_recognized_by_its_content(resnet18_reference, tmp_path) -> None:
    torch.save(resnet18_reference.state_dict(), tmp_path / "weights")
    save_file(resnet18_reference.state_dict(), tmp_path / "weights2")
    for name in ("weights", "weights2"):
        assert read_state_dict(tmp_path / name).keys() == resnet18_reference.state_dict().keys()
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_state_dict(tmp_path / "notes.txt")


class _Payload:
    """An object whose unpickling would run code: loading must refuse it before that happens."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran() -> None:
    _Payload.ran = True


def test_never_unpickles_arbitrary_objects(resnet18_reference, tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": resnet18_reference.state_dict(), "extra": _Payload()}, path)
    with pytest.raises(ValueError, match="never unpickles"):
        load_weights(resnet.resnet18(), path, source="torchvision")
    assert not _Payload.ran
    assert pickle.loads(pickle.dumps(_Payload())) is None and _Payload.ran  # the payload is real
    _Payload.ran = False


def test_other_classes_need_ignore_mismatched_head(resnet18_reference, tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_reference.state_dict(), path)
    model = resnet.resnet18(num_classes=10)
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(model, path, source="torchvision")
    message = str(info.value)
    assert "fc.weight [1000, 512] in the file vs [10, 512] in the model" in message
    assert "ignore_mismatched_head=True" in message
    fc_before = model.fc.weight.detach().clone()
    report = load_weights(model, path, source="torchvision", ignore_mismatched_head=True)
    assert sorted(report.reinitialized) == ["fc.bias", "fc.weight"] and len(report.loaded) == 120
    assert torch.equal(model.fc.weight, fc_before)  # the new classifier keeps its fresh initialization
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        features = nn.Sequential(*list(resnet18_reference.children())[:-1])(x).flatten(1)
        torch.testing.assert_close(model.eval().forward_head(model.forward_features(x), pre_logits=True), features,
                                   rtol=0, atol=1e-5)
    assert "reinitialized 2 (fc.weight, fc.bias)" in str(report)


def test_another_architecture_lists_missing_unexpected_and_shapes(resnet18_reference) -> None:
    state = resnet18_reference.state_dict()
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(resnet.resnet34(), state, source="torchvision")
    message = str(info.value)
    assert "do not fit ResNet" in message and "missing from the file: layer1.2.conv1.weight" in message
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(resnet.resnet50(), state, source="torchvision")
    message = str(info.value)
    assert "missing from the file: layer1.0.conv3.weight" in message
    assert "layer1.0.conv1.weight [64, 64, 3, 3] in the file vs [64, 64, 1, 1] in the model" in message
    with pytest.raises(WeightsMismatchError, match=r"unexpected \(in the file, not in the model\): head2.weight"):
        load_weights(resnet.resnet18(), {**state, "head2.weight": torch.zeros(3)}, source="torchvision")
    with pytest.raises(WeightsMismatchError, match="no tensor of the file fits"):
        load_weights(vgg.vgg11(), state, source="torchvision")


def test_non_strict_loads_what_fits_and_reports_the_rest(resnet18_reference) -> None:
    model = resnet.resnet34()
    report = load_weights(model, resnet18_reference.state_dict(), source="torchvision", strict=False)
    assert isinstance(report, LoadReport) and report.missing and not report.unexpected
    assert torch.equal(model.layer1[0].conv1.weight, resnet18_reference.layer1[0].conv1.weight)
    assert "layer1.2.conv1.weight" in report.missing


def test_inception_aux_head_is_skipped_or_reinitialized() -> None:
    reference = randomize_batch_norm(tvm.inception_v3(weights=None, init_weights=False, aux_logits=True))
    model = build_uninitialized(inception_v3.inception_v3, aux_logits=False)
    report = load_weights(model, reference.state_dict(), source="torchvision")
    assert report.skipped and all(k.startswith("AuxLogits.") for k in report.skipped)
    assert_same_logits(reference, model, (3, 75, 75))
    model = build_uninitialized(inception_v3.inception_v3, num_classes=5)  # only the report is checked
    report = load_weights(model, reference.state_dict(), source="torchvision", ignore_mismatched_head=True)
    assert sorted(report.reinitialized) == ["AuxLogits.fc.bias", "AuxLogits.fc.weight", "fc.bias", "fc.weight"]
    assert {"fc.weight", "AuxLogits.fc.weight"} <= head_keys(model)


def test_torchvision_googlenet_is_named_incompatible() -> None:
    reference = tvm.googlenet(weights=None, aux_logits=False, init_weights=False)
    with pytest.raises(WeightsMismatchError, match="torchvision's googlenet is not the paper's"):
        load_weights(googlenet.googlenet(aux_logits=False), reference.state_dict(), source="torchvision")


def test_unknown_source_and_missing_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown weights source 'keras'"):
        load_weights(resnet.resnet18(), {}, source="keras")
    with pytest.raises(FileNotFoundError):
        load_weights(resnet.resnet18(), tmp_path / "absent.pth")


def test_save_weights_round_trip_and_atomic_write(tmp_path, monkeypatch) -> None:
    model = resnet.resnet18(num_classes=3).eval()
    randomize_batch_norm(model)
    path = save_weights(model, tmp_path / "sub" / "model.safetensors", metadata={"model": "resnet18"})
    again = resnet.resnet18(num_classes=3)
    report = load_weights(again, path)
    assert len(report.loaded) == len(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    before = path.read_bytes()

    def crash_half_way(tensors, filename, metadata):
        with open(filename, "wb") as file:
            file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(files, "save_file", crash_half_way)
    with pytest.raises(OSError, match="disk full"):  # the old file stays whole and no temporary file is left
        save_weights(model, path)
    assert path.read_bytes() == before and os.listdir(path.parent) == ["model.safetensors"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="suffix"):
        save_weights(model, tmp_path / "model.pth")


def test_save_weights_handles_shared_and_channels_last_tensors(tmp_path) -> None:
    shared = torch.randn(4, 4)
    state = {"a": shared, "b": shared, "c": torch.randn(1, 3, 4, 4).to(memory_format=torch.channels_last)}
    path = save_weights(state, tmp_path / "shared.safetensors")
    loaded = read_state_dict(path)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_timm_resnet_weights_give_identical_logits() -> None:
    timm = pytest.importorskip("timm")
    reference = randomize_batch_norm(timm.create_model("resnet18", pretrained=False, num_classes=10))
    model = resnet.resnet18(num_classes=10)
    load_weights(model, reference.state_dict(), source="timm")
    assert_same_logits(reference, model, (3, 48, 48))


def test_nasnet_a_large_has_timm_s_names_and_shapes() -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model("nasnetalarge", pretrained=False, num_classes=7)
        model = create_model("nasnet_a_large", num_classes=7)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_timm_nasnet_weights_give_identical_logits_narrow() -> None:
    # timm's NASNet-A Large topology (6 cells per stage, stem cells, skip_reduction_layer_input) at 1/21 of the
    # width: penultimate 192 = 24 x 8 filters, stem 16 (the real one: 4032 = 24 x 168, stem 96). Same code path.
    pytest.importorskip("timm")
    from timm.models.nasnet import NASNetALarge

    from convzoo.models.nasnet import NASNetA
    from convzoo.models.nasnet_genotype import NASNET_A

    reference = randomize_batch_norm(NASNetALarge(num_classes=10, stem_size=16, num_features=192))
    kwargs = {"genotype": NASNET_A, "num_cells": 6, "filters": 192 // 24, "stem": "imagenet", "stem_filters": 16,
              "skip_reduction_layer_input": True, "input_size": 32, "num_classes": 10}
    model = NASNetA(**kwargs, count_include_pad=True)
    report = load_weights(model, reference.state_dict(), source="timm")
    assert len(report.loaded) == len(model.state_dict()) and not report.notes
    assert_same_logits(reference, model, (3, 32, 32))
    tf_pooling = NASNetA(**kwargs)
    assert "count_include_pad=True" in load_weights(tf_pooling, reference.state_dict(), source="timm").notes[0]


@pytest.mark.slow
def test_timm_nasnetalarge_weights_give_identical_logits(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    from convzoo.models.nasnet import nasnet_a_large

    reference = randomize_batch_norm(timm.create_model("nasnetalarge", pretrained=False, num_classes=10))
    save_weights(reference, tmp_path / "nasnetalarge.safetensors")
    model = build_uninitialized(nasnet_a_large, num_classes=10, count_include_pad=True)
    load_weights(model, tmp_path / "nasnetalarge.safetensors", source="timm")
    assert_same_logits(reference, model, (3, 331, 331))


@pytest.mark.parametrize("input_size", [pytest.param(32, id="32"), pytest.param(224, id="224", marks=pytest.mark.slow)])
def test_timm_vgg_convolutional_classifier_becomes_linear(input_size: int) -> None:
    timm = pytest.importorskip("timm")
    reference = randomize_batch_norm(timm.create_model("vgg11_bn", pretrained=False, num_classes=10))
    model = build_uninitialized(vgg.vgg11_bn, num_classes=10)
    report = load_weights(model, reference.state_dict(), source="timm")
    assert len(report.loaded) == len(model.state_dict())
    assert model.classifier[0].weight.shape == (4096, 512 * 7 * 7)
    assert_same_logits(reference, model, (3, input_size, input_size))


def test_timm_inception_v3_has_no_aux_head() -> None:
    timm = pytest.importorskip("timm")
    reference = randomize_batch_norm(timm.create_model("inception_v3", pretrained=False, num_classes=10))
    with pytest.raises(WeightsMismatchError, match="build the model with aux_logits=False"):
        load_weights(build_uninitialized(inception_v3.inception_v3, num_classes=10), reference.state_dict(),
                     source="timm")
    model = build_uninitialized(inception_v3.inception_v3, num_classes=10, aux_logits=False)
    load_weights(model, reference.state_dict(), source="timm")
    assert_same_logits(reference, model, (3, 75, 75))


def test_a_v1_resnet_is_told_that_torchvision_weights_are_v1_5() -> None:
    model = build_uninitialized(resnet.resnet50, variant="v1")
    report = load_weights(model, model.state_dict(), source="torchvision")  # the names fit; the network differs
    assert len(report.notes) == 1 and "v1.5 layout" in report.notes[0] and "note: " in str(report)
    assert not load_weights(model, model.state_dict(), source="convzoo").notes
