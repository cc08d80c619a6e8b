"""The optional packages of exporting: ``onnx`` and ``onnxruntime`` (``pip install convzoo[export]``).

The ONNX exporter of torch (``torch.onnx.export(dynamo=True)``) needs ``onnx`` and ``onnxscript``; running and
checking an ONNX file needs ``onnxruntime``. Without them every entry point raises :class:`MissingDependencyError`,
one line that names the package and the extra.
"""

from __future__ import annotations

import importlib
import types

EXTRA = "convzoo[export]"


class MissingDependencyError(ImportError, ValueError):
    """An optional package is not installed. A ValueError too, so that the CLI prints it as one line (exit 2)."""


def require(*names: str) -> list[types.ModuleType]:
    """Import the modules ``names`` (e.g. ``"onnx"``, ``"onnxruntime"``) or raise one line naming the extra."""
    modules, missing = [], []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependencyError(f"{', '.join(missing)} not installed: ONNX export and ONNX Runtime need the "
                                     f"optional packages, pip install {EXTRA}")
    return modules
