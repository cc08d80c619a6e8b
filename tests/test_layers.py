"""Layer factory: output shapes for valid / same / explicit padding in 1D-3D, BN conventions, freeze_bn, precise BN."""

import itertools
import math

import pytest
import torch
from torch import nn

from convzoo.layers import (
    FrozenBatchNorm,
    avg_pool,
    batch_norm,
    conv,
    freeze_bn,
    local_response_norm,
    max_pool,
    output_size,
    precise_bn,
    same_padding_1d,
)

SIZES = (7, 8)  # odd and even


@pytest.mark.parametrize("ndim,stride,kernel", list(itertools.product((1, 2, 3), (1, 2, 3), (1, 2, 3))))
def test_conv_and_pool_output_shapes(ndim, stride, kernel):
    for size in SIZES:
        x = torch.randn(2, 3, *(size,) * ndim)
        for padding in ("valid", "same", 1):
            if padding == "valid" and size < kernel:
                continue
            expected = output_size(size, kernel, stride, padding)
            if padding == "same":
                assert expected == math.ceil(size / stride)  # TF/Keras: output = ceil(input / stride)
            layer = conv(ndim, 3, 4, kernel, stride, padding=padding)
            assert layer(x).shape == (2, 4) + (expected,) * ndim, (padding, size)
            if padding == 1 and kernel < 3:
                continue  # PyTorch pooling needs padding <= kernel / 2
            for pool in (max_pool(ndim, kernel, stride, padding), avg_pool(ndim, kernel, stride, padding)):
                assert pool(x).shape == (2, 3) + (expected,) * ndim


def test_same_padding_puts_the_odd_pixel_at_the_end():
    # size 8, kernel 3, stride 2: output 4, total = (4 - 1) * 2 + 3 - 8 = 1 -> (0, 1), as TensorFlow
    assert same_padding_1d(8, 3, 2) == (0, 1)
    # size 7, kernel 4, stride 1: total 3 -> (1, 2)
    assert same_padding_1d(7, 4, 1) == (1, 2)
    # a 1D convolution whose kernel sums its window shows where the zeros went
    layer = conv(1, 1, 1, 3, 2, padding="same", bias=False)
    nn.init.ones_(layer.weight)
    x = torch.arange(1.0, 9.0).reshape(1, 1, 8)  # 1..8
    # windows [1,2,3], [3,4,5], [5,6,7], [7,8,pad]
    assert layer(x).flatten().tolist() == [6.0, 12.0, 18.0, 15.0]


def test_same_pooling_ignores_padding():
    x = torch.arange(1.0, 9.0).reshape(1, 1, 8)
    assert max_pool(1, 3, 2, "same")(-x).flatten().tolist() == [-1.0, -3.0, -5.0, -7.0]  # pad never wins
    assert avg_pool(1, 3, 2, "same")(x).flatten().tolist() == [2.0, 4.0, 6.0, 7.5]  # last window averages 7, 8
    # stride-1 'same' average pooling (the static path) excludes the padding as well
    assert avg_pool(1, 3, 1, "same")(x).flatten().tolist()[0] == 1.5


def test_plain_pytorch_modules_when_padding_is_static():
    assert type(conv(2, 3, 8, 3, 1, "same")) is nn.Conv2d
    assert type(conv(3, 3, 8, 3, 2, 1)) is nn.Conv3d
    assert type(conv(1, 3, 8, 3, 2, "same")).__name__ == "Conv1dSame"
    assert set(conv(1, 3, 8, 3, 2, "same").state_dict()) == {"weight", "bias"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="ndim must be 1, 2 or 3"):
        conv(4, 3, 8, 3)
    with pytest.raises(ValueError, match="padding must be"):
        conv(2, 3, 8, 3, padding="full")
    with pytest.raises(ValueError, match="expected 2"):
        conv(2, 3, 8, (3, 3, 3))


def test_batch_norm_momentum_conventions():
    bn = batch_norm(2, 4, decay=0.99)  # Keras' momentum 0.99 == PyTorch's 0.01
    assert bn.momentum == pytest.approx(0.01)
    x = torch.randn(16, 4, 5, 5) + 3.0
    bn.train()
    bn(x)
    # running = (1 - momentum) * 0 + momentum * batch_mean
    assert torch.allclose(bn.running_mean, 0.01 * x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert isinstance(batch_norm(1, 4), nn.BatchNorm1d) and isinstance(batch_norm(3, 4), nn.BatchNorm3d)


@pytest.mark.parametrize("ndim", (1, 2, 3))
def test_freeze_bn_equals_eval_mode_bn_and_stays_frozen(ndim):
    model = nn.Sequential(conv(ndim, 2, 4, 3), batch_norm(ndim, 4), nn.ReLU())
    model.train()
    for _ in range(3):
        model(torch.randn(8, 2, *(6,) * ndim))
    model.eval()
    x = torch.randn(3, 2, *(6,) * ndim)
    expected = model(x)
    freeze_bn(model)
    assert isinstance(model[1], FrozenBatchNorm)
    model.train()  # frozen statistics ignore training mode
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert not any("running" in name or name == "1.weight" for name, _ in model.named_parameters())
    assert set(model[1].state_dict()) == {"weight", "bias", "running_mean", "running_var"}


def test_precise_bn_recomputes_population_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(batch_norm(2, 3))
    data = [torch.randn(10, 3, 4, 4) * 2 + 5 for _ in range(6)]
    used = precise_bn(model, data, num_batches=4)
    assert used == 4
    # cumulative average of the 4 batch means (equal batch sizes) is the exact population mean
    expected = torch.stack([d.mean(dim=(0, 2, 3)) for d in data[:4]]).mean(0)
    assert torch.allclose(model[0].running_mean, expected, atol=1e-5)
    assert model[0].momentum == 0.1 and model.training


def test_local_response_norm_uses_the_papers_alpha():
    lrn = local_response_norm(size=5, alpha=1e-4, beta=0.75, k=2.0)
    x = torch.randn(1, 7, 3, 3)
    # AlexNet: b_c = a_c / (k + alpha * sum_{|c'-c| <= 2} a_c'^2) ** beta
    sq = torch.nn.functional.pad(x.pow(2), (0, 0, 0, 0, 2, 2))
    window = sum(sq[:, i:i + 7] for i in range(5))
    assert torch.allclose(lrn(x), x / (2.0 + 1e-4 * window) ** 0.75, atol=1e-6)
