"""Optimizers without weight decay on BatchNorm parameters and biases, and learning-rate schedules as pure functions.

The schedule is a function of the step alone (``learning_rate(step, ...)``), so resuming needs only the step count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

DEFAULT_LR = {"sgd": 0.1, "rmsprop": 0.045, "adam": 1e-3, "adamw": 1e-3, "adadelta": 1.0}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights of convolutions and linear layers (decayed) and the rest (not decayed).

    Tensors with one dimension (biases, BatchNorm scales and shifts) get no decay: decaying BN's scale only changes
    the effective learning rate of the following layer (van Laarhoven 2017), and biases are not over-parametrized.
    Frozen parameters (``requires_grad=False``) are left out.
    """
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(name: str, params: Iterable, lr: float, momentum: float = 0.9, nesterov: bool = True
                    ) -> torch.optim.Optimizer:
    """``sgd`` (momentum, Nesterov), ``rmsprop`` (the Inception papers'), ``adam`` (L2 in the gradient), ``adamw``,
    ``adadelta`` (Zeiler 2012, with Kim 2014's rho 0.95 and epsilon 1e-6; ``lr`` scales the update, 1.0 in the paper).

    RMSProp as in Inception-v3 (Szegedy et al. 2015, Sec. 8): decay 0.9, epsilon 1.0, momentum 0.9. Deviation:
    PyTorch adds epsilon outside the square root (``g / (sqrt(v) + eps)``), TensorFlow inside (``sqrt(v + eps)``).
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1.0, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-6)
    raise ValueError(f"unknown optimizer {name!r}; expected sgd, rmsprop, adam, adamw or adadelta")


def learning_rate(step: int, total_steps: int, base_lr: float, schedule: str = "cosine", warmup_steps: int = 0,
                  milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    - warmup (every schedule but one-cycle): linear from ``base_lr / warmup_steps`` to ``base_lr`` over the first
      ``warmup_steps`` steps (Goyal et al. 2017, Sec. 2.2, gradual warmup);
    - ``constant``; ``step``: times ``gamma`` at each milestone (fractions of ``total_steps``; He et al. 2016);
    - ``cosine``: ``base_lr * (1 + cos(pi * t)) / 2`` with t going from 0 to 1 after warmup (Loshchilov & Hutter 2017,
      SGDR without restarts);
    - ``one-cycle`` (Smith & Topin 2018): from ``base_lr / 25`` up to ``base_lr`` over the warmup (30% of training if
      ``warmup_steps`` is 0) along a half cosine, then down to ``base_lr / 25 / 1e4``. Momentum is not cycled.
    """
    if schedule == "one-cycle":
        up = warmup_steps or max(1, round(0.3 * total_steps))
        start, end = base_lr / 25, base_lr / 25 / 1e4
        if step < up:
            return start + (base_lr - start) * (1 - math.cos(math.pi * step / up)) / 2
        t = min(1.0, (step - up) / max(1, total_steps - up))
        return end + (base_lr - end) * (1 + math.cos(math.pi * t)) / 2
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        passed = sum(step >= round(m * total_steps) for m in milestones)
        return base_lr * gamma ** passed
    if schedule == "cosine":
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return base_lr * (1 + math.cos(math.pi * t)) / 2
    raise ValueError(f"unknown schedule {schedule!r}; expected constant, step, cosine or one-cycle")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` in every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def budget_learning_rate(step: int, schedule_step: int, total_steps: int, base_lr: float, schedule: str = "cosine",
                         warmup_steps: int = 0, milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1
                         ) -> float:
    """:func:`learning_rate` under a time budget: the decay follows ``schedule_step`` (where progress has got to,
    >= ``step``), the linear warmup the optimizer steps actually taken, so a budget that runs ahead of the planned
    steps shortens the decay but not the warmup. Equal to ``learning_rate(step, ...)`` when both steps agree."""
    args = (total_steps, base_lr, schedule, warmup_steps, milestones, gamma)
    if schedule == "one-cycle" or schedule_step == step or step >= warmup_steps:
        return learning_rate(schedule_step, *args)
    return learning_rate(max(schedule_step, warmup_steps), *args) * (step + 1) / warmup_steps
