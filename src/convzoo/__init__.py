"""convzoo: the classic convolutional networks and the R-CNN family, faithful to the papers and verified.

    import convzoo
    model = convzoo.create_model("resnet50", num_classes=10)
    print(convzoo.summary(model, input_size=(3, 224, 224)))
    metrics = convzoo.fit(convzoo.TrainConfig(model="resnet20", data="cifar10:DIR", epochs=30))   # any task

The names below are imported on first use (PEP 562), so ``import convzoo`` is instant and torch-free: torch comes
with the first model, summary or weights function, and the torch-free parts (``convzoo.evaluation``, the
``convzoo eval-detections`` command) never load it.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "create_model": "convzoo.registry",
    "get_model_builder": "convzoo.registry",
    "list_models": "convzoo.registry",
    "model_kind": "convzoo.registry",
    "register_model": "convzoo.registry",
    "Summary": "convzoo.summary",
    "SummaryRow": "convzoo.summary",
    "count_params": "convzoo.summary",
    "summary": "convzoo.summary",
    "load_weights": "convzoo.weights",
    "save_weights": "convzoo.weights",
    "TrainConfig": "convzoo.train",
    "fit": "convzoo.train",
    "load_run": "convzoo.train",
    "create_task": "convzoo.tasks",
    "export": "convzoo.export",
    "optimize": "convzoo.export",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'convzoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """The package module, so that ``convzoo.summary`` (and ``convzoo.export``) stay functions when the
    submodules of the same names are imported.

    ``import convzoo.summary`` (or any import from it) binds the submodule as an attribute of the package; the
    function of the same name is what ``convzoo.summary`` has always meant, so that binding is skipped (the
    submodule stays in ``sys.modules``, where every import finds it).
    """

    def __setattr__(self, name: str, value) -> None:
        if name in ("summary", "export") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
