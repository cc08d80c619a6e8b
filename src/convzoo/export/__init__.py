"""Deployment: ONNX and torch.export of every classifier and detector, and fast CPU inference.

    convzoo.export(model, torch.rand(2, 3, 224, 224), "model.onnx")      # + model.onnx.json, the input contract
    fast = convzoo.optimize(model)                                          # BatchNorm folded, channels_last, ...
    fast = convzoo.optimize(model, x, jit=False, tune_kernels=True)        # + Winograd / oneDNN where faster

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional (``pip install convzoo[export]``); without them the
ONNX functions raise one line saying so.
"""

from convzoo.export.api import FORMATS, export, is_detector
from convzoo.export.contract import read_sidecar, write_sidecar
from convzoo.export.deps import MissingDependencyError, require
from convzoo.export.detector_graph import DetectorGraph, eager_detections
from convzoo.export.fast import fold_batch_norms, optimize
from convzoo.export.kernels import OneDnnConv2d, tune_kernels
from convzoo.export.winograd import WinogradConv2d, winograd_conv3x3

__all__ = ["FORMATS", "DetectorGraph", "MissingDependencyError", "OneDnnConv2d", "WinogradConv2d", "eager_detections",
           "export", "fold_batch_norms", "is_detector", "optimize", "read_sidecar", "require", "tune_kernels",
           "winograd_conv3x3", "write_sidecar"]
