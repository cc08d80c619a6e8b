"""A run folder as the engine reads it back: the task of a config, and a trained run's model from its folder alone.

    config, task, info, model = load_run("runs/resnet20-cifar10-20250101-120000", checkpoint="best")
    task.predict_files(model, info, ["cat.png"], device)

A run folder is self-contained: ``config.json`` holds the nested configuration, the task's name and its ``info``
(class names, input contract, normalization, the model's build options), so predicting needs no data set and
works from any directory and on another machine.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from convzoo.tasks import Task, create_task, model_task
from convzoo.train.checkpoint import load_checkpoint
from convzoo.train.config import TASK_OPTIONS, TrainConfig, read_run_file


def changed_options(config: TrainConfig, group: str) -> list[str]:
    """The options of the nested ``group`` (a key of ``TASK_OPTIONS``) that differ from their defaults."""
    defaults = TASK_OPTIONS[group]()
    given = getattr(config, group)
    return [f.name for f in dataclasses.fields(given) if getattr(given, f.name) != getattr(defaults, f.name)]


def task_of(config: TrainConfig) -> Task:
    """The task that trains ``config.model`` on ``config.data``; options meant for another task are an error."""
    kind = model_task(config.model)
    for group in TASK_OPTIONS:
        stray = changed_options(config, group) if group != kind else []
        if stray:
            flags = ", ".join("--" + name.replace("_", "-") for name in stray)
            raise ValueError(f"{flags}: {group} option(s), but --model {config.model} is trained by the {kind} task")
    return create_task(config.model, config.data, classification=config.classification,
                       detection=config.detection, segmentation=config.segmentation, text=config.text,
                       search=config.search, seed=config.seed, image_size=config.image_size,
                       pretrained=config.pretrained, pretrained_source=config.pretrained_source)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu"
             ) -> tuple[TrainConfig, Task, dict, torch.nn.Module]:
    """The config, task, info and model (the checkpoint's weights, eval mode, on ``device``) of a run folder."""
    saved = read_run_file(run_dir)
    config = TrainConfig.from_dict(saved["config"])
    task = task_of(config)
    info = saved["info"]
    if info is None:  # a folder written before config.json carried the info: ask the data once
        info = task.load_data().info
    model = task.build_model(info, initialize=False)
    load_checkpoint(run_dir, checkpoint, model)
    return config, task, info, model.to(device).eval()
