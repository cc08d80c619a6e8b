"""One small model registry: the builder's name is the model's name (STYLE.md principle 5).

    @register_model
    def resnet50(**kwargs) -> ResNet: ...

    create_model("resnet50", num_classes=10)
    create_model("spec:CB-16-5-2-same,M-3-2,F,H-100", in_chans=1)   # the course's architecture strings
    list_models("resnet*")
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_LOADED = False


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``builder`` under its ``__name__``; a second builder with the same name is an error."""
    name = builder.__name__
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered (by {_MODELS[name].__module__})")
    _MODELS[name] = builder
    return builder


def _load_builtin_models() -> None:
    """Import every module of ``convzoo.models`` (and ``convzoo.detection``), so their decorators run."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for package_name in ("convzoo.models", "convzoo.detection"):
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{info.name}")


def list_models(pattern: str = "*") -> list[str]:
    """The sorted names of registered models that match the glob ``pattern`` (e.g. ``"resnet*"``)."""
    _load_builtin_models()
    return sorted(name for name in _MODELS if fnmatch.fnmatchcase(name, pattern))


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``; an unknown name raises a KeyError that lists the closest names."""
    _load_builtin_models()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `convzoo models` lists them all"
        raise KeyError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` (``num_classes``, ``in_chans``, ...).

    ``"spec:<string>"`` is shorthand for ``create_model("spec", spec="<string>")``.
    """
    if name.startswith("spec:"):
        kwargs["spec"] = name[len("spec:"):]
        name = "spec"
    return get_model_builder(name)(**kwargs)
