"""Shared timing for the model benchmarks: one step function per mode, implementations timed alternately."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


def step_fn(model: nn.Module, x: torch.Tensor, train: bool,
            loss_fn: Callable[[object, torch.Tensor], torch.Tensor] | None = None) -> Callable[[], None]:
    """A closure running one inference (eval, no_grad) or one training step (forward, backward, SGD) on ``x``."""
    if not train:
        model.eval()

        def infer() -> None:
            with torch.no_grad():
                model(x)
        return infer
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    target = torch.zeros(x.shape[0], dtype=torch.long)
    loss_fn = loss_fn or nn.functional.cross_entropy

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        optimizer.step()
    return step


def best_times(steps: list[Callable[[], None]], reps: int) -> list[float]:
    """Seconds of the fastest of ``reps`` runs of each step after one warm-up, the steps taking turns, so that
    a load that comes and goes on the machine falls on all of them alike."""
    best = [float("inf")] * len(steps)
    for step in steps:
        step()  # warm-up
    for rep in range(reps):
        order = list(enumerate(steps))
        for i, step in order if rep % 2 == 0 else order[::-1]:  # alternate who goes first
            start = time.perf_counter()
            step()
            best[i] = min(best[i], time.perf_counter() - start)
    return best
