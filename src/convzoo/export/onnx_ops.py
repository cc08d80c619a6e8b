"""ONNX translations of the operators whose default translation in torch.onnx (onnxscript 0.7) is wrong.

* ``torchvision::roi_pool(input, rois, spatial_scale, pooled_height, pooled_width) -> (output, argmax)``: the
  default translation takes an ``output_size`` pair (the Python API's signature, not the operator's), so every
  Fast/Faster R-CNN with RoI pooling (the VGG-16 ones) failed to convert. ONNX ``MaxRoiPool`` is the same rule
  (Fast R-CNN, Girshick 2015, Sec. 2.1; Caffe's kernel, which torchvision follows): RoI corners rounded after the
  scaling, at least one cell, bins ``floor``/``ceil`` of the fractional bin edges, empty bins 0. The ``argmax``
  output only serves torchvision's backward; nothing reads it in inference.
"""

from __future__ import annotations

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision.*)


def _roi_pool(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
    from onnxscript import INT64
    from onnxscript import opset18 as op

    pooled = op.MaxRoiPool(input, rois, pooled_shape=[pooled_height, pooled_width], spatial_scale=spatial_scale)
    return pooled, op.Cast(pooled, to=INT64.dtype)  # argmax: unused in inference (see module doc)


def translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export``: the operators above -> their ONNX form."""
    return {torch.ops.torchvision.roi_pool.default: _roi_pool}
