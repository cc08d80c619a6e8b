"""convzoo.optimize: BatchNorm folded, channels_last, the frozen TorchScript graph; the same outputs (fp32)."""

from __future__ import annotations

import pytest
import torch
from export_helpers import tiny_detector
from torch import nn

from convzoo.cli import build_parser
from convzoo.export import eager_detections, optimize
from convzoo.export.fast import ChannelsLast
from convzoo.export.winograd import WinogradConv2d, eligible
from convzoo.registry import create_model


def _random_statistics(model: nn.Module) -> nn.Module:
    """BatchNorm statistics and affine parameters away from their initial 0 / 1, so that folding is tested."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_optimize_folds_every_batch_norm_and_keeps_the_outputs(one_thread) -> None:
    model = _random_statistics(create_model("resnet20", num_classes=10))
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        folded = optimize(model, jit=False)
        assert isinstance(folded, ChannelsLast) and folded.model.folded_norms == 19  # every BN of ResNet-20
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
        torch.testing.assert_close(folded(images), expected, atol=1e-4, rtol=1e-4)
        frozen = optimize(model, images[:2])  # traced at batch 2, run at batch 4
        assert isinstance(frozen, torch.jit.ScriptModule)
        torch.testing.assert_close(frozen(images), expected, atol=1e-4, rtol=1e-4)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())  # the original is kept


def test_a_shortcut_keeps_its_batch_norm() -> None:
    """A convolution whose output also feeds something else than its BatchNorm is not folded."""

    class Shortcut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = _random_statistics(Shortcut())
    images = torch.randn(2, 3, 8, 8)
    fast = optimize(model, images, jit=False)
    assert fast.model.folded_norms == 0
    torch.testing.assert_close(fast(images), model(images))


def test_optimize_detector_keeps_the_detections(one_thread) -> None:
    model = tiny_detector("faster_rcnn_r50_fpn")
    images = torch.rand(1, 3, 64, 64)
    fast = optimize(model)
    assert fast.folded_norms == 20  # the frozen BatchNorms of the ResNet-18 body
    expected, got = eager_detections(model, images), eager_detections(fast, images)
    for key in ("boxes", "scores"):
        torch.testing.assert_close(got[0][key], expected[0][key], atol=1e-4, rtol=1e-4)
    assert torch.equal(got[0]["labels"], expected[0]["labels"])



def test_optimize_auto_times_a_detector_with_and_without_tuned_kernels(one_thread) -> None:
    model = tiny_detector("mask_rcnn_r50_fpn")  # FPN and mask head 32 channels wide: Winograd candidates
    images = torch.rand(1, 3, 64, 64)
    fast = optimize(model, [images[0]], backend="auto", trials=1)
    assert set(fast.timings) == {"torch-eager", "torch-tuned"} and fast.backend in fast.timings
    expected, got = eager_detections(model, images), eager_detections(fast, images)
    for key in ("boxes", "scores"):
        torch.testing.assert_close(got[0][key], expected[0][key], atol=1e-4, rtol=1e-4)
    assert torch.equal(got[0]["labels"], expected[0]["labels"])
    forced = optimize(model)  # every 3x3 stride-1 convolution by F(4x4, 3x3), whatever measures faster
    for name, conv in list(forced.named_modules()):
        if eligible(conv):
            parent, _, child = name.rpartition(".")
            setattr(forced.get_submodule(parent), child, WinogradConv2d(conv, {(1, 1, 1): 4}))
    assert sum(isinstance(m, WinogradConv2d) for m in forced.modules()) >= 10  # body, FPN, RPN and mask head
    forced.requires_grad_(False)
    got = eager_detections(forced, images)
    for key in ("boxes", "scores"):
        torch.testing.assert_close(got[0][key], expected[0][key], atol=1e-3, rtol=1e-4)
    assert torch.equal(got[0]["labels"], expected[0]["labels"])


@pytest.mark.slow
def test_predict_fast_equals_predict(tmp_path, one_thread) -> None:
    from PIL import Image

    from convzoo.data import load_data

    run_dir = tmp_path / "run"
    args = build_parser().parse_args(["train", "--model", "spec:CB-8-3-1-same,M-2-2,F,H-16", "--epochs", "1",
                                      "--device", "cpu", "--threads", "1", "--seed", "3", "--out", str(run_dir)])
    args.func(args)
    Image.fromarray(load_data("digits").test.images[0, 0].numpy()).save(tmp_path / "digit.png")
    results = []
    onnx = [["--fast", "onnxruntime"]] if _has("onnxruntime") and _has("onnx") else []
    for fast in ([], ["--fast"], ["--fast", "auto"], *onnx):
        predicted = build_parser().parse_args(["predict", str(run_dir), str(tmp_path / "digit.png"), "--top", "3",
                                               *fast])
        results.append(predicted.func(predicted)[str(tmp_path / "digit.png")])
    for other in results[1:]:
        assert [name for name, _ in results[0]] == [name for name, _ in other]
        for (_, plain), (_, fast) in zip(results[0], other):
            assert abs(plain - fast) < 1e-5


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_optimize_refuses_an_unknown_backend_and_a_detector_in_onnxruntime() -> None:
    with pytest.raises(ValueError, match="backend 'tvm'; expected one of torch, onnxruntime, auto"):
        optimize(create_model("resnet20", num_classes=10), backend="tvm")
    with pytest.raises(ValueError, match="runs classifiers"):
        optimize(tiny_detector("faster_rcnn_r50_fpn"), backend="onnxruntime")


def test_optimize_traces_tf_same_padding(one_thread) -> None:
    # BN-Inception and NASNet pad as TF "same"; torch.jit.trace hands the padding arithmetic tensor sizes, which
    # torch.sym_max refused (the frozen graph of both networks failed to build)
    model = create_model("spec:C-8-3-2-same,F,H-5", num_classes=5, in_chans=3, input_size=(17, 17)).eval()
    images = torch.randn(2, 3, 17, 17)
    fast = optimize(model, images)
    assert isinstance(fast, torch.jit.ScriptModule)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), model(images), atol=1e-5, rtol=1e-5)


def test_optimize_auto_returns_the_fastest_candidate_and_its_timings(one_thread, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as without ONNX Runtime: the two torch forms compete
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    model = _random_statistics(create_model("resnet20", num_classes=10))
    images = torch.randn(3, 3, 32, 32)
    chosen = optimize(model, images[:1], backend="auto", trials=2)
    assert set(chosen.timings) == {"torch", "torch-eager", "torch-tuned"}
    assert all(t > 0 for t in chosen.timings.values())
    assert chosen.backend == min(chosen.timings, key=chosen.timings.get)
    with torch.no_grad():
        torch.testing.assert_close(chosen(images), model(images), atol=1e-4, rtol=1e-4)
    detector = optimize(tiny_detector("faster_rcnn_r50_fpn"), backend="auto")  # nothing to choose: torch
    assert detector.backend == "torch" and detector.timings == {}
    with pytest.raises(ValueError, match="trials must be a positive integer"):
        optimize(model, images[:1], backend="auto", trials=0)


@pytest.mark.slow
def test_optimize_onnxruntime_backend_equals_the_model(one_thread) -> None:
    pytest.importorskip("onnxruntime")
    model = _random_statistics(create_model("resnet20", num_classes=10))
    images = torch.randn(3, 3, 32, 32)
    fast = optimize(model, images[:1], backend="onnxruntime")  # traced at batch 1, run at batch 3
    with torch.no_grad():
        torch.testing.assert_close(fast(images), model(images), atol=1e-4, rtol=1e-4)
