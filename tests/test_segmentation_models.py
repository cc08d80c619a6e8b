"""Segmentation models and losses: counts against the papers and torchvision, torchvision's weights, output shapes,
the losses against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.detection.backbone import stage_features
from convzoo.model_table import shape_only
from convzoo.models.segmentation import (
    bilinear_kernel,
    bilinear_upsampling,
    dice_loss,
    load_encoder_weights,
    pixel_cross_entropy,
    segmentation_loss,
    unet_output_size,
    unet_weight_map,
)
from convzoo.models.segmentation.fcn_vgg import fixed_bilinear_upsampling
from convzoo.summary import count_params


def _meta(name: str, **kwargs) -> nn.Module:
    """The model with its parameters on the meta device: shapes and counts, no memory, no initialization."""
    with shape_only():
        return convzoo.create_model(name, **kwargs)


def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


# ---------------------------------------------------------------------------------------------------- U-Net


def test_unet_has_the_papers_23_convolutions_and_widths():
    model = _meta("unet", in_chans=1, num_classes=2, padding="valid")
    convs = _convs(model)
    assert len(convs) == 23  # Section 2: 8 contracting + 2 bottom + 4 x (up-conv + 2) expansive + the 1x1
    assert sorted({c.out_channels for c in convs}) == [2, 64, 128, 256, 512, 1024]
    assert sum(isinstance(c, nn.ConvTranspose2d) and c.kernel_size == (2, 2) for c in convs) == 4
    # Per step (C_in -> C): 9 C_in C + C + 9 C^2 + C; up-conv 2C -> C: 4 (2C) C + C; head 64 K + K:
    # contracting 37,568 + 221,440 + 885,248 + 3,539,968; bottom 14,157,824; up-convs 2,097,664 + 524,544 + 131,200
    # + 32,832; expansive 7,078,912 + 1,769,984 + 442,624 + 110,720; head 130: 31,030,658 (the docstring's)
    assert count_params(model) == 31_030_658
    assert count_params(_meta("unet")) == 31_030_658 + 2 * 576  # RGB, 2 classes: the default
    assert count_params(_meta("unet", in_chans=1, num_classes=5)) == 31_030_658 + 3 * 65


def test_unet_valid_is_the_overlap_tile_layout():
    assert unet_output_size(572) == 388  # Figure 1
    with pytest.raises(ValueError, match="before pooling 1 has side 567"):
        unet_output_size(571)
    model = convzoo.create_model("unet", base_width=2, padding="valid").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 188, 204))["out"].shape == (1, 2, 4, 20)
    with pytest.raises(ValueError, match="cannot take inputs of side 190"):
        model(torch.randn(1, 3, 190, 188))


def test_unet_same_padding_gives_the_input_resolution():
    model = convzoo.create_model("unet", base_width=4, num_classes=3, batch_norm=True)
    x = torch.randn(2, 3, 37, 50, requires_grad=True)
    out = model(x)
    assert set(out) == {"out"} and out["out"].shape == (2, 3, 37, 50)
    out["out"].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 16x16"):
        model(torch.randn(1, 3, 12, 40))
    with pytest.raises(ValueError, match="expects 3 input channels"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="padding must be 'same'"):
        convzoo.create_model("unet", padding="SAME")


# ---------------------------------------------------------------------------------------------------- losses


def test_cross_entropy_with_ignore_index_equals_torch():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 5, 6), torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    losses = segmentation_loss({"out": logits}, target)
    assert set(losses) == {"ce"}
    assert torch.allclose(losses["ce"], F.cross_entropy(logits, target, ignore_index=255), atol=1e-6)
    ones = torch.ones(2, 5, 6)
    assert torch.allclose(pixel_cross_entropy(logits, target, weight_map=ones), losses["ce"], atol=1e-6)
    twice = pixel_cross_entropy(logits, target, weight_map=2 * ones)
    assert torch.allclose(twice, 2 * losses["ce"], atol=1e-6)
    assert pixel_cross_entropy(logits, torch.full_like(target, 255)) == 0  # no counted pixel: 0, not NaN


def test_aux_and_dice_terms_are_weighted_and_named():
    torch.manual_seed(0)
    out, aux, target = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    losses = segmentation_loss({"out": out, "aux": aux}, target, dice_weight=0.5, aux_weight=0.4)
    assert set(losses) == {"ce", "aux", "dice"}
    assert torch.allclose(losses["aux"], 0.4 * F.cross_entropy(aux, target))
    assert torch.allclose(losses["dice"], 0.5 * dice_loss(out, target))
    assert set(segmentation_loss({"out": out, "aux": aux}, target, aux_weight=0)) == {"ce"}
    with pytest.raises(ValueError, match="dice_weight must be a finite number >= 0"):
        segmentation_loss({"out": out}, target, dice_weight=-1)
    with pytest.raises(ValueError, match=r"do not fit the target of shape \[1, 3, 3\]"):
        segmentation_loss({"out": out}, target[:, :3, :3])


def test_dice_on_a_hand_computed_case():
    # pixels: (target 0, p = (0.75, 0.25)), (target 1, p = (0.25, 0.75)), (ignored). Per class: intersection 0.75,
    # sum p = 1, sum t = 1: Dice = (2 * 0.75 + 1) / (1 + 1 + 1) = 5/6 with smooth 1, 0.75 with smooth 0
    probs = torch.tensor([[0.75, 0.25, 0.5], [0.25, 0.75, 0.5]]).reshape(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, 255]]])
    assert torch.allclose(dice_loss(probs.log(), target), torch.tensor(1 - 5 / 6))
    assert torch.allclose(dice_loss(probs.log(), target, smooth=0.0), torch.tensor(0.25))
    perfect = F.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 100
    assert dice_loss(perfect, target) < 1e-6


def test_unet_weight_map_on_two_blobs():
    mask = torch.zeros(10, 12, dtype=torch.long)
    mask[3:7, 2:5] = 1  # blob 1: rows 3-6, columns 2-4
    mask[3:7, 7:10] = 1  # blob 2: rows 3-6, columns 7-9; the gap is columns 5-6
    w = unet_weight_map(mask)
    # class balance: 120 pixels, 24 foreground, 96 background, 2 classes: w_1 = 120 / 48, w_0 = 120 / 192
    assert w[4, 3].item() == pytest.approx(2.5)
    border = lambda d1, d2: 10 * math.exp(-(d1 + d2) ** 2 / (2 * 5 ** 2))  # noqa: E731  (Eq. 2)
    assert w[4, 5].item() == pytest.approx(0.625 + border(1, 2), rel=1e-6)  # in the gap: 1 from blob 1, 2 from 2
    assert w[0, 0].item() == pytest.approx(0.625 + border(math.sqrt(13), math.sqrt(58)), rel=1e-6)
    assert w[4, 5] > w[0, 5] > w[0, 0]  # the gap between the touching objects weighs most
    one_blob = mask.clone()
    one_blob[:, 6:] = 0
    assert unet_weight_map(one_blob)[4, 5].item() == pytest.approx(120 / (2 * 108))  # no second object: w_c only
    ignored = mask.clone()
    ignored[0] = 255
    fixed = unet_weight_map(ignored, class_weights=[1.0, 3.0], w0=0.0)
    assert fixed[0].eq(0).all() and fixed[4, 3] == 3 and fixed[4, 5] == 1
    with pytest.raises(ValueError, match="class_weights has 1 entries, but the mask has label 1"):
        unet_weight_map(mask, class_weights=[1.0])


# ---------------------------------------------------------------------------------------------------- torchvision


def _torchvision(name: str, aux_loss: bool, device: str = "cpu") -> nn.Module:
    from torchvision.models import segmentation

    with torch.device(device):
        return getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=aux_loss)


COUNTS = {"fcn_resnet50": (32_957_013, 35_322_218), "deeplabv3_resnet50": (39_638_869, 42_004_074)}  # docstrings


def _check_counts_and_names(name: str, theirs: nn.Module) -> None:
    """Ours with and without aux_loss against torchvision's with aux_loss (without: minus its aux_classifier)."""
    without, with_aux = COUNTS[name]
    assert count_params(theirs) == with_aux and count_params(theirs) - count_params(theirs.aux_classifier) == without
    assert count_params(_meta(name)) == without
    ours = _meta(name, aux_loss=True)
    assert count_params(ours) == with_aux
    shapes = {k: v.shape for k, v in theirs.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes  # torchvision's names and shapes


def test_fcn_resnet50_counts_and_names_equal_torchvisions():
    _check_counts_and_names("fcn_resnet50", _torchvision("fcn_resnet50", True, "meta"))


def _random_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that eval-mode parity tests them too."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", pytest.param("fcn_resnet50", marks=pytest.mark.slow)])
def test_torchvision_weights_give_identical_logits(name):
    # (fcn_resnet50's head is the auxiliary head tested here with deeplabv3_resnet50, so it runs with -m slow)
    torch.manual_seed(0)
    theirs = _random_statistics(_torchvision(name, aux_loss=True))
    _check_counts_and_names(name, theirs)
    ours = _meta(name, aux_loss=True)
    ours.load_state_dict(theirs.state_dict(), assign=True)  # torchvision's names as they are
    ours.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert set(got) == {"out", "aux"} and got["out"].shape == (1, 21, 64, 64)
    for key in ("out", "aux"):
        assert torch.equal(got[key], expected[key]), f"{key}: max difference {(got[key] - expected[key]).abs().max()}"


# ---------------------------------------------------------------------------------------------------- encoders


def test_any_classifier_is_an_encoder_at_any_output_stride():
    x = torch.empty(2, 3, 64, 64, device="meta")
    for output_stride in (8, 16, 32):
        model = _meta("deeplabv3", encoder="resnet18", output_stride=output_stride, num_classes=4, aux_loss=True)
        deepest = stage_features(model.backbone, model.stages, x)[-1]
        assert deepest.shape == (2, 512, 64 // output_stride, 64 // output_stride)
        assert model.atrous_rates == tuple(r * 16 // output_stride for r in (6, 12, 18))  # Sec. 3.3: doubled at 8
        out = model(x)
        assert out["out"].shape == out["aux"].shape == (2, 4, 64, 64)
        # layer4's first (strided) convolution keeps layer3's rate, the later ones double it (torchvision's rule)
        layer4 = model.backbone.layer4
        assert layer4[0].conv1.stride == (1 if output_stride < 32 else 2,) * 2
        assert layer4[0].conv1.dilation == ({8: 2, 16: 1, 32: 1}[output_stride],) * 2
        assert layer4[1].conv1.dilation == ({8: 4, 16: 2, 32: 1}[output_stride],) * 2


def test_multi_grid_gives_the_papers_rates():
    for output_stride, rates in ((16, (2, 4, 8)), (8, (4, 8, 16))):  # Sec. 3.2: 2 x (1, 2, 4) at output stride 16
        model = _meta("deeplabv3", encoder="resnet50", output_stride=output_stride, multi_grid=(1, 2, 4))
        assert tuple(unit.conv2.dilation[0] for unit in model.backbone.layer4) == rates
        assert tuple(unit.conv2.padding[0] for unit in model.backbone.layer4) == rates
    with pytest.raises(ValueError, match="multi_grid must be 2 positive integers, one per unit of resnet18's"):
        _meta("deeplabv3", encoder="resnet18", multi_grid=(1, 2, 4))


def test_a_dilated_encoder_trains():
    torch.manual_seed(0)
    model = convzoo.create_model("deeplabv3", encoder="resnet18", output_stride=8, num_classes=3, aux_loss=True)
    x, target = torch.randn(2, 3, 32, 32, requires_grad=True), torch.randint(0, 3, (2, 32, 32))
    losses = segmentation_loss(model(x), target, dice_weight=0.5)
    sum(losses.values()).backward()
    assert set(losses) == {"ce", "aux", "dice"} and all(torch.isfinite(v) for v in losses.values())
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0 and model.classifier[-1].weight.grad.abs().sum() > 0


def test_encoders_that_cannot_dilate_say_so():
    with pytest.raises(ValueError, match="vgg11 cannot reach output_stride 8 by dilation: its stage 'features.19'"):
        _meta("deeplabv3", encoder="vgg11", output_stride=8)
    model = _meta("fcn", encoder="vgg11", output_stride=16, num_classes=3)  # VGG's native strides: fine
    assert model(torch.empty(1, 3, 48, 40, device="meta"))["out"].shape == (1, 3, 48, 40)
    googlenet = _meta("fcn", encoder="googlenet", output_stride=32)  # its auxiliary classifiers are not built
    assert googlenet.backbone.aux1 is None and not any(".aux" in n for n, _ in googlenet.named_parameters())
    with pytest.raises(ValueError, match="output_stride must be one of 8, 16, 32, got 4"):
        _meta("deeplabv3", encoder="resnet18", output_stride=4)
    with pytest.raises(ValueError, match="encoder 'mask_rcnn_r50_fpn' is a detector"):
        _meta("fcn", encoder="mask_rcnn_r50_fpn")
    with pytest.raises(ValueError, match="layout must be 'paper'"):
        _meta("deeplabv3", encoder="resnet18", layout="tv")


def test_encoder_weights_come_from_a_classifier_checkpoint(tmp_path):
    torch.manual_seed(0)
    classifier = convzoo.create_model("resnet18", num_classes=10)
    convzoo.save_weights(classifier, tmp_path / "resnet18.safetensors")
    model = convzoo.create_model("deeplabv3", encoder="resnet18", num_classes=3)
    report = load_encoder_weights(model, tmp_path / "resnet18.safetensors")
    assert "fc.weight" in report.reinitialized  # the classifier's head is not the encoder's
    assert torch.equal(model.backbone.layer4[1].conv2.weight, classifier.layer4[1].conv2.weight)
    assert torch.equal(model.backbone.bn1.running_mean, classifier.bn1.running_mean)


@pytest.mark.parametrize("name, options", [("unet", {"base_width": 4, "batch_norm": True}),
                                           ("deeplabv3", {"encoder": "resnet18", "output_stride": 8})])
def test_channels_last_gives_the_same_logits(name, options):
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=3, **options).eval()
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        expected = model(x)["out"]
        got = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))["out"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------- FCN on VGG-16


def test_fcn_vgg16_counts_and_layers():
    # VGG-16 conv1_1..conv5_3 14,714,688; fc6 7x7x512x4096 + 4096 = 102,764,544; fc7 4096^2 + 4096 = 16,781,312;
    # score_fr 4096 x 21 + 21 = 86,037: FCN-32s 134,346,581 (its 32x upsampling is fixed: a buffer, no parameter).
    # FCN-16s adds upscore2 (21 x 21 x 4 x 4, no bias) 7,056 and score_pool4 (512 x 21 + 21) 10,773; FCN-8s adds
    # upscore_pool4 7,056 and score_pool3 (256 x 21 + 21) 5,397.
    expected = {"fcn32s": 134_346_581, "fcn16s": 134_346_581 + 7_056 + 10_773,
                "fcn8s": 134_346_581 + 2 * 7_056 + 10_773 + 5_397}
    x = torch.empty(1, 3, 70, 45, device="meta")  # not a multiple of 32: padded, then cropped back
    for name, count in expected.items():
        model = _meta(name)
        assert count_params(model) == count
        assert model.fc6.kernel_size == (7, 7) and model.fc7.kernel_size == (1, 1)
        assert model(x)["out"].shape == (1, 21, 70, 45)
    learned = _meta("fcn8s", num_classes=5, learn_final_upsampling=True)
    assert count_params(learned) == count_params(_meta("fcn8s", num_classes=5)) + 5 * 5 * 16 * 16
    assert set(_meta("fcn8s").head_names) == {"score_fr", "upscore2", "score_pool4", "upscore_pool4", "score_pool3"}


def test_bilinear_upsampling_is_bilinear_interpolation():
    assert torch.allclose(bilinear_kernel(2)[1], torch.tensor([0.25, 0.75, 0.75, 0.25]) * 0.75)
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 6)
    for factor in (2, 8, 32):
        learned = bilinear_upsampling(2, factor)(x)  # the initialization of the learned 2x layers
        fixed = fixed_bilinear_upsampling(x, bilinear_kernel(factor), factor)  # the fixed final layer
        reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        inner = (..., slice(factor, -factor), slice(factor, -factor))  # the borders differ: zeros outside the map
        assert learned.shape == fixed.shape == (1, 2, 5 * factor, 6 * factor)
        assert torch.allclose(learned, fixed, atol=1e-6)
        assert torch.allclose(learned[inner], reference[inner], atol=1e-5)


@pytest.mark.slow
def test_a_vgg16_classifier_file_initializes_fcn8s(tmp_path):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    classifier = vgg16(weights=None).eval()
    torch.save(classifier.state_dict(), tmp_path / "vgg16.pth")
    model = convzoo.create_model("fcn8s", num_classes=3).eval()
    load_encoder_weights(model, tmp_path / "vgg16.pth", source="torchvision")
    assert torch.equal(model.features[28].weight, classifier.features[28].weight)
    pool5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():  # fc6 at the centre of a 7x7 pool5 map is the classifier's first linear layer (Sec. 3.1)
        convolved = F.relu(model.fc7(F.relu(model.fc6(pool5))))[0, :, 3, 3]
        linear = classifier.classifier[:5](pool5.flatten(1))[0]
    assert torch.allclose(convolved, linear, atol=1e-4)
    out = model.train()(torch.randn(2, 3, 64, 64))["out"]
    assert out.shape == (2, 3, 64, 64) and out.eq(0).all()  # Sec. 4.3: zero-initialized class scoring layers
    segmentation_loss({"out": out}, torch.randint(0, 3, (2, 64, 64)))["ce"].backward()
    assert model.score_fr.weight.grad.abs().sum() > 0 and model.score_pool3.weight.grad.abs().sum() > 0


# the generic heads run on a small encoder; the torchvision models are checked above against torchvision's outputs
SMALL_ENCODER = {"fcn": {"encoder": "resnet18"}, "deeplabv3": {"encoder": "resnet18"}}
SEGMENTERS = [pytest.param(n, marks=pytest.mark.slow) if n.endswith("_resnet50") else n
              for n in convzoo.list_models(kind="segmenter")]


@pytest.mark.parametrize("name", SEGMENTERS)
def test_every_segmenter_keeps_the_output_contract(name):
    model = _meta(name, num_classes=7, in_chans=2, **SMALL_ENCODER.get(name, {}))
    out = model(torch.empty(2, 2, 64, 48, device="meta"))
    assert isinstance(out, dict) and set(out) == {"out"} and out["out"].shape == (2, 7, 64, 48)
    with pytest.raises(ValueError, match="expects 2 input channels"):
        model(torch.empty(2, 3, 64, 48, device="meta"))
