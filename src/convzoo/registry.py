"""One small model registry: the builder's name is the model's name.

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
import inspect
import operator
import pkgutil
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

KINDS = ("classifier", "detector", "segmenter", "text_classifier", "supernet")
# Every package whose modules register models; a new one (e.g. "convzoo.segmentation") must be added here.
BUILTIN_PACKAGES = ("convzoo.models", "convzoo.models.segmentation", "convzoo.detection", "convzoo.nas")


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
    """Validate at the door the keywords every model understands."""
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


def builder_keywords(builder: Callable[..., nn.Module]) -> tuple[str, ...] | None:
    """The keywords ``builder`` takes, or None where they cannot be known.

    They are the builder's own named parameters and, when it forwards ``**kwargs`` to the model class that its
    return annotation names (``def resnet18(**kwargs) -> ResNet``), the keyword-only parameters of that class that
    have a default: the options. The class's parameters before ``*`` and its keyword-only parameters without a
    default are the architecture (``block``, ``layers``, ``depth``, ``cells_per_stage``), which the builder fixes.
    None for a ``**kwargs`` builder whose return annotation is not such a class (e.g. a user's ``-> nn.Module``).
    """
    parameters = inspect.signature(builder).parameters.values()
    own = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if all(p.kind is not p.VAR_KEYWORD for p in parameters):
        return tuple(own)
    try:
        model_class = typing.get_type_hints(builder).get("return")
    except (NameError, TypeError):  # an annotation naming something the builder's module does not define
        return None
    if not inspect.isclass(model_class):
        return None
    options = inspect.signature(model_class).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in options):
        return None
    settable = [p.name for p in options if p.kind is p.KEYWORD_ONLY and p.default is not p.empty]
    return tuple(dict.fromkeys(own + settable))


def model_keywords(name: str) -> tuple[str, ...] | None:
    """The keywords ``create_model(name, ...)`` accepts (``builder_keywords``); None where they cannot be known."""
    return builder_keywords(get_model_builder("spec" if name.startswith("spec:") else name))


def _check_known(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse, before anything is built, the keywords that the model ``name`` does not take, in one line."""
    accepted = model_keywords(name)
    unknown = [key for key in kwargs if accepted is not None and key not in accepted]
    if not unknown:
        return
    close = [match for key in unknown for match in difflib.get_close_matches(key, accepted, n=1, cutoff=0.7)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    keywords = f"an unexpected keyword {unknown[0]!r}" if len(unknown) == 1 else (
        "unexpected keywords " + ", ".join(map(repr, unknown)))
    takes = ", ".join(accepted) if accepted else "no keywords"
    raise ValueError(f"{name}() got {keywords}{hint}; it takes {takes}")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (``num_classes``, ``in_chans``, ...).

    ``"spec:<string>"`` is shorthand for ``create_model("spec", spec="<string>")``. ``num_classes`` and
    ``in_chans`` must be positive integers; ``pretrained=True`` is an error (convzoo reads weights from files); a
    keyword the model does not take (``model_keywords``) is a ValueError that names the model, the keyword and
    the keywords it takes, raised before anything is built.
    """
    _check_keywords(kwargs)
    if name.startswith("spec:"):
        kwargs["spec"] = name[len("spec:"):]
        name = "spec"
    _check_known(name, kwargs)
    return get_model_builder(name)(**kwargs)
