"""Training and evaluation loops of the detectors, on the training engine's parts (``convzoo.train``): atomic
safetensors checkpoints with resume, JSON-lines/TensorBoard logs, torchrun + DistributedDataParallel.

The learning-rate schedule runs on *progress* = max(steps done / total steps, time used / time budget), so a run
with ``max_minutes`` ends its cosine decay exactly when the time is up. ``clock="cpu"`` measures that time as the
process's CPU time (``time.process_time``), a budget that does not depend on how busy a shared machine is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from convzoo.data.detection import coco_ground_truth, coco_results, collate_detection
from convzoo.evaluation import evaluate_coco
from convzoo.tasks.detection import given_proposals, voc_mean_ap
from convzoo.train.checkpoint import load_checkpoint, save_checkpoint, unwrap_model
from convzoo.train.distributed import init_distributed, reduce_sums, wrap_model
from convzoo.train.logging import RunLogger
from convzoo.train.optim import build_optimizer, learning_rate, param_groups, set_learning_rate


@dataclass
class DetectionTrainConfig:
    """How to train: ``epochs`` over the data or until ``max_minutes`` (0 = no limit), whichever comes first."""

    epochs: int = 12
    max_minutes: float = 0.0
    clock: str = "wall"
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_steps: int = 100
    grad_clip: float = 10.0
    workers: int = 0
    device: str | None = None
    out: str = "runs/detect"
    resume: bool = False
    log_every: int = 20


def train_detector(model: nn.Module, train_set: Dataset, config: DetectionTrainConfig,
                   eval_fn=None) -> dict[str, float]:
    """Train ``model`` (a detector: losses dict in training mode) on ``train_set``; checkpoint ``last`` after every
    epoch in ``config.out``; with ``resume``, continue from it. ``eval_fn(model) -> dict`` runs after each epoch."""
    context, device = init_distributed(config.device)
    model.to(device)
    out = Path(config.out)
    sampler = DistributedSampler(train_set, shuffle=True) if context.enabled else None
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=config.workers, collate_fn=collate_detection, drop_last=True)
    optimizer = build_optimizer(config.optimizer, param_groups(model, config.weight_decay), config.lr,
                                config.momentum, nesterov=False)
    start_epoch, step, used_seconds = 0, 0, 0.0
    if config.resume and (out / "last.safetensors").is_file():
        state = load_checkpoint(out, "last", model)
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, used_seconds = state["epoch"] + 1, state["step"], state["seconds"]
    ddp_model = wrap_model(model, context, device)
    logger = RunLogger(out, enabled=context.is_main, tensorboard=False)
    total_steps = config.epochs * len(loader)
    if config.clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {config.clock!r}")
    now = time.process_time if config.clock == "cpu" else time.time
    budget = config.max_minutes * 60
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, config.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        ddp_model.train()
        sums: dict[str, float] = {}
        began, wall_began, batches, out_of_time = now(), time.time(), 0, False
        for images, targets in loader:
            progress = max(step / total_steps, (used_seconds + now() - began) / budget if budget else 0.0)
            if progress >= 1.0:
                out_of_time = True
                break
            # the schedule on progress, times a linear warmup over the first steps (Goyal et al. 2017)
            lr = learning_rate(int(progress * 10_000), 10_000, config.lr, config.schedule)
            lr *= min(1.0, (step + 1) / max(1, config.warmup_steps))
            set_learning_rate(optimizer, lr)
            images = [image.to(device) for image in images]
            targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
            losses = ddp_model(images, targets, proposals=given_proposals(targets))
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise ValueError(f"non-finite loss {loss.item()} at epoch {epoch} step {step}: "
                                 f"{ {k: v.item() for k, v in losses.items()} }; last good checkpoint: {out}/last")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value.item()
            sums["loss"] = sums.get("loss", 0.0) + loss.item()
            step, batches = step + 1, batches + 1
            if context.is_main and config.log_every and step % config.log_every == 0:
                print(f"epoch {epoch + 1} step {step} lr {lr:.4f} " +
                      " ".join(f"{k} {v / batches:.4f}" for k, v in sums.items()), flush=True)
        used_seconds += now() - began
        sums = reduce_sums(sums, context, device) if context.enabled else sums
        metrics = {key: value / max(1, batches * context.world_size) for key, value in sums.items()}
        if context.is_main:
            save_checkpoint(out, "last", model, {"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                                                 "seconds": used_seconds})
            if eval_fn is not None and (out_of_time or epoch + 1 == config.epochs):
                metrics.update(eval_fn(unwrap_model(model)))
            logger.log_epoch(epoch + 1, metrics, time.time() - wall_began, lr=lr, step=step, minutes=used_seconds / 60)
            print(f"epoch {epoch + 1}/{config.epochs} ({used_seconds / 60:.1f} min) " +
                  " ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
        if out_of_time:
            break
    logger.close()
    return {**metrics, "minutes": used_seconds / 60, "steps": step}


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: Dataset, batch_size: int = 4) -> tuple[list[dict], list[int]]:
    """Detections (on the CPU) and image ids for every sample of ``dataset``, in order."""
    model.eval()
    device = next(model.parameters()).device
    detections, image_ids = [], []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_detection)
    for images, targets in loader:
        proposals = given_proposals(targets)
        proposals = [p.to(device) for p in proposals] if proposals is not None else None
        outputs = model([image.to(device) for image in images], proposals=proposals)
        detections += [{k: v.cpu() for k, v in output.items()} for output in outputs]
        image_ids += [int(t.get("image_id", len(image_ids) + i)) for i, t in enumerate(targets)]
    return detections, image_ids


def evaluate_detector(model: nn.Module, dataset: Dataset, classes: Sequence[str], keypoint_names: Sequence[str] = (),
                      category_ids: Sequence[int] | None = None, iou_types: Sequence[str] = ("bbox",),
                      ground_truth: dict | None = None) -> dict[str, float]:
    """COCO AP (``bbox``, ``segm``, ``keypoints`` as asked) and VOC mAP of ``model`` on ``dataset``.

    Keys: ``bbox:AP``, ``bbox:AP50``, ..., ``segm:AP``, ..., ``voc:mAP``."""
    detections, image_ids = predict_dataset(model, dataset)
    ground_truth = ground_truth or coco_ground_truth(dataset, classes, keypoint_names, category_ids)
    results = coco_results(detections, image_ids, category_ids)
    metrics = {}
    for iou_type in iou_types:
        wanted = [r for r in results if iou_type == "bbox" or (iou_type == "segm" and "segmentation" in r)
                  or (iou_type == "keypoints" and "keypoints" in r)]
        kwargs = {"kpt_sigmas": np.full(len(keypoint_names), 0.05)} if iou_type == "keypoints" else {}
        stats = evaluate_coco(ground_truth, wanted, iou_type, **kwargs).stats
        metrics.update({f"{iou_type}:{name}": value for name, value in stats.items()})
    metrics["voc:mAP"] = voc_mean_ap(ground_truth, results)
    return metrics
