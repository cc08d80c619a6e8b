"""Deployment: ONNX and torch.export of every classifier and detector, and fast CPU inference.

    convzoo.export(model, torch.rand(2, 3, 224, 224), "model.onnx")      # + model.onnx.json, the input contract
    fast = convzoo.optimize(model)                                          # BatchNorm folded, channels_last, ...

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional (``pip install convzoo[export]``); without them the
ONNX functions raise one line saying so.
"""

from convzoo.export.api import FORMATS, export, is_detector
from convzoo.export.contract import read_sidecar, write_sidecar
from convzoo.export.deps import MissingDependencyError, require
from convzoo.export.detector_graph import DetectorGraph, eager_detections
from convzoo.export.fast import fold_batch_norms, optimize

__all__ = ["FORMATS", "DetectorGraph", "MissingDependencyError", "eager_detections", "export", "fold_batch_norms",
           "is_detector", "optimize", "read_sidecar", "require", "write_sidecar"]
