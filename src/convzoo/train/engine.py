"""The one training loop: an epoch of optimization over any task's batches.

The task maps a batch to named losses and tallies (:meth:`convzoo.tasks.Task.train_step`); the loop optimizes the
sum of the losses, in the spirit of detectron2's ``SimpleTrainer.run_step``, and owns everything around it: the
learning rate per step, AMP with a gradient scaler, gradient clipping, the non-finite check, running sums, the
progress bar (or a periodic line without a terminal), callbacks and the time budget. Running sums stay on the
device and are read only every ``sync_every`` steps (each step on a CPU).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from convzoo.tasks.base import Task
from convzoo.train.optim import set_learning_rate


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; the message says where and which checkpoint is the last good one."""


@dataclass
class TrainState:
    """Where training stands, saved in every checkpoint: ``epoch`` (0-based) in progress, ``batch`` batches of it
    done, ``step`` optimizer steps in all, ``seconds`` of the budget's clock used, the running ``sums`` of the
    epoch in progress (per-sample sums of each loss and tally), and the best dev score."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    seconds: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    best: float = -math.inf
    best_epoch: int = 0
    stop_requested: bool = False
    out_of_time: bool = False


@dataclass
class StepOptions:
    """How each step runs: ``amp`` is an autocast dtype (CUDA) or None; ``grad_clip`` a max global norm or None."""

    device: torch.device
    amp: torch.dtype | None = None
    channels_last: bool = False
    grad_clip: float | None = None
    sync_every: int = 1


class Budget:
    """Progress of a run in [0, 1]: max(steps done / planned, clock seconds used / budget), so the schedule ends
    exactly when either runs out. ``clock`` "cpu" counts this process's CPU time (``time.process_time``), which a
    busy shared machine does not eat; "wall" the time on the wall."""

    def __init__(self, total_steps: int, minutes: float | None, clock: str, used: float = 0.0,
                 agree: Callable[[float], float] | None = None) -> None:
        self.total_steps, self.seconds = total_steps, (minutes or 0.0) * 60
        self.now = time.process_time if clock == "cpu" else time.perf_counter
        self.used, self.started = used, self.now()
        self.agree = agree  # several processes: the largest elapsed time of all, so that all stop together

    def elapsed(self) -> float:
        """Seconds of the clock used, those of earlier sessions of the run included."""
        return self.used + self.now() - self.started

    def progress(self, step: int) -> float:
        if not self.seconds:
            return step / max(self.total_steps, 1)
        elapsed = self.agree(self.elapsed()) if self.agree else self.elapsed()
        by_time = elapsed / self.seconds
        return max(step / max(self.total_steps, 1), by_time)

    def schedule_step(self, step: int, progress: float) -> int:
        """The step the learning-rate schedule is at: ``step``, or further on when time runs out faster."""
        return max(step, min(self.total_steps, int(progress * self.total_steps)))


def autocast(options: StepOptions):
    if options.amp is None:
        return nullcontext()
    return torch.autocast(options.device.type, dtype=options.amp)


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler | list[int], collate: Callable,
                workers: int = 0, train: bool = False, seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of a task's batches; its own generator keeps worker seeds off the global RNG (resumable)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=train,
                      collate_fn=collate, pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)


def _read(sums: dict[str, torch.Tensor], carried: dict[str, float]) -> dict[str, float]:
    keys = set(sums) | set(carried)
    return {k: carried.get(k, 0.0) + (sums[k].item() if k in sums else 0.0) for k in sorted(keys)}


class Heartbeat:
    """Without a terminal (a log file), a line to stderr every ``every`` seconds instead of a progress bar."""

    def __init__(self, every: float, label: str, total: int) -> None:
        self.every, self.label, self.total = every, label, total
        self.last = time.perf_counter()

    def __call__(self, batch: int, text: str) -> None:
        if self.every and time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            print(f"{self.label} batch {batch}/{self.total} {text}", file=sys.stderr, flush=True)


def train_one_epoch(task: Task, model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                    state: TrainState, lr_at: Callable[[int, int], float], options: StepOptions, budget: Budget,
                    scaler: torch.amp.GradScaler | None = None,
                    callbacks: Iterable[Callable[[TrainState, nn.Module], None]] = (), progress=None,
                    heartbeat: Heartbeat | None = None) -> dict[str, float]:
    """Run the batches of ``loader`` (already positioned after ``state.batch`` batches); return the epoch's sums.

    ``lr_at(step, schedule_step)`` is the learning rate of a step (:func:`convzoo.train.optim.budget_learning_rate`).
    The caller sets the training mode (``task.set_train_mode``); ``task.after_optimizer_step(model)`` follows each
    optimizer step. Sums: each named loss and ``loss`` (their sum)
    times the batch's ``count``, and the task's tallies; divide by ``count`` for means. ``state`` is advanced after
    every optimizer step, then each ``callback(state, model)`` is called; a callback (or a first Ctrl-C) may set
    ``state.stop_requested`` to end the epoch at that step boundary; the budget ending sets ``state.out_of_time``.
    Raises NonFiniteLossError before applying a step whose loss is NaN or infinite (checked every ``sync_every``).
    """
    sums: dict[str, torch.Tensor] = {}
    carried = dict(state.sums)
    start = time.perf_counter()
    for batch in loader:
        done = budget.progress(state.step)
        if done >= 1.0:
            state.out_of_time = True
            break
        batch = task.to_device(batch, options.device, options.channels_last)
        set_learning_rate(optimizer, lr_at(state.step, budget.schedule_step(state.step, done)))
        with autocast(options):
            losses, tallies = task.train_step(model, batch)
            loss = sum(losses.values())
        if (state.batch + 1) % options.sync_every == 0 and not torch.isfinite(loss).item():
            named = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items()) if len(losses) > 1 else ""
            raise NonFiniteLossError(f"the loss is {loss.item()} at epoch {state.epoch + 1}, batch {state.batch + 1}"
                                     + (f" ({named})" if named else ""))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if options.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        task.after_optimizer_step(model)
        with torch.no_grad():
            count = tallies["count"].detach().double()
            for key, value in {**losses, "loss": loss}.items():
                sums[key] = sums.get(key, 0) + value.detach().double() * count
            for key, value in tallies.items():
                sums[key] = sums.get(key, 0) + value.detach().double()
        state.batch += 1
        state.step += 1
        done = _read(sums, carried) if state.batch % options.sync_every == 0 else None  # a device sync
        if done is not None and (progress is not None or heartbeat is not None):
            seen = done["count"] - carried.get("count", 0.0)
            per_second = f"{seen / max(time.perf_counter() - start, 1e-9):.0f}"
            text = {"loss": f"{done['loss'] / max(done['count'], 1):.4f}", "samples_s": per_second,
                    "lr": f"{optimizer.param_groups[0]['lr']:.3g}"}
            if progress is not None:
                progress.set_postfix(text, refresh=False)
            if heartbeat is not None:
                heartbeat(state.batch, " ".join(f"{k}={v}" for k, v in text.items()))
        if progress is not None:
            progress.update(1)
        if done is not None:  # what a checkpoint taken by a callback or Ctrl-C holds
            state.sums = done
        state.seconds = budget.elapsed()
        for callback in callbacks:
            callback(state, model)
        if state.stop_requested:
            break
    state.sums = _read(sums, carried)
    state.seconds = budget.elapsed()
    return dict(state.sums)


def epoch_metrics(task: Task, sums: dict[str, float]) -> dict[str, float]:
    """Means per sample of the summed losses (``loss`` first) and the task's metrics of its tallies."""
    count = max(sums.get("count", 0.0), 1.0)
    losses = {k: v / count for k, v in sums.items() if k == "loss" or k.startswith("loss_")}
    return {**losses, **task.train_metrics(sums)}
