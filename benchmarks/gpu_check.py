"""The GPU checks, as one prepared script (under 8 minutes on one GPU): what the CPU-only test run cannot cover.

1. the CUDA-marked tests (``tests/test_cuda.py``: AMP bf16/fp16, ``--compile`` + channels_last, a detector step
   with AMP, NCCL DDP when 2 GPUs are present);
2. a Mask R-CNN R50-FPN training step (batch 2, 800-px images), convzoo vs torchvision side by side in this process,
   fp32 and bf16, printing images/s and the ratio;
3. CIFAR-10 time to 94% test accuracy with convzoo's fastest recipe (``--cifar DIR``; skipped without the data).

    python benchmarks/gpu_check.py --cifar DATA/cifar10 | tee gpu_check.txt

Without CUDA it says so and exits 0 (nothing to check). Figures go in docs/benchmarks-gpu.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# the fastest recipe measured for CIFAR-10 here: a Wide ResNet-16-4, one-cycle SGD, large batch, bf16, NHWC
CIFAR_RECIPE = ["--model", "wrn16_4", "--batch-size", "512", "--optimizer", "sgd", "--lr", "0.4", "--momentum",
                "0.9", "--weight-decay", "5e-4", "--schedule", "one-cycle", "--label-smoothing", "0.1",
                "--epochs", "15", "--amp", "bf16", "--channels-last", "--workers", "4", "--no-progress"]


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def cuda_tests(timeout: int) -> None:
    section("CUDA-marked tests")
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", str(REPO / "tests" / "test_cuda.py")]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        print(result.stdout[-3000:] + result.stderr[-1500:])
    except subprocess.TimeoutExpired:
        print(f"timed out after {timeout} s")
    print(f"({time.perf_counter() - started:.1f} s)")


def _time_steps(model, images, targets, steps: int, amp: torch.dtype | None) -> float:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.001, momentum=0.9)
    model.train()

    def step():
        with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
            loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * len(images) / (time.perf_counter() - started)


def detector_step(steps: int) -> None:
    import torchvision

    from convzoo.data.detection_shapes import ShapesDataset
    from convzoo.registry import create_model

    section(f"Mask R-CNN R50-FPN training step, batch 2, 800-px images, {steps} steps")
    data = ShapesDataset(2, size=800, seed=0)
    images = [data[i][0].cuda() for i in range(2)]
    targets = [{k: v.cuda() for k, v in data[i][1].items() if k in ("boxes", "labels", "masks")} for i in range(2)]
    for amp in (None, torch.bfloat16):
        torch.manual_seed(0)
        ours = create_model("mask_rcnn_r50_fpn", num_classes=4).cuda()
        theirs = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                    num_classes=4).cuda()
        a = _time_steps(ours, images, targets, steps, amp)
        b = _time_steps(theirs, images, targets, steps, amp)
        name = "fp32" if amp is None else "bf16"
        print(f"{name}: convzoo {a:.1f} img/s, torchvision {b:.1f} img/s, ratio {a / b:.3f}", flush=True)
        del ours, theirs
        torch.cuda.empty_cache()


def cifar_time_to_94(root: str | None, minutes: float) -> None:
    section("CIFAR-10 time to 94% test accuracy")
    if not root or not Path(root).is_dir():
        print(f"skipped: no CIFAR-10 folder (--cifar {root})")
        return
    out = tempfile.mkdtemp(prefix="gpu-cifar-")
    command = [sys.executable, "-m", "convzoo", "train", "--data", f"cifar10:{root}", *CIFAR_RECIPE,
               "--max-minutes", str(minutes), "--out", out]
    print(" ".join(command[2:]), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=minutes * 60 + 120, cwd=REPO)
    seconds = time.perf_counter() - started
    print(result.stdout[-2500:] + result.stderr[-800:])
    records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()] \
        if (Path(out) / "metrics.jsonl").is_file() else []
    for record in records:
        if record.get("dev:accuracy", 0) >= 0.94:
            print(f"dev accuracy reached 94% at epoch {record['epoch']}")
            break
    print(f"whole run (data loading and test included): {seconds:.1f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", default=None, help="a CIFAR-10 folder (default: skip the time-to-accuracy run)")
    parser.add_argument("--steps", type=int, default=20, help="timed detector steps (default: 20)")
    parser.add_argument("--minutes", type=float, default=3.0, help="budget of the CIFAR-10 run (default: 3)")
    parser.add_argument("--test-timeout", type=int, default=240, help="seconds for the CUDA tests (default: 240)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to check (the CPU test run covers the rest)")
        return
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {len(names)} GPU(s): {', '.join(names)}")
    cuda_tests(args.test_timeout)
    detector_step(args.steps)
    cifar_time_to_94(args.cifar, args.minutes)


if __name__ == "__main__":
    main()
