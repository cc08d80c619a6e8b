"""``load_weights``: checkpoints of convzoo, torchvision and timm into convzoo models (transfer learning, no downloads).

The file's keys are renamed to the model's (``mapping.py``), then compared with the model's state dict: every
missing key, unexpected key and shape mismatch is listed in one error. ``ignore_mismatched_head=True`` accepts a
classifier of another size (fine-tuning to ``num_classes`` classes): its keys keep the model's fresh initialization
and the report names them. A first convolution for another number of input channels (an RGB checkpoint for a
1-channel model) is adapted before the comparison (``adapt.py``: summed for one channel, repeated and rescaled for
more) and the report says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from convzoo.weights.adapt import adapt_first_conv
from convzoo.weights.files import read_state_dict, unwrap_state_dict
from convzoo.weights.mapping import INCOMPATIBLE, SOURCES, map_names

T = TypeVar("T")

_SHOWN = 12  # keys listed per kind in an error message


class WeightsMismatchError(ValueError):
    """The weights do not fit the model; the message lists the missing, unexpected and mismatched keys."""


@dataclass
class LoadReport:
    """What ``load_weights`` did. Keys are the model's names.

    ``loaded``: filled from the file; ``adapted``: the loaded keys whose tensor was adapted to the model's input
    channels (the first convolution, one note each). ``reinitialized``: classifier keys left at the model's own
    initialization (``ignore_mismatched_head``). ``skipped``: file keys dropped by design (heads this model
    disables, BatchNorm batch counters). ``missing``/``unexpected``/``mismatched``: problems tolerated because
    ``strict=False``.
    """

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        for name in ("adapted", "reinitialized", "skipped", "missing", "unexpected", "mismatched"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"{name} {len(keys)} ({_listing(keys, 4)})")
        return "; ".join(parts) + "".join(f"\nnote: {note}" for note in self.notes)


def _listing(keys: list[str], limit: int = _SHOWN) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")


def head_keys(model: nn.Module) -> set[str]:
    """The state-dict keys of the layers whose shape depends on the label set: the model's classifier
    (``classifier_name``), every linear layer with ``num_classes`` outputs (auxiliary classifiers), and the layers a
    model names in ``head_names`` (a detector's class scores, box deltas, mask logits and keypoint logits)."""
    names = set(getattr(model, "head_names", ()))
    if isinstance(getattr(model, "classifier_name", None), str):
        names.add(model.classifier_name)
    num_classes = getattr(model, "num_classes", None)
    names.update(n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes)
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def _disabled(model: nn.Module, key: str) -> bool:
    """True for keys of a submodule the model sets to None (e.g. ``AuxLogits`` with ``aux_logits=False``)."""
    owner: object = model
    for part in key.split(".")[:-1]:
        if not isinstance(owner, nn.Module):
            return False
        owner = owner._modules[part] if part in owner._modules else getattr(owner, part, False)
        if owner is None:
            return True
    return False


def _notes(model: nn.Module, source: str) -> list[str]:
    """Facts a user loading ``source`` weights into ``model`` should know although the names fit."""
    notes = []
    if source in ("torchvision", "timm") and getattr(model, "variant", None) == "v1":
        notes.append(f"{source}'s ResNets use the v1.5 layout (stride in the 3x3 convolution); this model is "
                     "variant='v1', so the weights load into a different network")
    if source == "torchvision" and type(model).__name__ == "InceptionV3" and not getattr(model, "transform_input", 1):
        notes.append("torchvision's ImageNet Inception-v3 weights expect transform_input=True with "
                     "ImageNet-normalized inputs")
    if (source == "timm" and type(model).__name__ in ("NASNet", "NASNetA")
            and not any(type(m).__name__ == "ZeroPaddedAvgPool" for m in model.modules())):
        notes.append("timm's nasnetalarge counts the zero padding in its strided 3x3 average poolings; build the "
                     "model with count_include_pad=True to reproduce its logits (the default follows TF-slim)")
    return notes


def load_weights(model: nn.Module, weights: str | os.PathLike | Mapping[str, torch.Tensor], *,
                 source: str = "convzoo", strict: bool = True, ignore_mismatched_head: bool = False) -> LoadReport:
    """Load ``weights`` (a file path or a state dict) of ``source`` into ``model`` in place; return a report.

    Files: ``.safetensors`` directly, ``.pth``/``.pt``/``.bin`` with ``torch.load(weights_only=True)``; common
    checkpoint containers are unwrapped. ``source`` is "convzoo", "torchvision" or "timm" (the names are mapped).
    ``strict=True`` raises :class:`WeightsMismatchError` listing every missing, unexpected or differently shaped
    key; ``strict=False`` loads what fits and reports the rest. ``ignore_mismatched_head=True`` keeps the model's
    classifier (and auxiliary classifiers) when their shape or presence differs, e.g. for another ``num_classes``.
    The weight of the model's ``first_conv`` is adapted when only its input channels differ from the file's
    (``in_chans=1`` with an RGB checkpoint); ``report.adapted`` and a note name it.
    """
    where = str(weights) if isinstance(weights, (str, os.PathLike)) else "the state dict"
    state = read_state_dict(weights) if isinstance(weights, (str, os.PathLike)) else unwrap_state_dict(weights)
    state, adapted, adapt_notes = adapt_first_conv(model, map_names(state, model, source))
    target = model.state_dict()
    heads = head_keys(model) if ignore_mismatched_head else set()
    report = LoadReport(adapted=adapted, notes=adapt_notes + _notes(model, source))

    for key in state:
        if key not in target and (key.endswith("num_batches_tracked") or _disabled(model, key)):
            report.skipped.append(key)
        elif key not in target:
            report.unexpected.append(key)
    for key, value in target.items():
        if key not in state:
            if key in heads:
                report.reinitialized.append(key)
            elif not key.endswith("num_batches_tracked"):  # absent from older and converted checkpoints
                report.missing.append(key)
        elif tuple(state[key].shape) != tuple(value.shape):
            (report.reinitialized if key in heads else report.mismatched).append(key)
        else:
            report.loaded.append(key)

    if not report.loaded or (strict and (report.missing or report.unexpected or report.mismatched)):
        raise WeightsMismatchError(_mismatch_message(model, where, source, state, target, report))
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def _mismatch_message(model: nn.Module, where: str, source: str, state: Mapping[str, torch.Tensor],
                      target: Mapping[str, torch.Tensor], report: LoadReport) -> str:
    name = type(model).__name__
    lines = [(f"the weights in {where} (source {source!r}) do not fit {name}: {len(report.missing)} missing, "
              f"{len(report.unexpected)} unexpected, {len(report.mismatched)} with another shape "
              f"({len(report.loaded)} of the model's {len(target)} tensors fit)")]
    if report.missing:
        lines.append(f"  missing from the file: {_listing(report.missing)}")
    if report.unexpected:
        lines.append(f"  unexpected (in the file, not in the model): {_listing(report.unexpected)}")
    if report.mismatched:
        shapes = [f"{k} {list(state[k].shape)} in the file vs {list(target[k].shape)} in the model"
                  for k in report.mismatched]
        lines.append(f"  shape mismatches: {_listing(shapes)}")
    lines += [f"  note: {note}" for note in report.notes]
    problems = set(report.missing) | set(report.unexpected) | set(report.mismatched)
    if (source, name) in INCOMPATIBLE:
        lines.append(f"  {INCOMPATIBLE[(source, name)]}")
    elif not report.loaded:
        lines.append("  no tensor of the file fits: is it a checkpoint of another architecture, or of another "
                     "source (source='torchvision', 'timm' or 'convzoo')?")
    elif report.missing and all(k.lower().startswith("aux") for k in report.missing):
        lines.append("  the file has no auxiliary classifier: build the model with aux_logits=False")
    elif problems and problems <= head_keys(model):
        lines.append("  only the classifier differs: pass ignore_mismatched_head=True to keep a freshly initialized "
                     "classifier (fine-tuning to other classes)")
    return "\n".join(lines)


def first_fitting_source(source: str, load: Callable[[str], T]) -> T:
    """``load(source)``; with ``source="auto"``, convzoo's names, then torchvision's, then timm's: the first that
    fits, or the first mismatch when none does (``--pretrained-source auto``)."""
    first_error = None
    for candidate in SOURCES if source == "auto" else (source,):
        try:
            return load(candidate)
        except WeightsMismatchError as error:
            first_error = first_error or error
    raise first_error
