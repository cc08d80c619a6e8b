"""Winograd convolution (convzoo.export.winograd): F(2x2, 3x3) and F(4x4, 3x3) equal torch's convolution within
float32 rounding at every size, band and layout; the tuner keeps what measures fastest and the model's outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from convzoo.export import optimize
from convzoo.export.kernels import OneDnnConv2d, pointwise, tune_kernels
from convzoo.export.winograd import WinogradConv2d, eligible, transform_weight, winograd_conv3x3


def _close(actual: torch.Tensor, expected: torch.Tensor, digits: float = 1e-5) -> None:
    scale = expected.abs().max().item()
    assert (actual - expected).abs().max().item() <= digits * scale, (actual - expected).abs().max().item() / scale


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize(("n", "c", "k", "h", "w"), [(2, 5, 7, 8, 8), (1, 16, 8, 7, 9), (3, 4, 6, 1, 1),
                                                      (2, 8, 3, 13, 6)])
def test_winograd_equals_conv2d(one_thread, m, n, c, k, h, w) -> None:
    torch.manual_seed(0)
    x, weight, bias = torch.randn(n, c, h, w), torch.randn(k, c, 3, 3) / (3 * c**0.5), torch.randn(k)
    expected = F.conv2d(x.double(), weight.double(), bias.double(), padding=1).float()
    u = transform_weight(weight, m)
    assert u.shape == ((m + 2) ** 2, c, k)
    for layout in (torch.contiguous_format, torch.channels_last):
        for band in (None, 1, 40 * (c + k) * 4 * (m + 2) ** 2):  # whole images, one tile row, a few rows
            out = winograd_conv3x3(x.contiguous(memory_format=layout), u, bias, m, band_bytes=band)
            assert out.shape == expected.shape and out.is_contiguous(memory_format=torch.channels_last)
            _close(out, expected, 2e-6 if m == 2 else 2e-5)
    _close(winograd_conv3x3(x, u, None, m), expected - bias.reshape(1, -1, 1, 1), 2e-6 if m == 2 else 2e-5)


def test_winograd_module_follows_its_plan(one_thread) -> None:
    conv = nn.Conv2d(8, 4, 3, padding=1).eval()
    assert eligible(conv) and not eligible(nn.Conv2d(8, 4, 3, padding=1, stride=2))
    assert not eligible(nn.Conv2d(8, 4, 5, padding=2)) and not eligible(nn.Conv2d(8, 4, 3, padding=1, groups=2))
    with pytest.raises(ValueError, match="not a float32 3x3 stride-1"):
        WinogradConv2d(nn.Conv2d(8, 4, 3))
    module = WinogradConv2d(conv, {(2, 8, 8): 4, (1, 32, 32): 0})
    assert module.u2 is None and module.u4 is not None  # only the planned tile sizes' weights are kept
    assert module.choice(torch.zeros(2, 8, 8, 8)) == 4 and module.choice(torch.zeros(1, 8, 30, 30)) == 0
    assert module.choice(torch.zeros(1, 8, 9, 9)) == 4  # the nearest measured size
    assert WinogradConv2d(conv, {}).choice(torch.zeros(1, 8, 9, 9)) == 0
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        _close(module(x), conv(x))
    x.requires_grad_(True)
    module(x).sum().backward()  # with autograd it is the convolution itself
    assert x.grad is not None and conv.weight.grad is not None


def test_tune_kernels_keeps_the_outputs_and_names_the_plans(one_thread) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(48, 48, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(48, 48, 3, padding=1),
                          nn.Conv2d(48, 64, 1), nn.Conv2d(64, 32, 1, stride=2)).eval()
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        expected = model(x)
        plans = tune_kernels(model, lambda: model(x), trials=1, min_channels=32)
        assert set(plans) <= {"2", "6", "7", "8"}
        assert all(set(p) == {(2, 20, 20)} or set(p) == {(2, 10, 10)} for p in plans.values())
        assert isinstance(model[0], nn.Conv2d) and isinstance(model[4], nn.Conv2d)  # 3 channels; stride 2
        _close(model(x), expected, 1e-4)
    kinds = {"2": WinogradConv2d, "6": WinogradConv2d, "7": OneDnnConv2d, "8": OneDnnConv2d}
    assert all(isinstance(model[int(name)], kinds[name]) for name in plans)


def test_onednn_pointwise_equals_the_convolution(one_thread) -> None:
    assert pointwise(nn.Conv2d(8, 4, 1, stride=2)) and not pointwise(nn.Conv2d(8, 4, 1, padding=1))
    assert not pointwise(nn.Conv2d(8, 4, 3)) and not pointwise(nn.Conv2d(8, 4, 1, groups=2))
    with pytest.raises(ValueError, match="not a float32 1x1 convolution"):
        OneDnnConv2d(nn.Conv2d(8, 4, 3))
    for stride in (1, 2):
        conv = nn.Conv2d(16, 8, 1, stride=stride).eval()
        module = OneDnnConv2d(conv, {(1, 1, 1): 1})
        x = torch.randn(2, 16, 9, 7)
        with torch.no_grad():
            _close(module(x), conv(x), 1e-5)
            assert OneDnnConv2d(conv, {}).forward(x).shape == conv(x).shape
        x.requires_grad_(True)
        module(x).sum().backward()  # with autograd it is the convolution itself
        assert x.grad is not None


def test_optimize_with_tuned_kernels_equals_the_model(one_thread) -> None:
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 5)).eval()
    images = torch.randn(2, 3, 24, 24)
    fast = optimize(model, images, tune_kernels=True, trials=1)
    assert fast.model.folded_norms == 2 and isinstance(fast.kernel_plans, dict)
    with torch.no_grad():
        _close(fast(images), model(images), 1e-4)
    with pytest.raises(ValueError, match="tune_kernels=True runs the eager model"):
        optimize(model, images, tune_kernels=True, jit=True)


def test_modules_follow_new_weights_and_every_grad_mode(one_thread) -> None:
    """A tuned module after load_state_dict computes with the new weights; scratch made in inference mode serves
    no_grad calls and back; a trainable bias alone sends the call to the convolution (autograd)."""
    torch.manual_seed(0)
    x = torch.randn(1, 32, 8, 8)
    for conv, module in ((c := nn.Conv2d(32, 16, 3, padding=1).eval(), WinogradConv2d(c, {(1, 8, 8): 4})),
                         (c1 := nn.Conv2d(32, 16, 1).eval(), OneDnnConv2d(c1, {(1, 8, 8): 1}))):
        module.requires_grad_(False)
        with torch.inference_mode():
            first = module(x)
        with torch.no_grad():
            _close(module(x), first, 1e-6)
            conv.load_state_dict({k: torch.randn_like(v) for k, v in conv.state_dict().items()})
            _close(module(x), conv(x), 2e-5)
        with torch.inference_mode():
            _close(module(x), conv(x), 2e-5)
        conv.bias.requires_grad_(True)
        module(x).sum().backward()
        assert conv.bias.grad is not None
