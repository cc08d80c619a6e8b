"""Nothing lost: a checkpoint is one atomic unit at every instant of a save (faults injected between every two file
operations, a disk that fills, kill -9 of a real training process), a run folder has one owner, only finite
models are saved as good, a malicious pickle is never run."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from run_helpers import assert_same_weights, weights
from safetensors.torch import load_file
from torch import nn

from convzoo.tasks import DetectionOptions
from convzoo.train import NonFiniteLossError, TrainConfig, fit
from convzoo.train import checkpoint as ckpt
from convzoo.train.runfolder import RunFolderError, claim_run_folder

STEPS = ("weights", "state", "commit", "weights-renamed", "state-renamed", "done")
TINY = TrainConfig(model="spec:CB-8-3-1-same,M-2-2,F,D-0.2,H-32", data="digits", batch_size=64, epochs=2,
                   device="cpu", deterministic=True, seed=3, threads=1, progress=False)


class Crash(Exception):
    pass


@pytest.fixture
def fault():
    """Set ``ckpt.FAULT`` for one test."""
    yield lambda hook: setattr(ckpt, "FAULT", hook)
    ckpt.FAULT = None


def _model(value: float) -> nn.Module:
    model = nn.Linear(3, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


@pytest.mark.parametrize("step", STEPS)
def test_a_save_interrupted_at_any_step_leaves_one_whole_checkpoint(tmp_path, fault, step):
    ckpt.save_checkpoint(tmp_path, "last", _model(1.0), {"epoch": 1})

    def crash(at):
        if at == step:
            raise Crash(at)

    fault(crash)
    with pytest.raises(Crash):
        ckpt.save_checkpoint(tmp_path, "last", _model(2.0), {"epoch": 2})
    fault(None)
    model = _model(0.0)
    state = ckpt.load_checkpoint(tmp_path, "last", model)  # a reader follows the journal, changing nothing
    committed = STEPS.index(step) >= STEPS.index("commit")
    assert state["epoch"] == (2 if committed else 1)
    assert torch.all(model.weight == (2.0 if committed else 1.0))
    ckpt.recover(tmp_path, "last")  # the owner's next start finishes or discards the save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors", "last.state.pt"]
    assert ckpt.load_checkpoint(tmp_path, "last")["epoch"] == state["epoch"]


def test_a_full_disk_mid_save_keeps_the_previous_checkpoint_and_says_so(tmp_path, fault):
    ckpt.save_checkpoint(tmp_path, "best", _model(1.0), {"epoch": 1})

    def full(at):
        if at == "state":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "best.state.pt.new"))

    fault(full)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(tmp_path, "best", _model(2.0), {"epoch": 2})
    fault(None)
    assert ckpt.load_checkpoint(tmp_path, "best")["epoch"] == 1
    ckpt.save_checkpoint(tmp_path, "best", _model(3.0), {"epoch": 3})  # the leftovers are cleaned by the next save
    assert ckpt.load_checkpoint(tmp_path, "best")["epoch"] == 3 and not list(tmp_path.glob("*.new"))


def test_stale_temporary_files_are_cleaned(tmp_path):
    (tmp_path / ".last.safetensors.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "last.safetensors.new").write_bytes(b"partial")
    assert ckpt.recover(tmp_path, "last") == "discarded"
    assert list(tmp_path.iterdir()) == []


def test_a_malicious_training_state_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt.save_checkpoint(tmp_path, "last", _model(1.0), {"epoch": 1})
    with open(tmp_path / "last.state.pt", "wb") as f:
        pickle.dump({"evil": Evil()}, f)
    with pytest.raises(ValueError, match="never unpickles"):
        ckpt.load_checkpoint(tmp_path, "last")
    assert not marker.exists()


def test_corrupt_checkpoint_files_are_one_line_errors(tmp_path):
    ckpt.save_checkpoint(tmp_path, "last", _model(1.0), {"epoch": 1})
    (tmp_path / "last.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="last.safetensors is not a readable safetensors file"):
        ckpt.load_checkpoint(tmp_path, "last")
    (tmp_path / "last.state.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="last.state.pt"):
        ckpt.load_checkpoint(tmp_path, "last")


KILL_ARGV = ["--model", TINY.model, "--data", "digits", "--batch-size", "64", "--epochs", "3", "--device", "cpu",
             "--deterministic", "--seed", "3", "--threads", "1", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    subprocess.run([sys.executable, "-m", "convzoo", "train", *KILL_ARGV, "--out", str(out)], env=ENV, check=True,
                   capture_output=True, timeout=300)
    return load_file(out / "last.safetensors")


# kill -9 of a real `convzoo train` at a step of its third save (last, best, then epoch 2's last); the resumed run
# ends with the weights of an uninterrupted one. Every step is covered in-process above; two more kills: -m slow.
@pytest.mark.parametrize("step", ["commit", pytest.param("weights", marks=pytest.mark.slow),
                                  pytest.param("weights-renamed", marks=pytest.mark.slow)])
def test_kill_9_during_a_save_then_resume_is_bit_exact(tmp_path, uninterrupted, step):
    run = [sys.executable, "-m", "convzoo", "train", *KILL_ARGV, "--out", str(tmp_path / "cut")]
    killed = subprocess.run(run, capture_output=True, timeout=300, env={**ENV, "CONVZOO_CHECKPOINT_FAULT": f"{step}:3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = subprocess.run([sys.executable, "-m", "convzoo", "train", "--resume", str(tmp_path / "cut")], env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "removed the stale lock" in resumed.stderr
    assert_same_weights(uninterrupted, weights(tmp_path / "cut"))


DETECTOR_ARGV = ["--model", "faster_rcnn_r50_fpn", "--backbone", "resnet18", "--small", "--data", "shapes",
                 "--image-size", "64", "--min-size", "64", "--max-size", "64", "--train-size", "4", "--val-size", "2",
                 "--batch-size", "2", "--epochs", "2", "--device", "cpu", "--deterministic", "--seed", "3",
                 "--threads", "1", "--no-progress"]


@pytest.mark.slow  # the classification kill -9 tests cover the same journal in the default run
def test_kill_9_of_a_detector_run_then_resume_is_bit_exact(tmp_path):
    """The same for the detection task: killed before the commit record of its third save (epoch 2's last), so the
    resumed run trains epoch 2 again from epoch 1's checkpoint."""
    run = [sys.executable, "-m", "convzoo", "train", *DETECTOR_ARGV]
    subprocess.run([*run, "--out", str(tmp_path / "full")], env=ENV, check=True, capture_output=True, timeout=300)
    killed = subprocess.run([*run, "--out", str(tmp_path / "cut")], capture_output=True, timeout=300,
                            env={**ENV, "CONVZOO_CHECKPOINT_FAULT": "weights:3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = subprocess.run([sys.executable, "-m", "convzoo", "train", "--resume", str(tmp_path / "cut")], env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "cut"))


def test_one_owner_per_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    with claim_run_folder(run_dir, resume=False):
        with pytest.raises(RunFolderError, match=r"is in use by pid \d+"):
            with claim_run_folder(run_dir, resume=True):
                pass
        (run_dir / "config.json").write_text("{}")
    with pytest.raises(RunFolderError, match="already holds a run.*--resume"):
        fit(dataclasses.replace(TINY, out=str(run_dir)))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename,
                                               "started": 0}))
    with claim_run_folder(run_dir, resume=True):  # the owner is gone: the stale lock is taken over
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    assert not (run_dir / ".lock").exists()


@pytest.mark.parametrize("task", ["classification", "detection"])
def test_a_model_that_blew_up_is_never_saved_as_good(tmp_path, task):
    config = TINY if task == "classification" else TrainConfig(
        model="faster_rcnn_r50_fpn", data="shapes", image_size=64, batch_size=2, epochs=2, device="cpu", seed=3,
        threads=1, progress=False, detection=DetectionOptions(backbone="resnet18", small=True, train_size=4,
                                                               val_size=2, min_size=64, max_size=64))
    steps = 20 if task == "classification" else 2
    good = {}

    def blow_up(state, model):  # the last step of epoch 2 leaves an infinite weight: the loss itself was finite
        if state.epoch == 1 and state.batch == steps:
            good.update(load_file(tmp_path / "run" / "last.safetensors"))
            next(p for p in model.parameters() if p.requires_grad).data[0] = float("inf")

    with pytest.raises(NonFiniteLossError, match="after epoch 2 .*last good checkpoint is .*epoch 1"):
        fit(dataclasses.replace(config, out=str(tmp_path / "run")), callbacks=[blow_up])
    for name in ("last", "best"):
        saved = load_file(tmp_path / "run" / f"{name}.safetensors")
        assert all(torch.isfinite(t).all() for t in saved.values() if t.is_floating_point()), name
    assert all(torch.equal(good[k], v) for k, v in load_file(tmp_path / "run" / "last.safetensors").items())


def test_a_bad_image_mid_epoch_saves_first(tmp_path):
    from convzoo.data.imagefolder import BadImageError

    def bad_image(state, model):
        if state.epoch == 0 and state.batch == 5:
            raise BadImageError("cannot decode image x.png: truncated")

    with pytest.raises(BadImageError):
        fit(dataclasses.replace(TINY, out=str(tmp_path / "run")), callbacks=[bad_image])
    saved = ckpt.load_checkpoint(tmp_path / "run", "last")
    assert (saved["train_state"]["epoch"], saved["train_state"]["batch"]) == (0, 5)
