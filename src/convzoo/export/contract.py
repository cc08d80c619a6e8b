"""The JSON sidecar written next to every exported file: what the graph takes and what it returns.

``model.onnx`` gets ``model.onnx.json``::

    {"convzoo_export": 1, "format": "onnx", "file": "model.onnx", "model": "resnet50", "kind": "classifier",
     "opset": 18,
     "inputs":  [{"name": "images", "shape": ["batch", 3, "height", "width"], "dtype": "float32"}],
     "outputs": [{"name": "logits", "shape": ["batch", 1000], "dtype": "float32"}],
     "normalization": {"mean": [...], "std": [...], "where": "caller"},   # or "graph" (detectors)
     "class_names": [...] or null}

A string in a shape is a dynamic axis (its name), an integer a fixed one. Classifiers take normalized inputs
(``(pixel / 255 - mean) / std`` done by the caller); detectors take images in [0, 1] and normalize inside the
graph. A detector's sidecar adds ``"detection"``: the box format (``xyxy`` in input pixels), the score threshold,
NMS threshold and detections per image the graph applies, and the resize the caller does (shorter side to
``min_size``, longer at most ``max_size``; the graph itself does not resize).
"""

from __future__ import annotations

import json
from pathlib import Path

SIDECAR_VERSION = 1


def tensor_spec(name: str, shape: list, dtype: str = "float32") -> dict:
    """One input or output: ``shape`` holds ints (fixed axes) and strings (the names of dynamic axes)."""
    return {"name": name, "shape": list(shape), "dtype": dtype}


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | Path, contract: dict) -> Path:
    """Write ``contract`` as ``PATH.json`` next to the exported file ``path``; returns the sidecar's path."""
    target = sidecar_path(path)
    target.write_text(json.dumps({"convzoo_export": SIDECAR_VERSION, **contract}, indent=2) + "\n")
    return target


def read_sidecar(path: str | Path) -> dict:
    """The contract of an exported file (its ``PATH.json``); a missing sidecar is a FileNotFoundError."""
    target = sidecar_path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no sidecar {target} next to {path}; convzoo export writes one")
    return json.loads(target.read_text())
