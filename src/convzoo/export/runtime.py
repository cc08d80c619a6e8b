"""ONNX Runtime sessions for exported files (CPU), and running a classifier file on a tensor."""

from __future__ import annotations

from pathlib import Path

import torch

from convzoo.export.deps import require


def session(path: str | Path, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU with all graph optimizations; ``threads`` sets
    the intra-op threads (None: torch's current number)."""
    (ort,) = require("onnxruntime")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no ONNX file {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_classifier(path: str | Path, images: torch.Tensor) -> torch.Tensor:
    """The logits Tensor[N, K] of the classifier file ``path`` on Tensor[N, C, ...] ``images``."""
    ort_session = session(path)
    return torch.from_numpy(ort_session.run(None, {ort_session.get_inputs()[0].name: images.numpy()})[0])
