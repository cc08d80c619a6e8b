"""The video ResNets of Tran et al. 2018 against torchvision.models.video: names, parameter counts, logits, the
(2+1)D width rule, the MC3 layout, the input contract and the summary command."""

from __future__ import annotations

import pytest
import torch
import torchvision.models.video as tvv
from torch import nn

from convzoo import create_model, load_weights
from convzoo.cli import main
from convzoo.model_table import shape_only
from convzoo.models.video import VideoBasicBlock, mid_channels
from convzoo.summary import count_params

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ["r3d_18", "mc3_18", "r2plus1d_18"]


def randomize_batch_norm(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-default BN scale, shift and statistics, so that loading them is checked in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return model


@pytest.mark.parametrize("name", NAMES)
def test_names_shapes_and_parameter_counts_equal_torchvision(name):
    with shape_only():  # meta parameters: no memory, no initialization
        reference, model = getattr(tvv, name)(weights=None), create_model(name)
    shapes = {k: v.shape for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    expected = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}[name]  # torchvision's meta
    assert count_params(model) == sum(p.numel() for p in reference.parameters()) == expected


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_weights_give_identical_logits(name, tmp_path):
    reference = randomize_batch_norm(getattr(tvv, name)(weights=None, num_classes=10)).eval()
    nn.init.normal_(reference.fc.weight, std=0.5)  # logits of about 1 (torchvision's std 0.01 gives about 0.1)
    nn.init.normal_(reference.fc.bias)
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    with torch.device("meta"):
        model = create_model(name, num_classes=10)
    model = model.to_empty(device="cpu")  # uninitialized: every tensor comes from the file
    report = load_weights(model, path, source="torchvision", strict=True)
    assert len(report.loaded) == len(model.state_dict()) and not report.reinitialized
    x = torch.randn(1, 3, 4, 56, 56)
    with torch.no_grad():
        expected, actual = reference(x), model.eval()(x)
    assert actual.shape == (1, 10) and expected.abs().max() > 0.5
    assert torch.allclose(actual, expected, rtol=0, atol=1e-6)


def test_mid_channels_is_the_papers_rule():
    # M = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i)), t = d = 3:
    assert mid_channels(64, 64) == 144  # 27 * 64 * 64 / (576 + 192) = 110592 / 768 = 144
    assert mid_channels(64, 128) == 230  # 27 * 64 * 128 / (576 + 384) = 221184 / 960 = 230.4
    assert mid_channels(128, 128) == 288  # 27 * 128 * 128 / (1152 + 384) = 442368 / 1536 = 288
    assert mid_channels(3, 64, t=3, d=7) == 83  # 3 * 49 * 3 * 64 / (147 + 192) = 28224 / 339 = 83.3
    # The pair has (about) the parameters of the 3x3x3 convolution: 144 * (9 * 64 + 3 * 64) = 27 * 64 * 64.
    assert 144 * (9 * 64 + 3 * 64) == 27 * 64 * 64


def test_r2plus1d_widths_follow_torchvision():
    with shape_only():
        model = create_model("r2plus1d_18")
    assert model.stem[0].out_channels == 45  # torchvision's stem constant (the rule would give 83)
    block = model.layer2[0]
    # Both convolutions of a stage's first block take M from (64, 128), as torchvision's (the rule: 230, then 288).
    assert (block.conv1[0][0].out_channels, block.conv2[0][0].out_channels) == (230, 230)
    assert model.layer2[1].conv1[0][0].out_channels == 288
    assert block.conv1[0][0].kernel_size == (1, 3, 3) and block.conv1[0][3].kernel_size == (3, 1, 1)
    assert block.conv1[0][0].stride == (1, 2, 2) and block.conv1[0][3].stride == (2, 1, 1)


def test_mc3_is_3d_in_conv1_and_conv2_x_then_2d():
    with shape_only():
        model = create_model("mc3_18")
    kernels = [model.get_submodule(f"layer{i}.0.conv1.0").kernel_size for i in range(1, 5)]
    assert model.stem[0].kernel_size == (3, 7, 7) and kernels == [(3, 3, 3), (1, 3, 3), (1, 3, 3), (1, 3, 3)]
    assert model.layer2[0].downsample[0].stride == (1, 2, 2)  # a 2D stage never strides in time


@pytest.mark.parametrize("name, frames", [("r3d_18", (4, 4, 2, 1, 1)), ("mc3_18", (4, 4, 4, 4, 4)),
                                          ("r2plus1d_18", (4, 4, 2, 1, 1))])
def test_feature_info_gives_channels_and_spatial_strides(name, frames):
    with shape_only():
        model = create_model(name, num_classes=5)
    x = torch.zeros(1, 3, 4, 32, 32, device="meta")
    shapes = {}
    for info in model.feature_info:
        model.get_submodule(info.module).register_forward_hook(
            lambda _m, _i, out, key=info.module: shapes.__setitem__(key, tuple(out.shape)))
    assert model(x).shape == (1, 5)
    # Frames 4 -> 4, 4, 2, 1, 1 (R3D, R(2+1)D: time strides from conv3_x on; 1 frame stays 1) or 4 throughout (MC3).
    expected = [(1, info.channels, t, 32 // info.stride, 32 // info.stride)
                for info, t in zip(model.feature_info, frames)]
    assert [shapes[info.module] for info in model.feature_info] == expected
    assert [info.stride for info in model.feature_info] == [2, 2, 4, 8, 16]


def test_input_contract_and_options():
    model = create_model("mc3_18", num_classes=3, in_chans=1, zero_init_residual=True)
    assert model.default_input_size == (1, 16, 112, 112) and model.first_conv == "stem.0"
    assert all(torch.count_nonzero(m.conv2[1].weight) == 0 for m in model.modules() if isinstance(m, VideoBasicBlock))
    with pytest.raises(ValueError, match=r"expects a 3D input of shape \[N, 1, D, H, W\]"):
        model(torch.zeros(1, 1, 32, 32))  # an image, not a clip
    model.reset_classifier(7)
    assert model.get_classifier().out_features == 7 and model.eval()(torch.zeros(2, 1, 2, 16, 16)).shape == (2, 7)
    with pytest.raises(ValueError, match="ndim must be 3"):
        create_model("r3d_18", ndim=2)
    assert create_model("r3d_18").num_classes == 400  # Kinetics-400, as torchvision


def test_cli_summary_takes_a_clip_size(capsys):
    assert main(["summary", "r2plus1d_18", "--input-size", "3,4,32,32"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0.conv1.0.0" in out and "1x3x3/1x1x1" in out and "64x4x16x16" in out
    assert "31,505,325 parameters" in out


@pytest.mark.slow
def test_cli_summary_at_8_frames_of_112(capsys):
    assert main(["summary", "r2plus1d_18", "--input-size", "3,8,112,112"]) == 0
    out = capsys.readouterr().out
    assert "512x1x7x7" in out and "20.260 GMACs" in out  # half the 16-frame figure, 40.519 G


def test_width_scales_every_stage_and_keeps_the_rule():
    model = create_model("r2plus1d_18", width=8, num_classes=40, in_chans=1)
    assert [model.feature_info[i].channels for i in range(5)] == [8, 8, 16, 32, 64]
    assert model.stem[0].out_channels == 5  # 45 * 8 // 64
    assert model.layer2[1].conv1[0][0].out_channels == mid_channels(16, 16) == 36  # 27 * 16 * 16 / (144 + 48)
    assert model(torch.zeros(2, 1, 4, 16, 16)).shape == (2, 40)
    with shape_only():
        assert count_params(create_model("r3d_18", width=64)) == 33_371_472  # the default is the paper's width
    with pytest.raises(ValueError, match="width .* must be at least 1"):
        create_model("mc3_18", width=0)


@pytest.mark.slow
def test_cli_summary_at_16_frames_of_112(capsys):
    assert main(["summary", "r3d_18", "--input-size", "3,16,112,112"]) == 0
    out = capsys.readouterr().out
    assert "512x2x7x7" in out and "40.697 GMACs" in out and "33,371,472 parameters" in out
