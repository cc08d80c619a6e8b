"""Building what a run trains: the model for a data set (with pretrained weights and frozen parts), the loaders.

    model = build_model(config, splits.num_classes, splits.input_size)
    loader = make_loader(splits.train, batch_size=32, sampler=sampler, workers=0, train=True)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from convzoo.data import collate_batch
from convzoo.layers import BATCH_NORM_TYPES, freeze_bn
from convzoo.registry import create_model
from convzoo.train.checkpoint import unwrap_model
from convzoo.train.config import TrainConfig


def create_classifier(name: str, num_classes: int, input_size: tuple[int, ...]) -> nn.Module:
    """``create_model(name)`` for inputs of ``input_size`` (C, *spatial): the course's ``spec:`` strings get the
    spatial size, other models the number of spatial axes when it is not 2 (1D models for MNIST-1D)."""
    kwargs = {"num_classes": num_classes, "in_chans": input_size[0]}
    if name.startswith("spec:") or name == "spec":
        kwargs["input_size"] = tuple(input_size[1:])
    elif len(input_size) != 3:
        kwargs["ndim"] = len(input_size) - 1
    return create_model(name, **kwargs)


def classifier_of(model: nn.Module) -> nn.Module:
    """The final classification layer (``get_classifier()`` of convzoo models)."""
    if not hasattr(model, "get_classifier"):
        raise ValueError(f"{type(model).__name__} has no get_classifier(): --freeze-backbone needs a convzoo "
                         "classifier")
    return model.get_classifier()


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Stop gradients to every parameter but the classifier's (transfer learning: train only the new head)."""
    head = {id(p) for p in classifier_of(model).parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head)
    return model


def set_train_mode(model: nn.Module, backbone_frozen: bool) -> None:
    """``model.train()``, but with a frozen backbone its BatchNorm layers stay in eval mode (running statistics
    used and kept, as the pretrained network computed them)."""
    model.train()
    if backbone_frozen:
        inner = unwrap_model(model)  # the same modules as inside DDP / torch.compile
        head = set(classifier_of(inner).modules())
        for module in inner.modules():
            if isinstance(module, BATCH_NORM_TYPES) and module not in head:
                module.eval()


def load_pretrained(model: nn.Module, path: str | Path, source: str = "auto") -> nn.Module:
    """Load a convzoo, torchvision or timm checkpoint file into ``model`` through the weights loader.

    A classifier whose shape differs from the file's (another ``num_classes``) keeps its fresh initialization and
    the rest is loaded; any other mismatch is an error naming the keys. ``source="auto"`` tries convzoo's names,
    then torchvision's, then timm's, and reports the first failure if none fits.
    """
    from convzoo.weights import SOURCES, WeightsMismatchError, load_weights

    first_error = None
    for candidate in SOURCES if source == "auto" else (source,):
        try:
            report = load_weights(model, path, source=candidate, ignore_mismatched_head=True)
        except WeightsMismatchError as error:
            first_error = first_error or error
            continue
        print(f"--pretrained {path} ({candidate}): {report}", file=sys.stderr)
        return model
    raise first_error


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
