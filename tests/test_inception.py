"""GoogLeNet (Table 1), BN-Inception (Figure 5; NASNet paper Table 3 counts) and Inception-v3 (torchvision interop)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import convzoo
from convzoo.summary import summary


def meta_summary(name: str, **kwargs):
    """Parameter and MAC counts from shapes alone: the model and the input live on the meta device."""
    with torch.device("meta"):
        model = convzoo.create_model(name, **kwargs)
    return summary(model, depth=1, device="meta")


# GoogLeNet Table 1, "ops" column in millions of multiply-adds (inception 3a-4e and 5b; 5a is inconsistent, see
# googlenet.py). E.g. 3a at 28x28 from 192 channels: 784 * (192*64 + 192*96 + 96*9*128 + 192*16 + 16*25*32
# + 192*32) = 784 * 163,328 = 128.05 M.
GOOGLENET_TABLE1_OPS = {"inception3a": 128e6, "inception3b": 304e6, "inception4a": 73e6, "inception4b": 88e6,
                        "inception4c": 100e6, "inception4d": 119e6, "inception4e": 170e6, "inception5b": 71e6}


def test_googlenet_reproduces_table1_ops():
    rows = {r.name: r for r in meta_summary("googlenet").rows}
    for name, ops in GOOGLENET_TABLE1_OPS.items():
        assert rows[name].macs == pytest.approx(ops, rel=0.03), name
    # 3a: the weights above plus one bias per filter (64+96+128+16+32+32 = 368): 163,696 parameters
    assert rows["inception3a"].params == 163_696


def test_googlenet_grid_sizes_and_parameters():
    table = meta_summary("googlenet")
    shapes = {r.name: r.output_shape for r in table.rows}
    # ceil-mode poolings: 224 -> 112 (conv1) -> 56 -> 28 -> 14 -> 7
    assert shapes["conv1"] == (64, 112, 112) and shapes["maxpool1"] == (64, 56, 56)
    assert shapes["maxpool2"] == (192, 28, 28) and shapes["maxpool3"] == (480, 14, 14)
    assert shapes["maxpool4"] == (832, 7, 7) and shapes["inception5b"] == (1024, 7, 7)
    # each aux head: conv 512*128 + 128, FC 2048*1024 + 1024, FC 1024*1000 + 1000 = 3,188,840 (4a; 4d has 528 in)
    aux = 3_188_840 + 3_190_888
    assert table.total_params == convzoo.count_params(convzoo.create_model("googlenet", aux_logits=False)) + aux
    assert table.total_params - aux == 6_998_552


def test_googlenet_is_the_papers_network():
    model = convzoo.create_model("googlenet")
    modules = list(model.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in modules) == 2
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    assert sum(c.kernel_size == (5, 5) for c in convs) == 9  # one real 5x5 branch per inception module
    assert [m.p for m in modules if isinstance(m, nn.Dropout)] == [0.7, 0.7, 0.4]


def test_bn_inception_counts_match_nasnet_table3():
    table = meta_summary("bn_inception")
    assert table.total_params == pytest.approx(11.2e6, rel=0.01)
    assert table.total_macs == pytest.approx(1.94e9, rel=0.01)
    rows = {r.name: r for r in table.rows}
    # the separable stem: depthwise 3*8*49 + pointwise 24*64 = 2,712 weights (GoogLeNet Table 1's "2.7K") and
    # 112*112*2,712 = 34.0 M mult-adds (its "34M"); BN adds 2*64
    assert rows["conv1"].params == 2_712 + 128 and rows["conv1"].macs == pytest.approx(34.0e6, rel=0.001)
    # Figure 5's output column: 256, 320, then 576 from 3c to 4d, 1024 from 4e on
    widths = [rows[f"inception{n}"].output_shape[0] for n in ("3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a")]
    assert widths == [256, 320, 576, 576, 576, 576, 576, 1024, 1024]
    plain = meta_summary("bn_inception", separable_stem=False)
    assert plain.total_macs - table.total_macs == 112 * 112 * (3 * 49 * 64 - 2_712)


def test_inception_v3_counts():
    table = meta_summary("inception_v3")
    assert table.total_params == 27_161_264  # torchvision's documented count
    assert table.total_macs == pytest.approx(5.71e9, rel=0.01)  # torchvision's documented "GFLOPS" (= MACs)
    assert {r.name: r.output_shape for r in table.rows}["Mixed_7c"] == (2048, 8, 8)


def _randomize_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)


@pytest.mark.parametrize("aux_logits", [True, False])
def test_inception_v3_state_dict_equals_torchvision(aux_logits):
    with torch.device("meta"):
        reference = torchvision.models.inception_v3(weights=None, init_weights=False, aux_logits=aux_logits)
        model = convzoo.create_model("inception_v3", aux_logits=aux_logits)
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == v.shape for k, v in theirs.items())
    assert convzoo.count_params(model) == convzoo.count_params(reference)


def _compare_with_torchvision(transform_input: bool, size: int, batch: int) -> float:
    reference = torchvision.models.inception_v3(weights=None, init_weights=False, transform_input=transform_input)
    _randomize_bn(reference)
    model = convzoo.create_model("inception_v3", transform_input=transform_input)
    model.load_state_dict(reference.state_dict())
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        return (model.eval()(x) - reference.eval()(x)).abs().max().item()


@pytest.mark.parametrize("transform_input", [False, True])
def test_inception_v3_logits_equal_torchvision(transform_input):
    assert _compare_with_torchvision(transform_input, size=91, batch=1) <= 1e-5


@pytest.mark.slow
def test_inception_v3_logits_equal_torchvision_at_299():
    assert _compare_with_torchvision(False, size=299, batch=2) <= 1e-5


@pytest.mark.parametrize("name, size", [("googlenet", 64), ("bn_inception", 64), ("inception_v3", 91)])
def test_channels_last_gives_the_same_logits(name, size):
    model = convzoo.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
