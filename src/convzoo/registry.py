"""One small model registry: the builder's name is the model's name (STYLE.md principle 5).

    @register_model                      # a classifier
    def resnet50(**kwargs) -> ResNet: ...

    @register_model(kind="detector")
    def faster_rcnn_r50_fpn(**kwargs) -> RCNN: ...

    create_model("resnet50", num_classes=10)
    create_model("spec:CB-16-5-2-same,M-3-2,F,H-100", in_chans=1)   # the course's architecture strings
    list_models("resnet*"), list_models(kind="detector"), model_kind("mask_rcnn_r50_fpn")

Load order: the built-in models (every module of ``BUILTIN_PACKAGES``) are registered before any other. A builder
defined outside ``convzoo`` loads them first, so a user model named like a built-in is an error that names the
owner, wherever in a program it is registered, and the built-ins are never lost. The built-in modules register
themselves as Python imports them (no import of the whole package from inside one of its modules, so no cycle).

This module imports nothing heavy: torch comes with the model modules, when a model is first asked for.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import operator
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

KINDS = ("classifier", "detector", "segmenter")
# Every package whose modules register models; a new one (e.g. "convzoo.segmentation") must be added here.
BUILTIN_PACKAGES = ("convzoo.models", "convzoo.detection")


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    kind: str


_MODELS: dict[str, _Entry] = {}
_LOADED = False


def _is_builtin(builder: Callable) -> bool:
    return builder.__module__.startswith("convzoo.")


def register_model(builder: Callable[..., nn.Module] | None = None, *, kind: str = "classifier"):
    """Register ``builder`` under its ``__name__`` as a model of ``kind`` (one of ``KINDS``).

    Use it bare (``@register_model``: a classifier) or with the kind (``@register_model(kind="detector")``).
    A second builder with a taken name raises ValueError naming the module that owns the name; re-importing
    a module (``importlib.reload``) replaces its own builders.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if builder is None:
        return lambda function: register_model(function, kind=kind)
    name = builder.__name__
    if not _is_builtin(builder):
        _load_builtin_models()  # the built-ins own their names, whenever the user's model comes
    taken = _MODELS.get(name)
    if taken is not None and (taken.builder.__module__, taken.builder.__qualname__) != (
            builder.__module__, builder.__qualname__):
        raise ValueError(f"a model named {name!r} is already registered (by {taken.builder.__module__}); "
                         f"choose another name for the one in {builder.__module__}")
    _MODELS[name] = _Entry(builder, kind)
    return builder


def _load_builtin_models() -> None:
    """Import every module of ``BUILTIN_PACKAGES``, so that their decorators run (once, on first use)."""
    global _LOADED
    if _LOADED:
        return
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{info.name}")
    _LOADED = True  # only once every import succeeded: a failure is raised again, never a shorter list


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """The sorted names of registered models that match the glob ``pattern`` (e.g. ``"resnet*"``) and ``kind``."""
    _check_kind(kind)
    _load_builtin_models()
    return sorted(name for name, entry in _MODELS.items()
                  if fnmatch.fnmatchcase(name, pattern) and kind in (None, entry.kind))


def _entry(name: str) -> _Entry:
    _load_builtin_models()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; convzoo models lists them all"
        raise KeyError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``; an unknown name raises a KeyError that lists the closest names."""
    return _entry(name).builder


def model_kind(name: str) -> str:
    """The kind of the model ``name`` (``"classifier"``, ``"detector"``, ...); ``"spec:..."`` is a classifier."""
    if name.startswith("spec:"):
        name = "spec"
    return _entry(name).kind


def _check_keywords(kwargs: dict[str, Any]) -> None:
    """Validate at the door the keywords every model understands (STYLE.md principle 14)."""
    if kwargs.get("pretrained"):
        raise ValueError("convzoo never downloads weights, so create_model takes no pretrained=True: build the model, "
                         "then convzoo.load_weights(model, PATH, source='torchvision') (on the command line: "
                         "--pretrained FILE)")
    kwargs.pop("pretrained", None)  # pretrained=False asks for what convzoo always does
    for key in ("num_classes", "in_chans"):
        value = kwargs.get(key)
        if value is None:
            continue
        try:
            number = None if isinstance(value, bool) else operator.index(value)  # ints, numpy integers
        except TypeError:
            number = None
        if number is None or number < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        kwargs[key] = number


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (``num_classes``, ``in_chans``, ...).

    ``"spec:<string>"`` is shorthand for ``create_model("spec", spec="<string>")``. ``num_classes`` and
    ``in_chans`` must be positive integers; ``pretrained=True`` is an error (convzoo reads weights from files).
    """
    _check_keywords(kwargs)
    if name.startswith("spec:"):
        kwargs["spec"] = name[len("spec:"):]
        name = "spec"
    return get_model_builder(name)(**kwargs)
