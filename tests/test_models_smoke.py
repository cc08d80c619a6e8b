"""One smoke test over every registered classifier, plus channels_last equality."""

import pytest
import torch

import convzoo

CLASSIFIERS = [n for n in convzoo.list_models(kind="classifier")
               if convzoo.get_model_builder(n).__module__.startswith("convzoo.models")]
# The smoke test's input is 16 pixels a side (VGG's five poolings need 32); these models need more.
MIN_SPATIAL = {"googlenet": 64, "inception_v3": 80, "bn_inception": 64}
# These take only their default input size (VoxNet's FC(128) is sized for 32^3 grids).
FIXED_SIZE = {"voxnet"}
# The heaviest variants (over ~40 M parameters or over 300 layers) of families tested here by smaller siblings
# take tens of seconds each on a 2-core CPU: they run with `pytest -m slow` (nasnet: its defaults are nasnet_a_mobile).
HEAVY = {"resnet1202", "resnet152", "resnext101_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2",
         "wrn40_10", "wrn40_14", "wrn28_12", "wrn16_10", "nasnet_a_large", "nasnet", "vgg19", "vgg19_bn", "vgg16_c",
         "vgg13_bn"}
SPEC = "CB-8-3-2-same,M-2-2,R-[C-8-3-1-same,CB-8-3-1-same],F,H-16,D-0.5"


def _build(name: str, **kwargs):
    if name == "spec":
        kwargs.update(spec=SPEC, input_size=(16, 16))
    return convzoo.create_model(name, **kwargs)


def _small_input(model, name: str, batch: int = 2) -> torch.Tensor:
    channels, *spatial = model.default_input_size
    side = MIN_SPATIAL.get(name, 32 if name.startswith("vgg") else 16)
    spatial = spatial if name in FIXED_SIZE else [min(s, side) for s in spatial]
    return torch.randn(batch, channels, *spatial)


def _tensors(output):
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)] if isinstance(output, (tuple, list)) else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in CLASSIFIERS])
def test_every_model_trains_and_predicts(name):
    torch.manual_seed(0)
    model = _build(name, num_classes=7)
    x = _small_input(model, name).requires_grad_(True)
    model.train()
    outputs = _tensors(model(x))  # logits, or logits plus auxiliary logits
    assert all(torch.isfinite(t).all() for t in outputs)
    sum(t.sum() for t in outputs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        logits = model(x.detach())
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


CHANNELS_LAST = ["vgg11_bn", "vgg11_lrn", "resnet50", "resnext50_32x4d", "resnet20", "wrn16_4", "plain20"]


@pytest.mark.parametrize("name", CHANNELS_LAST + [n for n in MIN_SPATIAL if n in CLASSIFIERS])
def test_channels_last_gives_the_same_outputs(name):
    model = _build(name, num_classes=7).eval()
    x = _small_input(model, name)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)
