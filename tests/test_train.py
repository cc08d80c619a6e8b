"""Pieces of the trainer: schedules (hand-computed values), parameter groups, checkpoints, the epoch line."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convzoo.train.checkpoint import atomic_write, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from convzoo.train.distributed import DistributedContext, ResumableSampler
from convzoo.train.logging import confusion_matrix, epoch_line
from convzoo.train.optim import budget_learning_rate, build_optimizer, learning_rate, param_groups


def test_epoch_line_is_the_courses():
    metrics = {"loss": 0.21041, "accuracy": 0.93661, "dev:loss": 0.18719, "dev:accuracy": 0.945}
    assert epoch_line(3, 10, 12.41, metrics) == \
        "Epoch 3/10 12.4s loss=0.2104 accuracy=0.9366 dev:loss=0.1872 dev:accuracy=0.9450"


@pytest.mark.parametrize("step, expected", [
    (0, 0.25), (3, 1.0),  # warmup over 4 steps: 1/4, ..., 4/4 of the base rate
    (4, 1.0), (8, 0.5), (12, 0.0),  # cosine over the remaining 8 steps: (1 + cos(pi * t)) / 2, t = 0, 1/2, 1
])
def test_cosine_with_warmup(step, expected):
    assert learning_rate(step, 12, 1.0, "cosine", warmup_steps=4) == pytest.approx(expected)


def test_step_and_one_cycle_schedules():
    # milestones at 50% and 75% of 100 steps: 0.1 -> 0.01 -> 0.001
    assert [learning_rate(s, 100, 0.1, "step") for s in (49, 50, 74, 75)] == pytest.approx([0.1, 0.01, 0.01, 0.001])
    # one-cycle: starts at base/25, peaks at base after 30% of steps, ends at base/25/1e4
    assert learning_rate(0, 100, 1.0, "one-cycle") == pytest.approx(0.04)
    assert learning_rate(30, 100, 1.0, "one-cycle") == pytest.approx(1.0)
    assert learning_rate(100, 100, 1.0, "one-cycle") == pytest.approx(0.04e-4)
    assert learning_rate(15, 100, 1.0, "one-cycle") == pytest.approx(0.04 + 0.96 * (1 - math.cos(math.pi / 2)) / 2)


def test_no_weight_decay_on_batchnorm_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)  # frozen parameters are left out
    decay, no_decay = param_groups(model, 5e-4)
    assert [tuple(p.shape) for p in decay["params"]] == [(2, 4)]
    assert [tuple(p.shape) for p in no_decay["params"]] == [(4,), (4,), (4,), (2,)]
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (5e-4, 0.0)
    sgd = build_optimizer("sgd", param_groups(model, 1e-4), 0.1)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    rmsprop = build_optimizer("rmsprop", model.parameters(), 0.045)
    assert (rmsprop.defaults["alpha"], rmsprop.defaults["eps"]) == (0.9, 1.0)


def test_checkpoint_round_trip_and_mismatched_pair(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 5, 5)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path, "last", model, {"optimizer": optimizer.state_dict(), "epoch": 3, "rng": rng_state()})
    expected = torch.rand(3)
    clone = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = load_checkpoint(tmp_path, "last", clone)
    for a, b in zip(model.state_dict().values(), clone.state_dict().values()):
        assert torch.equal(a, b)
    assert state["epoch"] == 3 and state["optimizer"]["state"][0]["momentum_buffer"].shape == (2, 1, 3, 3)
    set_rng_state(state["rng"])
    assert torch.equal(torch.rand(3), expected)
    # the state file of another save does not pass for this weights file
    save_checkpoint(tmp_path, "other", model, {"epoch": 4})
    (tmp_path / "other.state.pt").replace(tmp_path / "last.state.pt")
    with pytest.raises(ValueError, match="different saves"):
        load_checkpoint(tmp_path, "last", clone)


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.bin"
    target.write_text("old")

    def failing(path):
        with open(path, "w") as f:
            f.write("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_sampler_shards_and_skips():
    data = list(range(10))
    ranks = [ResumableSampler(data, DistributedContext(r, 2), seed=1) for r in (0, 1)]
    single = ResumableSampler(data, DistributedContext(), seed=1)
    for sampler in (*ranks, single):
        sampler.set_epoch(2)
    merged = [i for pair in zip(*(list(s) for s in ranks)) for i in pair]
    assert merged == list(single)  # rank r takes every other index: the global order is unchanged
    single.set_epoch(2, skip=4)
    assert list(single) == merged[4:] and len(single) == 6


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_budget_schedule_shortens_the_decay_not_the_warmup():
    for step in range(0, 100, 7):  # without a budget running ahead: the plain schedule
        assert budget_learning_rate(step, step, 100, 0.1, "cosine", 10) == learning_rate(step, 100, 0.1, "cosine", 10)
    # the budget is at 60% after 3 steps: still warming up (4/10 of the rate), of the decay at 60%
    assert budget_learning_rate(3, 60, 100, 0.1, "cosine", 10) == pytest.approx(
        learning_rate(60, 100, 0.1, "cosine", 10) * 4 / 10)
    assert budget_learning_rate(30, 60, 100, 0.1, "step", 10) == learning_rate(60, 100, 0.1, "step", 10)
