"""``fit(config)``: a whole training run, as ``convzoo train`` runs it, leaving everything in its run folder.

    metrics = fit(TrainConfig(data="digits", epochs=20))
    metrics["test:accuracy"], metrics["run_dir"]

The run folder holds ``config.json``, ``metrics.jsonl``, ``tensorboard/``, the ``last`` and ``best`` checkpoints
(``*.safetensors`` + ``*.state.pt``), ``curves.png`` and ``confusion_test.png``. Nothing is lost: checkpoints are
atomic; Ctrl-C (or a callback raising KeyboardInterrupt) saves ``last`` at the current step and re-raises; a non-finite
loss stops the run before the bad step, keeping the last good checkpoint; ``resume=RUN_DIR`` continues bit for bit
(on the CPU, with ``--workers 0``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from convzoo.data import load_data
from convzoo.train import distributed as dist_utils
from convzoo.train.build import build_model, make_loader, set_train_mode
from convzoo.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from convzoo.train.config import TrainConfig
from convzoo.train.engine import NonFiniteLossError, StepOptions, TrainState, evaluate, summarize, train_one_epoch
from convzoo.train.logging import (
    RunLogger,
    epoch_line,
    plot_confusion_matrix,
    plot_curves,
    read_metrics,
    truncate_metrics,
)
from convzoo.train.optim import DEFAULT_LR, build_optimizer, learning_rate, param_groups

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<model>-<data>-<YYYYmmdd-HHMMSS>`` (a ``spec:`` model is called ``spec``, the data without its path)."""
    model = "spec" if config.model.startswith("spec:") else config.model
    return Path("runs") / f"{model}-{config.data.partition(':')[0]}-{datetime.now():%Y%m%d-%H%M%S}"


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed torch (all devices), numpy and Python; with ``deterministic`` ask for deterministic kernels only."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic


@contextmanager
def graceful_interrupt(state: TrainState, enabled: bool):
    """The first Ctrl-C asks the loop to stop at the next step boundary; a second one interrupts at once."""
    if not enabled or sys.platform == "win32":
        yield
        return

    def handler(signum, frame):
        if state.stop_requested:
            raise KeyboardInterrupt
        state.stop_requested = True
        print("\nCtrl-C: saving a checkpoint after this step (press again to stop at once)", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(config: TrainConfig, callbacks: Iterable[Callable[[TrainState, torch.nn.Module], None]] = ()) -> dict:
    """Train as ``config`` says; return the last epoch's metrics, the test metrics and ``run_dir``.

    ``callbacks`` are called after every optimizer step as ``callback(state, model)`` with the TrainState and the
    model being trained (tests use them to interrupt or to break the model).
    """
    context, device = dist_utils.init_distributed(config.device)
    threads = torch.get_num_threads()
    # 8x8 digits are too small for intra-op parallelism: on a busy CPU extra threads only spin (10x slower).
    wanted = config.threads or (1 if device.type == "cpu" and config.data == "digits" else None)
    if wanted:
        torch.set_num_threads(wanted)
    try:
        return _fit(config, context, device, list(callbacks))
    finally:
        torch.set_num_threads(threads)
        dist_utils.shutdown_distributed()


def _checkpoint_state(optimizer, scaler, state: TrainState) -> dict:
    fields = dataclasses.asdict(state)
    fields.pop("stop_requested")
    return {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else {},
            "train_state": fields, "rng": rng_state()}


def _fit(config: TrainConfig, context, device: torch.device, callbacks: list) -> dict:
    if config.amp and device.type != "cuda":
        raise ValueError(f"--amp {config.amp} needs a CUDA device (this run is on {device}); mixed precision on a "
                         "CPU is slow (no native bf16/fp16 kernels), so convzoo refuses it")
    if config.batch_size % context.world_size:
        raise ValueError(f"--batch-size {config.batch_size} (the global batch) is not divisible by the "
                         f"{context.world_size} processes")
    run_dir = Path(config.resume or config.out or dist_utils.broadcast_object(str(default_run_dir(config)), context))
    set_determinism(config.seed + context.rank, config.deterministic)
    splits = load_data(config.data, config.augment, config.image_size, config.skip_bad_images)
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = build_model(config, splits.num_classes, splits.input_size).to(device)
    torch.manual_seed(config.seed + 1 + context.rank)  # augmentation and dropout differ between ranks
    if config.channels_last and len(splits.input_size) == 3:
        model = model.to(memory_format=torch.channels_last)
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    optimizer = build_optimizer(config.optimizer, param_groups(model, config.weight_decay), lr, config.momentum,
                                config.nesterov)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    state = TrainState()
    if config.resume:
        saved = load_checkpoint(run_dir, "last", model, map_location=device)
        optimizer.load_state_dict(saved["optimizer"])
        if scaler is not None and saved["scaler"]:
            scaler.load_state_dict(saved["scaler"])
        state = TrainState(**saved["train_state"])
        set_rng_state(saved["rng"])  # rank 0's generators; other ranks draw their own stream again
        if context.rank:
            torch.manual_seed(config.seed + 1 + context.rank + 7919 * state.step)
        truncate_metrics(run_dir / "metrics.jsonl", state.epoch)
    trained = torch.compile(model) if config.compile else model
    trained = dist_utils.wrap_model(trained, context, device, config.sync_bn)

    per_rank = config.batch_size // context.world_size
    sampler = dist_utils.ResumableSampler(splits.train, context, shuffle=True, seed=config.seed)
    train_loader = make_loader(splits.train, per_rank, sampler, config.workers, train=True, seed=config.seed,
                               pin_memory=device.type == "cuda")
    steps_per_epoch = len(sampler) // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {config.batch_size} exceeds the {len(splits.train)} training images")

    def eval_loader(dataset):
        shard = list(range(context.rank, len(dataset), context.world_size))
        return make_loader(dataset, max(per_rank, 256), shard, config.workers, pin_memory=device.type == "cuda")

    dev_loader, test_loader = eval_loader(splits.dev), eval_loader(splits.test)
    lr_at = partial(learning_rate, total_steps=config.epochs * steps_per_epoch, base_lr=lr, schedule=config.schedule,
                    warmup_steps=round(config.warmup * steps_per_epoch), milestones=config.milestones,
                    gamma=config.gamma)
    options = StepOptions(device, AMP_DTYPES.get(config.amp), config.channels_last, config.grad_clip,
                          config.label_smoothing, config.aux_weight, sync_every=1 if device.type == "cpu" else 25)
    logger = RunLogger(run_dir, enabled=context.is_main)
    if context.is_main:
        if not config.resume:  # a new run in an old folder starts a new metrics file
            truncate_metrics(run_dir / "metrics.jsonl", 0)
        (run_dir / "config.json").write_text(config.to_json() + "\n")
        print(f"convzoo train: {config.model} on {config.data} ({len(splits.train)} train, {len(splits.dev)} dev, "
              f"{len(splits.test)} test images) -> {run_dir}", file=sys.stderr)
    show_progress = context.is_main and (config.progress if config.progress is not None else sys.stderr.isatty())
    metrics: dict[str, float] = {}
    started = time.perf_counter()
    try:
        with graceful_interrupt(state, enabled=not context.enabled):
            while state.epoch < config.epochs:
                epoch_start = time.perf_counter()
                sampler.set_epoch(state.epoch, skip=state.batch * per_rank)
                train_loader.generator.manual_seed(config.seed * 10007 + state.epoch)
                set_train_mode(trained, config.freeze_backbone)
                with tqdm(total=steps_per_epoch, initial=state.batch, disable=not show_progress, leave=False,
                          desc=f"Epoch {state.epoch + 1}/{config.epochs}", dynamic_ncols=True) as bar:
                    sums = train_one_epoch(trained, train_loader, optimizer, state, lr_at, options, scaler, callbacks,
                                           bar)
                if state.stop_requested:
                    raise KeyboardInterrupt
                metrics = summarize(dist_utils.reduce_sums(sums, context, device))
                dev_sums, _ = evaluate(trained_eval(trained), dev_loader, options, splits.num_classes)
                metrics.update(summarize(dist_utils.reduce_sums(dev_sums, context, device), "dev:"))
                seconds = time.perf_counter() - epoch_start
                state.epoch, state.batch, state.sums = state.epoch + 1, 0, {}
                improved = metrics["dev:accuracy"] > state.best
                if improved:
                    state.best, state.best_epoch = metrics["dev:accuracy"], state.epoch
                if context.is_main:
                    print(epoch_line(state.epoch, config.epochs, seconds, metrics), flush=True)
                    logger.log_epoch(state.epoch, metrics, seconds, lr=lr_at(max(state.step - 1, 0)))
                    checkpoint = _checkpoint_state(optimizer, scaler, state)
                    save_checkpoint(run_dir, "last", trained, checkpoint)
                    if improved:
                        save_checkpoint(run_dir, "best", trained, checkpoint)
    except KeyboardInterrupt:
        if context.is_main:
            save_checkpoint(run_dir, "last", trained, _checkpoint_state(optimizer, scaler, state))
            _plot(run_dir)
            print(f"interrupted at epoch {state.epoch + 1}, batch {state.batch}: saved {run_dir}/last; continue with "
                  f"`convzoo train --resume {run_dir}`", file=sys.stderr)
        logger.close()
        raise
    except NonFiniteLossError as error:
        logger.close()
        if context.is_main:
            _plot(run_dir)
        kept = f"the last good checkpoint is {run_dir}/last (epoch {state.epoch})" if state.epoch else \
            "no checkpoint was written (it happened in the first epoch)"
        raise NonFiniteLossError(f"{error}: stopping; {kept}. Try a lower --lr or --grad-clip") from None
    test_sums, matrix = evaluate(trained_eval(trained), test_loader, options, splits.num_classes)
    test_sums = dist_utils.reduce_sums(test_sums, context, device)
    metrics.update(summarize(test_sums, "test:"))
    if context.enabled:
        matrix = _reduce_matrix(matrix, device)
    if context.is_main:
        _plot(run_dir)
        plot_confusion_matrix(matrix, splits.class_names, run_dir / "confusion_test.png")
        print(f"test: loss={metrics['test:loss']:.4f} accuracy={metrics['test:accuracy']:.4f} "
              f"(best dev:accuracy={state.best:.4f} at epoch {state.best_epoch}; {run_dir})", file=sys.stderr)
    logger.close()
    return {**metrics, "epochs": state.epoch, "seconds": time.perf_counter() - started, "run_dir": str(run_dir),
            "bad_images": splits.bad_images}


def _plot(run_dir: Path) -> None:
    records = read_metrics(run_dir / "metrics.jsonl")
    if records:
        plot_curves(records, run_dir / "curves.png")


def trained_eval(model: torch.nn.Module) -> torch.nn.Module:
    """The module to evaluate: inside DistributedDataParallel (whose forward may broadcast buffers, a collective
    that ranks with unequal shards would not match)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _reduce_matrix(matrix: torch.Tensor, device: torch.device) -> torch.Tensor:
    import torch.distributed as dist

    matrix = matrix.to(device)
    dist.all_reduce(matrix)
    return matrix.cpu()

