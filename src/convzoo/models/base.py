"""The one classifier interface.

Every classifier is ``forward_features`` (the backbone, input -> last feature map), ``forward_head`` (pooling,
dropout, the linear classifier) and ``forward`` = head(features(check(x))). Each states ``feature_info``: the
channels and stride of the output of every stage, which detection backbones read.

A family's class takes its architecture before ``*`` (``ResNet(block, layers, *, ...)``: what the one-line builders
fix from the family's table) and its options keyword-only with defaults; ``registry.builder_keywords`` reads the
options from that signature, so ``create_model`` refuses any other keyword before building.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """One stage's output: ``module`` is the attribute path of the stage inside the model."""

    module: str
    channels: int
    stride: int


class Classifier(nn.Module, metaclass=ABCMeta):
    """Base of every convzoo classifier: input checking, the head interface and the feature description.

    Subclasses set ``ndim``, ``in_chans``, ``num_classes``, ``num_features`` (channels into the classifier),
    ``default_input_size`` ((C, *spatial)), ``feature_info`` and ``first_conv`` (the attribute path of the
    convolution that takes the input, whose weight ``load_weights`` adapts to ``in_chans``), ``aux_heads`` where
    they have auxiliary classifiers (attribute paths; they run only in training mode) and implement
    ``forward_features`` and ``forward_head``; the classifier layer must be reachable through ``get_classifier``.
    """

    ndim: int = 2
    in_chans: int = 3
    num_classes: int = 1000
    num_features: int = 0
    default_input_size: tuple[int, ...] = (3, 224, 224)
    feature_info: list[FeatureInfo]
    classifier_name: str = "fc"
    first_conv: str | None = None
    aux_heads: tuple[str, ...] = ()

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the expected and the received shape when ``x`` does not fit the model."""
        spatial = ("L", "H, W", "D, H, W")[self.ndim - 1]
        expected = f"[N, {self.in_chans}, {spatial}]"
        if x.dim() != self.ndim + 2:
            raise ValueError(f"{type(self).__name__} expects a {self.ndim}D input of shape {expected}, "
                             f"got a {x.dim()}-dimensional tensor of shape {list(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"{type(self).__name__} expects {self.in_chans} input channels (shape {expected}), "
                             f"got {x.shape[1]} (input shape {list(x.shape)})")

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone: input Tensor[N, in_chans, *spatial] -> the last feature map Tensor[N, num_features, ...]."""

    @abstractmethod
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling, dropout and the classifier: features -> Tensor[N, num_classes] (Tensor[N, D] if ``pre_logits``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer by a freshly initialized one with ``num_classes`` outputs."""
        old = self.get_classifier()
        if not isinstance(old, nn.Linear):
            raise TypeError(f"{type(self).__name__}.{self.classifier_name} is {type(old).__name__}, not nn.Linear")
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(old.weight.device)
        parent_name, _, attr = self.classifier_name.rpartition(".")
        setattr(self.get_submodule(parent_name) if parent_name else self, attr, new)
        self.num_classes = num_classes


def init_weights_he(model: nn.Module) -> None:
    """He (Kaiming) normal fan-out for convolutions, BN = (1, 0), linear layers as PyTorch's default."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
