"""``fit(config)``: a whole training run of any task, as ``convzoo train`` runs it, leaving everything in its folder.

    metrics = fit(TrainConfig(data="digits", epochs=20))
    metrics["test:accuracy"], metrics["run_dir"]
    fit(TrainConfig(model="mask_rcnn_r50_fpn", data="shapes", detection=DetectionOptions(small=True)))

The run folder holds ``config.json`` (the nested config, the task and its info: all that ``evaluate`` and
``predict`` need), ``metrics.jsonl``, ``tensorboard/``, the ``last`` and ``best`` checkpoints (``*.safetensors`` +
``*.state.pt``; best by the task's dev score), ``curves.png`` and the task's artifacts of the last dev and the
test evaluation (``confusion_test.png``, ``detections_test.json``, ...). Nothing is lost: checkpoints are atomic;
Ctrl-C (or a callback raising KeyboardInterrupt) saves ``last`` at the current step and re-raises; a non-finite
loss stops the run before the bad step, keeping the last good checkpoint; ``resume=RUN_DIR`` continues bit for bit
(on the CPU, with ``--deterministic`` and ``--workers 0``), in the middle of an epoch too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack, contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from convzoo import __version__
from convzoo.errors import is_user_error
from convzoo.options import RESUMABLE
from convzoo.tasks.base import Task, unwrap_model
from convzoo.train import distributed as dist_utils
from convzoo.train.checkpoint import load_checkpoint, recover, rng_state, save_checkpoint, set_rng_state
from convzoo.train.config import TrainConfig, absolute_data, read_run_file
from convzoo.train.engine import (
    Budget,
    Heartbeat,
    NonFiniteLossError,
    StepOptions,
    TrainState,
    autocast,
    epoch_metrics,
    make_loader,
    train_one_epoch,
)
from convzoo.train.logging import RunLogger, epoch_line, plot_curves, read_metrics, truncate_metrics
from convzoo.train.optim import budget_learning_rate, build_optimizer, param_groups
from convzoo.train.run import task_of
from convzoo.train.runfolder import check_new_run, claim_run_folder
from convzoo.weights.files import atomic_write

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
HEARTBEAT_SECONDS = 30.0


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
    if config.resume:
        config = _resumed(config)
    task = task_of(config)
    config = config.resolved(task.defaults)
    context, device = dist_utils.init_distributed(config.device)
    threads = torch.get_num_threads()
    # 8x8 digits are too small for intra-op parallelism: on a busy CPU extra threads only spin (10x slower).
    wanted = config.threads or (1 if device.type == "cpu" and config.data == "digits" else None)
    if wanted:
        torch.set_num_threads(wanted)
    try:
        with ExitStack() as stack:
            return _fit(config, task, context, device, list(callbacks), stack)
    finally:
        torch.set_num_threads(threads)
        dist_utils.shutdown_distributed()


def _resumed(config: TrainConfig) -> TrainConfig:
    """A resume's config: the run's own, with the options in RESUMABLE that ``config`` sets; any other option set
    to something else than the run's is refused (naming it)."""
    saved = TrainConfig.load(config.resume)
    fresh = TrainConfig()
    given = {f.name for f in dataclasses.fields(config)
             if f.name != "resume" and getattr(config, f.name) != getattr(fresh, f.name)}
    fixed = sorted(name for name in given - set(RESUMABLE) if getattr(config, name) != getattr(saved, name))
    if fixed:
        raise ValueError(f"--{', --'.join(k.replace('_', '-') for k in fixed)} cannot change when resuming; "
                         f"only --{', --'.join(k.replace('_', '-') for k in RESUMABLE)} can")
    return dataclasses.replace(saved, resume=config.resume, **{k: getattr(config, k) for k in given & set(RESUMABLE)})


def _checkpoint_state(optimizer, scaler, state: TrainState) -> dict:
    fields = dataclasses.asdict(state)
    fields.pop("stop_requested")
    fields.pop("out_of_time")
    return {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else {},
            "train_state": fields, "rng": rng_state()}


def _validate(config: TrainConfig, context, device: torch.device) -> None:
    if config.amp and device.type != "cuda":
        raise ValueError(f"--amp {config.amp} needs a CUDA device (this run is on {device}); mixed precision on a "
                         "CPU is slow (no native bf16/fp16 kernels), so convzoo refuses it")
    if config.sync_bn and device.type != "cuda":
        raise ValueError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm has no CPU implementation "
                         "(on CPU each process normalizes with the statistics of its own batch)")
    if config.batch_size % context.world_size:
        raise ValueError(f"--batch-size {config.batch_size} (the global batch) is not divisible by the "
                         f"{context.world_size} processes")


def _fit(config: TrainConfig, task: Task, context, device: torch.device, callbacks: list, stack: ExitStack) -> dict:
    _validate(config, context, device)
    run_dir = Path(config.resume or config.out or dist_utils.broadcast_object(str(default_run_dir(config)), context))
    if context.is_main:
        check_new_run(run_dir, bool(config.resume))  # before the data is loaded: fail fast
    set_determinism(config.seed + context.rank, config.deterministic)
    if context.is_main:
        print(f"convzoo train: loading --data {config.data} for the {task.name} task ...", file=sys.stderr, flush=True)
    data = task.load_data()
    for note in data.notes:
        if context.is_main:
            print(f"convzoo train: {note}", file=sys.stderr)
    info = json.loads(json.dumps(data.info))  # what config.json keeps, exactly as predict will read it
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = task.build_model(info, initialize=not config.resume).to(device)
    torch.manual_seed(config.seed + 1 + context.rank)  # augmentation and dropout differ between ranks
    if config.channels_last and len(info.get("input_size", [0, 0, 0])) == 3:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config.optimizer, param_groups(model, config.weight_decay), config.lr,
                                config.momentum, config.nesterov)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    stack.enter_context(claim_run_folder(run_dir, bool(config.resume), enabled=context.is_main))
    if context.is_main:
        for name in ("last", "best"):
            done = recover(run_dir, name)
            if done:
                print(f"convzoo train: {run_dir}/{name}: {done} an interrupted save", file=sys.stderr)
    state = TrainState()
    if config.resume:
        saved_task = read_run_file(run_dir).get("task")
        if saved_task not in (None, task.name):
            raise ValueError(f"--resume {run_dir}: the run is a {saved_task} run")
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
    trained = dist_utils.wrap_model(trained, context, device, config.sync_bn,
                                    find_unused_parameters=task.find_unused_parameters)

    per_rank = config.batch_size // context.world_size
    sampler = dist_utils.ResumableSampler(data.train, context, shuffle=True, seed=config.seed)
    train_loader = make_loader(data.train, per_rank, sampler, task.collate, config.workers, train=True,
                               seed=config.seed, pin_memory=device.type == "cuda")
    steps_per_epoch = len(sampler) // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {config.batch_size} exceeds the {len(data.train)} training samples"
                         + (f" of the {context.world_size} processes" if context.enabled else ""))
    total_steps = config.epochs * steps_per_epoch
    lr_at = partial(budget_learning_rate, total_steps=total_steps, base_lr=config.lr, schedule=config.schedule,
                    warmup_steps=round(config.warmup * steps_per_epoch), milestones=config.milestones,
                    gamma=config.gamma)
    agree = partial(dist_utils.agree_on_max, context=context, device=device) if context.enabled else None
    budget = Budget(total_steps, config.max_minutes, config.clock, used=state.seconds, agree=agree)
    options = StepOptions(device, AMP_DTYPES.get(config.amp), config.channels_last, config.grad_clip,
                          sync_every=1 if device.type == "cpu" else 25)
    reducer = dist_utils.reducer_of(context)

    def evaluate(dataset, split: str, out: Path | None = None) -> dict[str, float]:
        with autocast(options):
            metrics = task.evaluate(unwrap_model(trained), dataset, device, reducer, out, split, info)
        return {f"{split}:{k}": v for k, v in metrics.items() if k != "count"}

    logger = RunLogger(run_dir, enabled=context.is_main)
    artifacts = run_dir if context.is_main and config.artifacts else None  # where evaluations write their files
    if context.is_main:
        if not config.resume:  # a new run in an old folder starts a new metrics file
            truncate_metrics(run_dir / "metrics.jsonl", 0)
        record = {"convzoo": __version__, "task": task.name,
                  "config": {**config.to_dict(), "data": absolute_data(config.data), "resume": None}, "info": info}
        (run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")
        sizes = ", ".join(f"{len(d)} {n}" for n, d in (("train", data.train), ("dev", data.dev), ("test", data.test))
                          if d is not None)
        print(f"convzoo train: {config.model} on {config.data} ({sizes}; batch {config.batch_size}, "
              f"{steps_per_epoch} steps an epoch) -> {run_dir}", file=sys.stderr, flush=True)
    show_bar = context.is_main and (config.progress if config.progress is not None else sys.stderr.isatty())
    beat_every = HEARTBEAT_SECONDS if context.is_main and config.progress is None and not show_bar else 0.0
    metrics: dict[str, float] = {}
    started = time.perf_counter()
    score = f"dev:{task.score}"
    try:
        with graceful_interrupt(state, enabled=not context.enabled):
            while state.epoch < config.epochs and not state.out_of_time:
                epoch_start = time.perf_counter()
                sampler.set_epoch(state.epoch, skip=state.batch * per_rank)
                train_loader.generator.manual_seed(config.seed * 10007 + state.epoch)
                task.set_train_mode(trained)
                label = f"Epoch {state.epoch + 1}/{config.epochs}"
                with tqdm(total=steps_per_epoch, initial=state.batch, disable=not show_bar, leave=False,
                          desc=label, dynamic_ncols=True) as bar:
                    sums = train_one_epoch(task, trained, train_loader, optimizer, state, lr_at, options, budget,
                                           scaler, callbacks, bar if show_bar else None,
                                           Heartbeat(beat_every, label, steps_per_epoch))
                if state.stop_requested:
                    raise KeyboardInterrupt
                if state.out_of_time and state.batch == 0:
                    break  # the budget ran out exactly at an epoch boundary: nothing new to evaluate
                partial_epoch = state.out_of_time
                metrics = epoch_metrics(task, dist_utils.reduce_sums(sums, context, device))
                last = partial_epoch or state.epoch + 1 == config.epochs
                if last or (state.epoch + 1) % config.eval_every == 0:
                    metrics.update(evaluate(data.dev, "dev", artifacts if last else None))
                seconds = time.perf_counter() - epoch_start
                epoch_number = state.epoch + 1
                _check_finite(model, metrics, score, epoch_number)  # only a finite model is saved as good
                if not partial_epoch:
                    state.epoch, state.batch, state.sums = state.epoch + 1, 0, {}
                improved = score in metrics and metrics[score] > state.best
                if improved:
                    state.best, state.best_epoch = metrics[score], epoch_number
                if context.is_main:
                    line = epoch_line(epoch_number, config.epochs, seconds, task.headline(metrics))
                    print(line + (" (stopped: --max-minutes used up)" if partial_epoch else ""), flush=True)
                    logger.log_epoch(epoch_number, metrics, seconds, lr=optimizer.param_groups[0]["lr"],
                                     step=state.step, minutes=round(state.seconds / 60, 3))
                    checkpoint = _checkpoint_state(optimizer, scaler, state)
                    save_checkpoint(run_dir, "last", trained, checkpoint)
                    if improved:
                        save_checkpoint(run_dir, "best", trained, checkpoint)
                    if epoch_number == 1 and not partial_epoch:
                        _warn_budget(config, budget, state, total_steps)
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
    except Exception as error:  # a bad image or record found mid-epoch, a full disk: save what is done, then say it
        if not is_user_error(error):
            logger.close()
            raise
        if context.is_main:
            try:
                save_checkpoint(run_dir, "last", trained, _checkpoint_state(optimizer, scaler, state))
                print(f"stopped at epoch {state.epoch + 1}, batch {state.batch}: saved {run_dir}/last; fix the cause "
                      f"and continue with `convzoo train --resume {run_dir}`", file=sys.stderr)
            except Exception:  # the disk that failed the run fails the save too: the previous checkpoint stays
                pass
        logger.close()
        raise
    if state.step and score not in metrics:  # stopped on time at an epoch boundary between dev evaluations
        metrics.update(evaluate(data.dev, "dev", artifacts))
        if context.is_main and math.isfinite(metrics[score]) and metrics[score] > state.best:
            state.best, state.best_epoch = metrics[score], state.epoch
            save_checkpoint(run_dir, "best", trained, _checkpoint_state(optimizer, scaler, state))
    if state.out_of_time and context.is_main:
        _warn_budget(config, budget, state, total_steps)
    if data.test is not None:
        metrics.update(evaluate(data.test, "test", artifacts))
    if context.is_main:
        if config.artifacts:
            _plot(run_dir)
        shown = {k: v for k, v in metrics.items() if k.startswith("test:")} or \
            {k: v for k, v in metrics.items() if k.startswith("dev:")}
        best = f"best {score}={state.best:.4f} at epoch {state.best_epoch}" if state.best_epoch else "no dev score"
        _write_results(run_dir, metrics, state, score)
        print(" ".join(f"{k}={v:.4f}" for k, v in task.headline(shown).items()) + f" ({best}; {run_dir})", flush=True)
    logger.close()
    return {**metrics, "epochs": state.epoch, "steps": state.step, "seconds": time.perf_counter() - started,
            "run_dir": str(run_dir)}


def _write_results(run_dir: Path, metrics: dict, state: TrainState, score: str) -> None:
    """``RUN/results.json``: the last epoch's dev and the test figures, where training stopped and the best epoch,
    so that a script reads a run's outcome from its folder (written atomically, replaced on ``--resume``)."""
    record = {"metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
              "epochs": state.epoch, "steps": state.step, "out_of_time": bool(state.out_of_time),
              "score": score, "best": state.best if state.best_epoch else None, "best_epoch": state.best_epoch}
    atomic_write(run_dir / "results.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))


def _check_finite(model: torch.nn.Module, metrics: dict[str, float], score: str, epoch: int) -> None:
    """Refuse to call a model good when its weights, its training losses or its dev score are not finite."""
    bad = [k for k, v in metrics.items() if (k.startswith("loss") or k == score or k.endswith(":loss"))
           and not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(f"after epoch {epoch} {', '.join(f'{k}={metrics[k]}' for k in bad)}")
    for name, tensor in unwrap_model(model).state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteLossError(f"after epoch {epoch} the weights {name} are not finite")


def _warn_budget(config: TrainConfig, budget: Budget, state: TrainState, total_steps: int) -> None:
    """Say when the time budget, not the planned epochs, decides how long training runs."""
    if not config.max_minutes or not state.step:
        return
    expected = int(state.step / max(budget.elapsed(), 1e-9) * budget.seconds)
    if state.out_of_time:
        print(f"convzoo train: --max-minutes {config.max_minutes:g} ({config.clock} clock) ended training after "
              f"{state.step} of {total_steps} planned steps; the schedule ran on time, so it reached its end"
              + ("; on a busy machine --clock cpu counts only this process's time" if config.clock == "wall"
                 else ""), file=sys.stderr)
    elif expected < total_steps:
        print(f"convzoo train: at this pace --max-minutes {config.max_minutes:g} ({config.clock} clock) allows about "
              f"{expected} of the {total_steps} planned steps; the learning-rate schedule follows the time, so it "
              "still decays to its end", file=sys.stderr)


def _plot(run_dir: Path) -> None:
    records = read_metrics(run_dir / "metrics.jsonl")
    if records:
        plot_curves(records, run_dir / "curves.png")
