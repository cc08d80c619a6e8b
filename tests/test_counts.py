"""Parameter and multiply-add counts against torchvision (exactly) and against the papers' tables."""

import pytest
import torch
import torchvision

import convzoo

TORCHVISION_TWINS = [
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
]


def _meta(builder, **kwargs):
    with torch.device("meta"):  # no memory, no initialization: only shapes
        return builder(**kwargs)


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_same_parameters_as_torchvision(name):
    ours = _meta(convzoo.get_model_builder(name))
    theirs = _meta(getattr(torchvision.models, name))
    assert convzoo.count_params(ours) == sum(p.numel() for p in theirs.parameters())
    # same names and shapes, so torchvision checkpoints load as they are
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


# The papers print parameter counts in millions with two or three digits: our count, rounded to the printed
# precision, must equal the printed figure. (A relative 0.5% cannot hold for two-digit figures: ResNet-110 has
# 1.728 M parameters, printed 1.7, 1.6% away; ResNet-32 has 0.464 M, printed 0.46, 0.9% away.)
PAPER_PARAMS = [
    ("resnet20", "0.27"), ("resnet32", "0.46"), ("resnet44", "0.66"), ("resnet56", "0.85"), ("resnet110", "1.7"),
    ("resnet1202", "19.4"),  # He et al. 2015, Table 6
    ("wrn28_10", "36.5"), ("wrn40_4", "8.9"),  # Zagoruyko & Komodakis 2016, Table 4
    ("vgg16_c", "134"), ("vgg16", "138"), ("vgg19", "144"),  # Simonyan & Zisserman 2014, Table 2
]


@pytest.mark.parametrize("name,printed", PAPER_PARAMS)
def test_parameters_match_the_papers(name, printed):
    params = convzoo.count_params(_meta(convzoo.get_model_builder(name))) / 1e6
    decimals = len(printed.partition(".")[2])
    assert f"{params:.{decimals}f}" == printed  # e.g. ResNet-110: 1.728 M -> "1.7"


def test_plain_nets_have_the_resnets_parameters():
    # option A shortcuts have no parameters (He et al. 2015, Section 4.2)
    for depth in (20, 56):
        plain = convzoo.count_params(_meta(convzoo.get_model_builder(f"plain{depth}")))
        assert plain == convzoo.count_params(_meta(convzoo.get_model_builder(f"resnet{depth}")))


# He et al. 2015, Table 1 "FLOPs" (multiply-adds) at 224x224; v1 layout (stride in the first 1x1).
# ResNet-34 (3.66 G) and ResNet-50 (3.86 G) are printed truncated as 3.6 and 3.8: they are 1.8% and 1.5% off,
# the others within 1%.
PAPER_MACS = [("resnet18", 1.8, 0.01), ("resnet34", 3.6, 0.02), ("resnet50", 3.8, 0.02), ("resnet101", 7.6, 0.01),
              ("resnet152", 11.3, 0.01)]


@pytest.mark.parametrize("name,gmacs,tolerance", PAPER_MACS)
def test_multiply_adds_match_table_1(name, gmacs, tolerance):
    model = convzoo.create_model(name, variant="v1")
    macs = convzoo.summary(model, (3, 224, 224)).total_macs / 1e9
    assert abs(macs - gmacs) / gmacs < tolerance
    assert gmacs in (round(macs, 1), int(macs * 10) / 10)  # the printed figure: rounded, or truncated (34, 50)


def test_v15_costs_more_than_v1():
    v1 = convzoo.summary(convzoo.create_model("resnet50", variant="v1")).total_macs
    v15 = convzoo.summary(convzoo.create_model("resnet50")).total_macs
    assert round(v15 / 1e9, 1) == 4.1 and v15 > v1
