"""NASNet-A: the paper's counts (Tables 2 and 3), cells from the genotype table, timm nasnetalarge interop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.models.nasnet import Cell, StackedSeparable
from convzoo.models.nasnet_genotype import NASNET_A_NORMAL, NASNET_A_REDUCTION
from convzoo.summary import summary


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name, params, macs", [
    ("nasnet_a_mobile", 5.3e6, 564e6),  # Table 3: 4 @ 1056 at 224x224
    ("nasnet_a_large", 88.9e6, 23.8e9),  # Table 2: 6 @ 4032 at 331x331
])
def test_counts_match_the_paper(name, params, macs):
    table = summary(meta_model(name), device="meta")
    assert table.total_params == pytest.approx(params, rel=0.01)
    assert table.total_macs == pytest.approx(macs, rel=0.01)


def test_cells_are_built_from_the_genotype():
    model = meta_model("nasnet_a_mobile")
    cells = {name: m for name, m in model.named_children() if isinstance(m, Cell)}
    # 2 stem cells + 3 stages of 4 normal cells + 2 reductions
    assert len(cells) == 16 and sum(c.genotype is NASNET_A_REDUCTION for c in cells.values()) == 4
    for cell in cells.values():
        for k, block in enumerate(cell.genotype.blocks):
            for side, (op, _) in zip(("left", "right"), block):
                assert isinstance(getattr(cell, f"comb_iter_{k}_{side}"), StackedSeparable) == op.startswith("sep")
    # widths: a normal cell concatenates h_{i-1} and its 5 blocks (6 x filters), a reduction cell 4 blocks
    assert cells["cell_3"].out_channels == 6 * 44 and cells["reduction_cell_0"].out_channels == 4 * 88
    assert cells["cell_11"].out_channels == 1056
    assert cells["cell_0"].genotype is NASNET_A_NORMAL and cells["cell_0"].prev_mode == "factorized"
    assert cells["cell_1"].prev_mode == "1x1" and cells["cell_stem_0"].prev_mode == "raw"


def test_cell_after_reduction_takes_the_right_previous_state():
    # mobile: h_{i-1} of the cell after a reduction is the last normal cell; large: the one before it
    mobile, large = dict(meta_model("nasnet_a_mobile").wiring()), dict(meta_model("nasnet_a_large").wiring())
    assert mobile["cell_4"] == ("reduction_cell_0", "cell_3")
    assert large["cell_6"] == ("reduction_cell_0", "cell_4")
    assert large["reduction_cell_0"] == ("cell_5", "cell_4") and large["cell_0"] == ("cell_stem_1", "cell_stem_0")


def test_forward_backward_and_channels_last():
    model = convzoo.create_model("nasnet_a_mobile", num_classes=7)
    x = torch.randn(2, 3, 32, 32)  # 32 -> 15 (conv0) -> 8 -> 4 (stem cells) -> 4, 2, 1
    model.train()
    model(x).logsumexp(1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    assert expected.shape == (2, 7)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_large_has_timms_parameter_names():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model("nasnetalarge")
    model = meta_model("nasnet_a_large")
    ours, theirs = model.state_dict(), reference.state_dict()
    assert set(ours) == set(theirs)
    assert all(ours[k].shape == v.shape for k, v in theirs.items())
    assert convzoo.count_params(model) == convzoo.count_params(reference) == 88_753_150


@pytest.mark.slow
def test_large_logits_equal_timm():
    timm = pytest.importorskip("timm")
    reference = timm.create_model("nasnetalarge").eval()
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model = convzoo.create_model("nasnet_a_large", count_include_pad=True).eval()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 331, 331)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5


def test_nasnet_a_genotype_reproduces_nasnet_a_mobile(tmp_path):
    from convzoo.models.nasnet_genotype import NASNET_A

    (tmp_path / "a.json").write_text(NASNET_A.to_json())
    built, mobile = meta_model("nasnet", genotype=str(tmp_path / "a.json")), meta_model("nasnet_a_mobile")
    assert [(k, v.shape) for k, v in built.state_dict().items()] == \
        [(k, v.shape) for k, v in mobile.state_dict().items()]
    assert convzoo.count_params(built) == 5_289_978


def _same_logits(kwargs: dict, reference: nn.Module, size: int) -> None:
    from convzoo.models.nasnet_genotype import NASNET_A

    reference.eval()
    model = convzoo.create_model("nasnet", genotype=NASNET_A.to_json(), **kwargs).eval()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_nasnet_a_genotype_gives_the_same_logits_small():
    from convzoo.models.nasnet import NASNet
    from convzoo.models.nasnet_genotype import NASNET_A

    torch.manual_seed(0)
    kwargs = {"num_cells": 1, "filters": 8, "stem_filters": 8, "num_classes": 5}
    reference = NASNet(genotype=NASNET_A, stem="imagenet", skip_reduction_layer_input=False, input_size=224, **kwargs)
    _same_logits(kwargs, reference, 32)


@pytest.mark.slow
def test_nasnet_a_genotype_gives_the_logits_of_nasnet_a_mobile():
    torch.manual_seed(0)
    _same_logits({"num_classes": 10}, convzoo.create_model("nasnet_a_mobile", num_classes=10), 64)


def test_nasnet_a_cifar_count_matches_table_1():
    # NASNet-A (6 @ 768) on CIFAR-10: 3.3 M parameters (Table 1; no auxiliary head here)
    model = meta_model("nasnet", stem="cifar", num_cells=6, filters=32, num_classes=10)
    assert convzoo.count_params(model) == pytest.approx(3.3e6, rel=0.02)
