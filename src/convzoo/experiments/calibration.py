"""Calibration of a classifier's probabilities: expected calibration error and the reliability diagram.

Guo et al. 2017 ("On Calibration of Modern Neural Networks", Section 2): the confidences (the top probability of
each prediction) are put into ``bins`` equal-width bins of [0, 1]; a bin's accuracy is the fraction of its
predictions that are right, its confidence their mean top probability, and

    ECE = sum over bins b of |B_b| / n * |accuracy(B_b) - confidence(B_b)|.

A perfectly calibrated model's bars lie on the diagonal of the reliability diagram.
"""

from __future__ import annotations

import torch


def reliability(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> dict[str, list[float]]:
    """Per bin of confidence: ``count``, ``accuracy`` and ``confidence`` (0 for empty bins), and the bin
    ``edges`` (bins + 1 values). ``probabilities`` Tensor[N, K] (rows sum to 1), ``labels`` Tensor[N] int64."""
    if probabilities.dim() != 2 or len(probabilities) != len(labels):
        raise ValueError(f"expected probabilities [N, K] and labels [N], got {list(probabilities.shape)} and "
                         f"{list(labels.shape)}")
    confidence, predicted = probabilities.double().max(1)
    correct = (predicted == labels).double()
    # bin b holds confidences in (edge_b, edge_b+1]; a confidence of 0 goes to the first bin
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    count = torch.bincount(index, minlength=bins).double()
    right = torch.bincount(index, weights=correct, minlength=bins)
    mass = torch.bincount(index, weights=confidence, minlength=bins)
    safe = count.clamp(min=1)
    return {"edges": torch.linspace(0, 1, bins + 1).tolist(), "count": count.tolist(),
            "accuracy": (right / safe).tolist(), "confidence": (mass / safe).tolist()}


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (see the module doc) of ``probabilities`` Tensor[N, K] against ``labels`` Tensor[N], in [0, 1]."""
    table = reliability(probabilities, labels, bins)
    n = sum(table["count"])
    return sum(c / n * abs(a - f) for c, a, f in zip(table["count"], table["accuracy"], table["confidence"]))
