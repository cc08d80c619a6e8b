"""What only a CUDA machine can check: AMP (bf16, fp16 with a GradScaler), torch.compile, channels_last, a detector
step and NCCL DDP. Every test is marked ``cuda`` and skipped without a GPU; ``benchmarks/gpu_check.py`` runs them."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from convzoo.tasks import DetectionOptions
from convzoo.train import TrainConfig, fit

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")]

TINY = TrainConfig(model="spec:CB-16-3-1-same,M-2-2,CB-32-3-1-same,M-2-2,F,H-64", data="digits", batch_size=64,
                   epochs=2, device="cuda", progress=False)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_and_evaluates(tmp_path, amp):
    metrics = fit(dataclasses.replace(TINY, amp=amp, out=str(tmp_path / amp)))
    assert metrics["test:accuracy"] > 0.8 and torch.isfinite(torch.tensor(metrics["loss"]))


def test_compile_and_channels_last_agree_with_eager(tmp_path):
    eager = fit(dataclasses.replace(TINY, seed=1, out=str(tmp_path / "eager")))
    compiled = fit(dataclasses.replace(TINY, seed=1, compile=True, channels_last=True, out=str(tmp_path / "c")))
    assert compiled["test:accuracy"] == pytest.approx(eager["test:accuracy"], abs=0.03)


def test_detector_trains_on_cuda_with_amp(tmp_path):
    config = TrainConfig(model="mask_rcnn_r50_fpn", data="shapes", image_size=128, batch_size=4, epochs=1,
                         device="cuda", amp="bf16", progress=False, out=str(tmp_path / "det"),
                         detection=DetectionOptions(backbone="resnet18", small=True, train_size=16, val_size=4))
    metrics = fit(config)
    assert metrics["steps"] == 4 and "dev:segm:AP" in metrics


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs 2 GPUs")
def test_nccl_two_gpus(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "convzoo", "train", "--model", TINY.model, "--epochs", "1", "--batch-size", "64", "--device", "cuda",
               "--no-progress", "--out", str(tmp_path / "ddp")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text())
    assert record["dev:accuracy"] > 0.5
