"""The engine's guarantees, for every task alike: bit-exact resume in the middle of an epoch, Ctrl-C saves, a
non-finite loss keeps the last good checkpoint, refused changes on resume, DDP (2 processes, 2 nodes), the time
budget."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from run_helpers import assert_same_weights, toy_sentences, weights

from convzoo.tasks import DetectionOptions, SegmentationOptions, TextOptions
from convzoo.train import Budget, NonFiniteLossError, TrainConfig, fit
from convzoo.train.checkpoint import load_checkpoint

# Each task's smallest honest run: a conv + BN + dropout spec model on digits (20 steps an epoch); a Faster R-CNN
# with a ResNet-18 backbone on six generated 64-px images (3 steps an epoch, about 2 s); a U-Net 4 channels wide on
# four generated 16-px shapes-seg images (2 steps an epoch); kim_cnn (Adadelta, the max-norm step hook, dropout) on
# 120 toy sentences, 8-dimensional embeddings (4 steps an epoch; the file is written by the fixture: TOY).
TASKS = {
    "classification": TrainConfig(model="spec:CB-8-3-1-same,M-2-2,F,D-0.2,H-32", data="digits", batch_size=64,
                                  epochs=2, device="cpu", deterministic=True, seed=3, threads=1, progress=False),
    "detection": TrainConfig(model="faster_rcnn_r50_fpn", data="shapes", image_size=64, batch_size=2, epochs=2,
                             device="cpu", deterministic=True, seed=3, threads=1, progress=False,
                             detection=DetectionOptions(backbone="resnet18", small=True, train_size=6, val_size=2,
                                                        min_size=64, max_size=64)),
    "segmentation": TrainConfig(model="unet", data="shapes-seg", image_size=16, batch_size=2, epochs=2, device="cpu",
                                deterministic=True, seed=3, threads=1, progress=False,
                                segmentation=SegmentationOptions(base_width=4, batch_norm=True, train_size=4,
                                                                 val_size=2)),
    "text": TrainConfig(model="kim_cnn", data="text:TOY", batch_size=20, epochs=2, device="cpu", deterministic=True,
                        seed=3, threads=1, progress=False, text=TextOptions(embedding_dim=8, folds=5)),
}
# the DDP runs: no BatchNorm statistics and no dropout to differ between processes (the classifier); frozen BN
# (not --small) for the detector; no BatchNorm in the U-Net (its dropout differs between processes)
DDP_ARGS = {
    "classification": ["--model", "spec:C-8-3-1-same,M-2-2,F,H-32", "--data", "digits", "--batch-size", "64"],
    "detection": ["--model", "faster_rcnn_r50_fpn", "--backbone", "resnet18", "--data", "shapes", "--image-size",
                  "64", "--min-size", "64", "--max-size", "64", "--train-size", "4", "--val-size", "3",
                  "--batch-size", "2"],
    "segmentation": ["--model", "unet", "--base-width", "4", "--data", "shapes-seg", "--image-size", "16",
                     "--train-size", "4", "--val-size", "3", "--batch-size", "2"],
}


@pytest.fixture(params=sorted(TASKS))
def task_config(request, tmp_path) -> TrainConfig:
    config = TASKS[request.param]
    if config.data == "text:TOY":
        config = dataclasses.replace(config, data=f"text:{toy_sentences(tmp_path / 'toy.all')}")
    return config


def test_interrupt_saves_and_resume_mid_epoch_is_bit_exact(task_config, tmp_path):
    fit(dataclasses.replace(task_config, out=str(tmp_path / "full")))

    def interrupt(state, model):
        if state.epoch == 1 and state.batch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(dataclasses.replace(task_config, out=str(tmp_path / "cut")), callbacks=[interrupt])
    saved = load_checkpoint(tmp_path / "cut", "last")
    assert (saved["train_state"]["epoch"], saved["train_state"]["batch"]) == (1, 1)
    resumed = fit(TrainConfig(resume=str(tmp_path / "cut")))
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    full = [json.loads(r) for r in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    cut = [json.loads(r) for r in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in cut] == [1, 2] and [r["loss"] for r in cut] == [r["loss"] for r in full]
    assert resumed["steps"] == full[-1]["step"]
    outcome = json.loads((tmp_path / "cut" / "results.json").read_text())  # the run's outcome, in its folder
    assert outcome["steps"] == resumed["steps"] and outcome["epochs"] == resumed["epochs"]
    assert outcome["metrics"] and outcome["metrics"] == {k: resumed[k] for k in outcome["metrics"]}


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(task_config, tmp_path):
    good = {}

    def poison(state, model):  # in epoch 2, make a weight NaN: the next loss is NaN
        if state.epoch == 1 and state.batch == 1:
            good.update(weights(tmp_path / "nan"))
            next(p for p in model.parameters() if p.requires_grad).data.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"last good checkpoint is .*last \(epoch 1\)"):
        fit(dataclasses.replace(task_config, out=str(tmp_path / "nan")), callbacks=[poison])
    assert_same_weights(weights(tmp_path / "nan"), good)
    assert all(torch.isfinite(t).all() for t in good.values() if t.is_floating_point())


def test_resume_refuses_changed_options_and_takes_allowed_ones(task_config, tmp_path):
    fit(dataclasses.replace(task_config, epochs=1, out=str(tmp_path / "run")))
    with pytest.raises(ValueError, match="--lr cannot change when resuming"):
        fit(TrainConfig(resume=str(tmp_path / "run"), lr=0.5))
    with pytest.raises(ValueError, match="--model cannot change when resuming"):
        fit(TrainConfig(resume=str(tmp_path / "run"), model="resnet18"))
    metrics = fit(TrainConfig(resume=str(tmp_path / "run"), epochs=2))
    assert metrics["epochs"] == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["epochs"] == 2 and saved["task"] in ("classification", "detection", "segmentation", "text")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(launcher: list[str], argv: list[str], out) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "convzoo", "train", *argv,
               "--out", str(out)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=420)
    return process.returncode, stdout, stderr


COMMON = ["--epochs", "1", "--device", "cpu", "--seed", "5", "--deterministic", "--no-progress", "--threads", "1"]


# segmentation's DDP run costs about 20 CPU-seconds (three processes importing torch): kept for -m slow; the
# confusion matrices summed over shards are checked in-process in tests/test_segmentation_task.py
@pytest.mark.parametrize("task", [pytest.param(task, marks=pytest.mark.slow) if task == "segmentation" else task
                                  for task in sorted(DDP_ARGS)])
def test_ddp_two_cpu_processes_agree_with_one(task, tmp_path):
    from convzoo.cli import build_parser

    argv = [*DDP_ARGS[task], *COMMON]
    code, stdout, stderr = _finish(_torchrun(["--standalone", "--nproc-per-node", "2"], argv, tmp_path / "ddp"))
    assert code == 0, stderr[-3000:]
    assert stdout.count("Epoch 1/1") == 1  # rank 0 alone logs
    record = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text())
    if task == "classification":  # 2 processes x 32 samples = one process x 64: the same weights and numbers
        args = build_parser().parse_args(["train", *argv, "--out", str(tmp_path / "one")])
        single = args.func(args)
        a, b = weights(tmp_path / "ddp"), weights(tmp_path / "one")
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)
        assert record["dev:loss"] == pytest.approx(single["dev:loss"], rel=1e-4)
        assert record["loss"] == pytest.approx(single["loss"], rel=1e-4)
    else:  # the samplers of the RPN and RoI heads (the U-Net's dropout) draw per process; the dev AP gathered (the
        # confusion matrices summed) over 2 shards of 3 images equals one process evaluating the same checkpoint
        args = build_parser().parse_args(["evaluate", str(tmp_path / "ddp"), "--checkpoint", "last", "--split", "dev"])
        alone = args.func(args)
        keys = ("dev:mIoU", "dev:pixel_accuracy") if task == "segmentation" else ("dev:bbox:AP", "dev:voc:mAP")
        for key in keys:
            assert record[key] == pytest.approx(alone[key], abs=1e-9)


@pytest.mark.slow  # the 2-process test covers DDP in the default run
def test_ddp_two_nodes_on_localhost_agree_with_one(tmp_path):
    """torchrun --nnodes 2 with c10d rendezvous on 127.0.0.1: two "machines" of one process each."""
    from convzoo.cli import build_parser

    argv = [*DDP_ARGS["classification"], *COMMON]
    port = _free_port()
    nodes = [_torchrun(["--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1", "--rdzv-backend",
                        "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "convzoo-test"],
                       argv, tmp_path / "nodes") for rank in (0, 1)]
    results = [_finish(node) for node in nodes]
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    assert sum(stdout.count("Epoch 1/1") for _, stdout, _ in results) == 1
    args = build_parser().parse_args(["train", *argv, "--out", str(tmp_path / "one")])
    single = args.func(args)
    a, b = weights(tmp_path / "nodes"), weights(tmp_path / "one")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4)
    record = json.loads((tmp_path / "nodes" / "metrics.jsonl").read_text())
    assert record["dev:loss"] == pytest.approx(single["dev:loss"], rel=1e-4)


def test_budget_progress_follows_the_faster_of_steps_and_time():
    clock = [0.0]
    budget = Budget(total_steps=100, minutes=1.0, clock="wall")
    budget.now, budget.started = (lambda: clock[0]), 0.0
    assert budget.progress(10) == pytest.approx(0.1)
    clock[0] = 30.0  # half the time used after 10 of 100 steps: the schedule is half-way
    assert budget.progress(10) == pytest.approx(0.5) and budget.schedule_step(10, 0.5) == 50
    clock[0] = 61.0
    assert budget.progress(10) > 1.0
    assert Budget(total_steps=100, minutes=None, clock="cpu").progress(25) == 0.25


def test_time_budget_stops_training_warns_and_ends_the_schedule(tmp_path, capsys):
    config = dataclasses.replace(TASKS["classification"], epochs=200, max_minutes=0.06, clock="cpu",
                                 deterministic=False, out=str(tmp_path / "budget"))
    metrics = fit(config)
    assert 0 < metrics["steps"] < 200 * 20
    err = capsys.readouterr().err
    assert "--max-minutes 0.06 (cpu clock) ended training after" in err
    records = [json.loads(r) for r in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()]
    # the cosine schedule ran on time and got near its end. The last record can lie some way before the stop: a CI
    # run at a 1.8 s budget logged 22% of the base rate last, a step at 69% of the budget (0.56 s before the stop,
    # perhaps the epoch-end evaluation); at 3.6 s and a 10% bound such a gap still passes
    assert records[-1]["lr"] < 0.1 * 1e-3
    assert "test:accuracy" in metrics and (tmp_path / "budget" / "best.safetensors").is_file()
