"""Whole classification runs on the bundled digits with tiny models: what a run leaves, resume with more epochs,
frozen BN, transfer learning. The guarantees shared by every task are in test_engine_tasks.py."""

from __future__ import annotations

import json

import pytest
import torch
from run_helpers import assert_same_weights, weights

from convzoo.cli import build_parser
from convzoo.train.config import TrainConfig

# Conv + BN + dropout: exercises BN statistics and the dropout RNG; about 2 s per epoch on digits.
TINY = "spec:CB-8-3-1-same,M-2-2,F,D-0.2,H-32"


def train(*argv: str) -> dict:
    args = build_parser().parse_args(["train", *argv])
    return args.func(args)


def tiny(tmp_path, name: str, *extra: str) -> list[str]:
    return ["--model", TINY, "--batch-size", "64", "--device", "cpu", "--deterministic", "--seed", "3",
            "--threads", "1",
            "--out", str(tmp_path / name), *extra]


def test_run_leaves_everything_and_evaluate_agrees(tmp_path, capsys):
    metrics = train(*tiny(tmp_path, "run", "--epochs", "2"))
    run_dir = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "last.safetensors", "last.state.pt", "best.safetensors",
                 "best.state.pt", "curves.png", "confusion_test.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").iterdir())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"loss", "accuracy", "dev:loss", "dev:accuracy", "lr"} <= records[0].keys()
    out = capsys.readouterr().out
    assert "Epoch 2/2 " in out and " loss=" in out and " dev:accuracy=" in out
    assert metrics["test:accuracy"] > 0.5 and metrics["epochs"] == 2
    assert TrainConfig.load(run_dir).model == TINY
    evaluated = build_parser().parse_args(["evaluate", str(run_dir), "--checkpoint", "last"])
    result = evaluated.func(evaluated)
    assert result["test:accuracy"] == pytest.approx(metrics["test:accuracy"])
    assert result["test:loss"] == pytest.approx(metrics["test:loss"], rel=1e-5)
    # predict: a test image of the digits, written as a PNG, gets the class that evaluate counted
    from PIL import Image

    from convzoo.data import load_data

    splits = load_data("digits")
    pixels = splits.test.images[0, 0].numpy()
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    predicted = build_parser().parse_args(["predict", str(run_dir), str(tmp_path / "digit.png"), "--top", "2",
                                           "--checkpoint", "last"])
    top = predicted.func(predicted)[str(tmp_path / "digit.png")]
    assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] in splits.class_names


def test_freeze_bn_keeps_statistics(tmp_path):
    train(*tiny(tmp_path, "frozen", "--epochs", "1", "--freeze-bn"))
    tuned = weights(tmp_path / "frozen")
    # a fresh BatchNorm's statistics and affine transform, never updated
    assert torch.equal(tuned["features.0.bn.running_mean"], torch.zeros(8))
    assert torch.equal(tuned["features.0.bn.running_var"], torch.ones(8))
    assert "features.0.bn.num_batches_tracked" not in tuned


def test_resume_with_more_epochs_is_bit_exact(tmp_path):
    # constant schedule: 2 epochs, then --resume --epochs 4, equals 4 epochs in one go.
    train(*tiny(tmp_path, "full", "--epochs", "4", "--schedule", "constant"))
    train(*tiny(tmp_path, "split", "--epochs", "2", "--schedule", "constant"))
    train("--resume", str(tmp_path / "split"), "--epochs", "4")
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "split"))
    full = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    split = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["dev:loss"] for r in full] == [json.loads(r)["dev:loss"] for r in split]


def test_amp_and_sync_bn_refused_on_cpu(tmp_path):
    with pytest.raises(ValueError, match="--amp bf16 needs a CUDA device"):
        train(*tiny(tmp_path, "amp", "--epochs", "1", "--amp", "bf16"))
    with pytest.raises(ValueError, match="--sync-bn needs CUDA"):
        train(*tiny(tmp_path, "syncbn", "--epochs", "1", "--sync-bn"))


def test_pretrained_torchvision_file_new_head_and_frozen_backbone(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet18(num_classes=1000)
    reference.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # digits are grayscale
    reference.eval()(torch.randn(4, 1, 32, 32))  # give the BN layers non-trivial running statistics
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), tmp_path / "resnet18_tv.pth")
    train(*tiny(tmp_path, "ft", "--epochs", "1", "--model", "resnet18", "--pretrained",
                str(tmp_path / "resnet18_tv.pth"), "--freeze-backbone", "--lr", "0.01", "--batch-size", "256"))
    tuned, source = weights(tmp_path / "ft"), reference.state_dict()
    assert tuned["fc.weight"].shape == (10, 512)
    for key, value in source.items():
        if key.startswith("fc."):
            continue
        # everything but the head is the file's, unchanged by training (BN statistics included: BN in eval mode)
        assert torch.equal(tuned[key], value), key
    fresh = torch.nn.Linear(512, 10).weight
    assert not torch.equal(tuned["fc.weight"], fresh) and tuned["fc.weight"].abs().sum() > 0
