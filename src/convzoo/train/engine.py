"""The training loop of a classifier: one epoch of optimization, and evaluation on a split.

Model-agnostic within classification: the loss is ``convzoo.models.aux.classification_loss``, so models with
auxiliary heads (GoogLeNet, Inception-v3) need no special case. Running sums stay on the device and are read only
every ``sync_every`` steps (each step on a CPU), so the loop adds almost nothing to a bare PyTorch loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.models.aux import classification_loss, main_logits
from convzoo.train.optim import set_learning_rate


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; the message says where and which checkpoint is the last good one."""


@dataclass
class TrainState:
    """Where training stands, saved in every checkpoint: ``epoch`` (0-based) in progress, ``batch`` batches of it
    done, ``step`` optimizer steps in all, the running ``sums`` of the epoch in progress, and the best dev score."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    best: float = -math.inf
    best_epoch: int = 0
    stop_requested: bool = False


@dataclass
class StepOptions:
    """How each step runs: ``amp`` is an autocast dtype (CUDA) or None; ``grad_clip`` a max global norm or None."""

    device: torch.device
    amp: torch.dtype | None = None
    channels_last: bool = False
    grad_clip: float | None = None
    label_smoothing: float = 0.0
    aux_weight: float | None = None
    sync_every: int = 1


def to_device(images: torch.Tensor, labels: torch.Tensor, options: StepOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to the device (NHWC memory layout for 4D inputs with ``channels_last``)."""
    images = images.to(options.device, non_blocking=True)
    if options.channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(options.device, non_blocking=True)


def _autocast(options: StepOptions):
    if options.amp is None:
        return nullcontext()
    return torch.autocast(options.device.type, dtype=options.amp)


def _read_sums(sums: dict[str, torch.Tensor], carried: dict[str, float]) -> dict[str, float]:
    return {k: carried.get(k, 0.0) + v.item() for k, v in sums.items()}


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, state: TrainState,
                    lr_at: Callable[[int], float], options: StepOptions, scaler: torch.amp.GradScaler | None = None,
                    callbacks: Iterable[Callable[[TrainState, nn.Module], None]] = (), progress=None
                    ) -> dict[str, float]:
    """Run the batches of ``loader`` (already positioned after ``state.batch`` batches); return the epoch's sums.

    The caller sets the training mode (``model.train()``, or ``build.set_train_mode`` for a frozen backbone).

    Sums: ``loss`` (sum over samples of the training loss, auxiliary terms included), ``correct`` (main logits),
    ``count``. ``state`` is advanced after every optimizer step, then each ``callback(state, model)`` is called;
    a callback (or a first Ctrl-C) may set ``state.stop_requested`` to end the epoch early at that step boundary.
    Raises NonFiniteLossError before applying a step whose loss is NaN or infinite (checked every ``sync_every``).
    """
    zero = torch.zeros((), dtype=torch.float64, device=options.device)
    sums = {"loss": zero.clone(), "correct": zero.clone(), "count": zero.clone()}
    carried = dict(state.sums)
    start, seen = time.perf_counter(), 0
    for images, labels in loader:
        images, labels = to_device(images, labels, options)
        set_learning_rate(optimizer, lr_at(state.step))
        with _autocast(options):
            output = model(images)
            loss = classification_loss(output, labels, options.label_smoothing, options.aux_weight)
        if (state.batch + 1) % options.sync_every == 0 and not torch.isfinite(loss).item():
            raise NonFiniteLossError(f"the loss is {loss.item()} at epoch {state.epoch + 1}, batch {state.batch + 1}")
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
        with torch.no_grad():
            n = labels.shape[0]
            sums["loss"] += loss.detach().double() * n
            sums["correct"] += (main_logits(output).argmax(1) == labels).sum()
            sums["count"] += n
        seen += labels.shape[0]
        state.batch += 1
        state.step += 1
        if progress is not None and state.batch % options.sync_every == 0:
            done = _read_sums(sums, carried)
            progress.set_postfix(loss=f"{done['loss'] / done['count']:.4f}",
                                 accuracy=f"{done['correct'] / done['count']:.4f}",
                                 img_s=f"{seen / (time.perf_counter() - start):.0f}", refresh=False)
        if progress is not None:
            progress.update(1)
        state.sums = _read_sums(sums, carried) if options.sync_every == 1 else state.sums
        for callback in callbacks:
            callback(state, model)
        if state.stop_requested:
            break
    state.sums = _read_sums(sums, carried)
    return dict(state.sums)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, options: StepOptions, num_classes: int
             ) -> tuple[dict[str, float], torch.Tensor]:
    """Cross-entropy sums and the confusion matrix of ``model`` (in eval mode) over ``loader``.

    Returns ({"loss": sum of per-sample CE, "correct": ..., "count": ...}, Tensor[num_classes, num_classes] int64
    with rows = true class, columns = predicted class). The loss has no label smoothing: it is the plain NLL.
    """
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=options.device)
    matrix = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=options.device)
    for images, labels in loader:
        images, labels = to_device(images, labels, options)
        with _autocast(options):
            logits = main_logits(model(images))
        loss += F.cross_entropy(logits.float(), labels, reduction="sum").double()
        matrix += torch.bincount(labels * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
    model.train(was_training)
    matrix = matrix.reshape(num_classes, num_classes).cpu()
    count = matrix.sum().item()
    return {"loss": loss.item(), "correct": matrix.diag().sum().item(), "count": count}, matrix


def predict(model: nn.Module, loader: Iterable, options: StepOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities Tensor[N, num_classes] (float32, CPU) and labels Tensor[N] of every batch of ``loader``."""
    was_training = model.training
    model.eval()
    probabilities, targets = [], []
    with torch.no_grad():
        for images, labels in loader:
            images, _ = to_device(images, labels, options)
            with _autocast(options):
                logits = main_logits(model(images))
            probabilities.append(logits.float().softmax(1).cpu())
            targets.append(labels)
    model.train(was_training)
    return torch.cat(probabilities), torch.cat(targets)


def summarize(sums: dict[str, float], prefix: str = "") -> dict[str, float]:
    """``{"loss", "correct", "count"}`` sums -> ``{prefix + "loss": mean, prefix + "accuracy": fraction}``."""
    count = max(sums.get("count", 0.0), 1.0)
    return {f"{prefix}loss": sums.get("loss", math.nan) / count, f"{prefix}accuracy": sums.get("correct", 0.0) / count}
