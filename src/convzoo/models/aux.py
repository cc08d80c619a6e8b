"""The auxiliary-output contract and its loss.

GoogLeNet (Szegedy et al. 2014, Section 5) and Inception-v3 (Szegedy et al. 2015, Section 4) attach auxiliary
classifiers to intermediate layers; during training their losses are added to the main loss with a small weight,
at inference they are discarded. A model with aux heads therefore returns, in training mode with the heads on, an
``AuxOutput``; in eval mode (or with the heads off) it returns the plain logits Tensor[N, num_classes].

``classification_loss`` accepts either, so a training loop never has to know which kind of model it runs:

    loss = classification_loss(model(images), labels, label_smoothing=0.1)
    accuracy = (main_logits(model(images)).argmax(1) == labels).float().mean()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F


class AuxOutput(NamedTuple):
    """Training-mode output of a model with auxiliary classifiers.

    ``logits``: Tensor[N, num_classes] of the main classifier; ``aux_logits``: one Tensor[N, num_classes] per
    auxiliary head, in network order; ``aux_weights``: the loss weight of each head as the paper gives it
    (GoogLeNet: 0.3 each; Inception-v3: 0.4, the weight of the TF-slim training script).
    """

    logits: torch.Tensor
    aux_logits: tuple[torch.Tensor, ...]
    aux_weights: tuple[float, ...]


def main_logits(output: torch.Tensor | AuxOutput) -> torch.Tensor:
    """The main classifier's Tensor[N, num_classes] of a model output of either kind (for accuracy, argmax...)."""
    return output.logits if isinstance(output, AuxOutput) else output


def _resolve_weights(output: AuxOutput, aux_weight: float | Sequence[float] | None) -> tuple[float, ...]:
    if aux_weight is None:
        weights = tuple(output.aux_weights)
    elif isinstance(aux_weight, (int, float)):
        weights = (float(aux_weight),) * len(output.aux_logits)
    else:
        weights = tuple(float(w) for w in aux_weight)
    if len(weights) != len(output.aux_logits):
        raise ValueError(f"got {len(weights)} auxiliary loss weights {weights} for {len(output.aux_logits)} "
                         f"auxiliary heads")
    return weights


def classification_loss(output: torch.Tensor | AuxOutput, target: torch.Tensor, label_smoothing: float = 0.0,
                        aux_weight: float | Sequence[float] | None = None) -> torch.Tensor:
    """Mean cross-entropy of the main logits plus the weighted cross-entropies of the auxiliary logits.

    ``total = CE(logits, target) + sum_i w_i * CE(aux_logits_i, target)``, each CE averaged over the batch.

    Args:
        output: plain logits Tensor[N, C] or an ``AuxOutput``.
        target: class indices Tensor[N] (int64) or class probabilities Tensor[N, C].
        label_smoothing: epsilon of label smoothing (Inception-v3, Section 7: 0.1): the target distribution
            becomes ``(1 - eps) * onehot + eps / C``; applied to every head.
        aux_weight: overrides the weights that the model put in ``output``: one number for every head or one
            per head; 0 trains the main classifier alone. Ignored for plain logits.

    Returns:
        a scalar Tensor.
    """
    if not isinstance(output, AuxOutput):
        return F.cross_entropy(output, target, label_smoothing=label_smoothing)
    weights = _resolve_weights(output, aux_weight)
    total = F.cross_entropy(output.logits, target, label_smoothing=label_smoothing)
    for weight, logits in zip(weights, output.aux_logits):
        if weight != 0.0:
            total = total + weight * F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    return total
