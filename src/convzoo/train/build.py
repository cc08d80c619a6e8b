"""Building what a run trains: the model for a data set (with pretrained weights and frozen parts), the loaders.

    model = build_model(config, splits.num_classes, splits.input_size)
    loader = make_loader(splits.train, batch_size=32, sampler=sampler, workers=0, train=True)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from convzoo.data import collate_batch
from convzoo.layers import freeze_bn
from convzoo.tasks.classification import (
    ClassificationOptions,
    ClassificationTask,
    create_classifier,
    freeze_backbone,
    load_pretrained,
)
from convzoo.train.config import TrainConfig


def set_train_mode(model: nn.Module, backbone_frozen: bool) -> None:
    """``model.train()``; with a frozen backbone its BatchNorm layers stay in eval mode (see the task's)."""
    ClassificationTask("", "", ClassificationOptions(freeze_backbone=backbone_frozen)).set_train_mode(model)


def build_model(config: TrainConfig, num_classes: int, input_size: tuple[int, ...]) -> nn.Module:
    """The run's model on the CPU: created, pretrained weights loaded, BN frozen and backbone frozen as asked."""
    model = create_classifier(config.model, num_classes, input_size)
    if config.pretrained:
        load_pretrained(model, config.pretrained, config.pretrained_source)
    if config.freeze_bn:
        freeze_bn(model)
    if config.freeze_backbone:
        freeze_backbone(model)
    return model


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler | list[int], workers: int = 0,
                train: bool = False, seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of convzoo batches; its own generator keeps worker seeds off the global RNG (resumable)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=train,
                      collate_fn=collate_batch, pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)
