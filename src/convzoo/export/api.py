"""``convzoo.export``: a classifier or detector to an ONNX file or a torch.export program, with its sidecar.

    convzoo.export(model, torch.rand(2, 3, 224, 224), "resnet50.onnx")                     # dynamic batch and size
    convzoo.export(detector, torch.rand(1, 3, 512, 640), "mask_rcnn.pt2", format="exported-program")

Both formats go through ``torch.export.export`` with the batch and spatial axes dynamic (``Dim.AUTO``: an axis the
model fixes stays fixed, and the sidecar says so); ONNX then converts that program with ``torch.onnx.export``
(opset 18 by default and at least for detectors, see ``MIN_DETECTOR_OPSET``). A detector is exported as its
:class:`~convzoo.export.detector_graph.DetectorGraph`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim

from convzoo.export import classifier as classifier_export
from convzoo.export import onnx_ops
from convzoo.export.contract import tensor_spec, write_sidecar
from convzoo.export.deps import require

FORMATS = ("onnx", "exported-program")
DEFAULT_OPSET = 18
# RoiAlign's coordinate_transformation_mode (aligned=True) came in opset 16, but torch.onnx writes opset 18 and
# converts down with ONNX's version converter, which has no Pad 18 -> 17 adapter (onnx 1.23): a detector's graph
# (it pads the batch to a multiple of 32) stays at 18. Asked for less, export says so instead of writing a file
# whose opset is not the one asked for.
MIN_DETECTOR_OPSET = 18


def is_detector(model: nn.Module) -> bool:
    from convzoo.detection.detector import RCNN

    return isinstance(model, RCNN)


def _dynamic_shapes(axes: dict[int, str], rank: int) -> dict[int, object]:
    return {index: Dim.AUTO for index in axes if index < rank}


def _exported_axes(program: torch.export.ExportedProgram, names: list[str | None], rank: int) -> list:
    """The first input's shape as the program has it: a name for each axis left symbolic, else the number."""
    first = program.graph_signature.user_inputs[0]
    placeholder = next(node for node in program.graph.nodes if node.op == "placeholder" and node.name == first)
    shape = placeholder.meta["val"].shape
    return [names[i] if isinstance(shape[i], torch.SymInt) and names[i] else int(shape[i]) for i in range(rank)]


def _drop_dead_comparisons(graph_module: torch.fx.GraphModule) -> None:
    """Erase the unused shape comparisons (``u0 <= 2**64 - 4``) left once the exporter drops the runtime asserts
    of data-dependent sizes: their out-of-range constants cannot be written into ONNX, and nothing reads them."""
    for module in graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in reversed(list(module.graph.nodes)):
            if (node.op == "call_function" and not node.users
                    and getattr(node.target, "__module__", None) in ("_operator", "operator")):
                module.graph.erase_node(node)
        module.recompile()


@contextlib.contextmanager
def _onnx_without_dead_comparisons():
    """torch.onnx decomposes the program again (re-creating the asserts), then removes the assert nodes but not
    the comparisons feeding them (torch 2.14): extend that pass, for the duration of one export."""
    from torch.onnx._internal.exporter import _fx_passes

    original = _fx_passes.remove_assertion_nodes

    def remove_assertions_and_their_comparisons(graph_module):
        graph_module = original(graph_module)
        _drop_dead_comparisons(graph_module)
        return graph_module

    _fx_passes.remove_assertion_nodes = remove_assertions_and_their_comparisons
    try:
        yield
    finally:
        _fx_passes.remove_assertion_nodes = original


def export(model: nn.Module, example_inputs, path: str | Path, format: str = "onnx", dynamic: bool = True,
           opset: int | None = None, *, dynamic_batch: bool | None = None, dynamic_size: bool | None = None,
           name: str | None = None, class_names: list[str] | None = None,
           normalization: dict | None = None) -> dict:
    """Export ``model`` (eval mode is set) traced on ``example_inputs`` (a Tensor, or a tuple: a Fast R-CNN takes
    ``(images, proposals Tensor[P, 5])``) to ``path``; write ``PATH.json`` (:mod:`convzoo.export.contract`) and
    return that contract. ``dynamic`` sets both ``dynamic_batch`` and ``dynamic_size`` unless they are given."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    dynamic_batch = dynamic if dynamic_batch is None else dynamic_batch
    dynamic_size = dynamic if dynamic_size is None else dynamic_size
    detector = is_detector(model)
    if opset is None:
        opset = DEFAULT_OPSET
    if format == "onnx":
        if detector and opset < MIN_DETECTOR_OPSET:
            raise ValueError(f"--opset {opset}: a detector exports at opset >= {MIN_DETECTOR_OPSET} (torch.onnx "
                             f"cannot convert its Pad below 18; RoIAlign aligned=True alone would need 16)")
        require("onnx", "onnxscript")
    inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if not inputs or not isinstance(inputs[0], torch.Tensor):
        raise ValueError("example_inputs must be a Tensor (or a tuple of Tensors), e.g. torch.rand(2, 3, 224, 224)")
    images = inputs[0]
    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if detector:
        from convzoo.export import detector_contract

        module, input_names, output_names, input_shapes, extra = detector_contract.prepare(
            model, inputs, dynamic_batch, dynamic_size)
        inputs = detector_contract.trace_inputs(model, inputs, dynamic_batch, dynamic_size)
        names = ["batch", None, "height", "width"]
    else:
        if images.dim() < 3:
            raise ValueError(f"a classifier takes Tensor[N, C, *spatial], got shape {list(images.shape)}")
        module, input_names, output_names = model, ["images"], ["logits"]
        if dynamic_batch and images.shape[0] == 1:  # torch.export fixes an axis of size 1: trace a batch of 2
            images = images.expand(2, *images.shape[1:]).contiguous()
            inputs = (images, *inputs[1:])
        axes = classifier_export.dynamic_axes(model, images, dynamic_batch, dynamic_size)
        input_shapes = (_dynamic_shapes(axes, images.dim()),)
        names = classifier_export.axis_names(images)
        extra = {"outputs": classifier_export.output_spec(model, images, dynamic_batch)}
    with torch.no_grad():
        program = torch.export.export(module, inputs, dynamic_shapes=input_shapes)
    shape = _exported_axes(program, names, images.dim())
    if format == "exported-program":
        torch.export.save(program, str(path))
    else:
        with _onnx_without_dead_comparisons():
            onnx_program = torch.onnx.export(program, inputs, input_names=input_names, output_names=output_names,
                                             opset_version=opset, external_data=False, verbose=False,
                                             custom_translation_table=onnx_ops.translation_table())
        written = onnx_program.model.opset_imports.get("", opset)
        if written != opset:
            raise ValueError(f"--opset {opset}: torch.onnx could not convert this model below opset {written}; "
                             f"use --opset {written} or higher")
        onnx_program.save(str(path), external_data=False)
    contract = {
        "format": format, "file": path.name, "model": name or type(model).__name__,
        "kind": "detector" if detector else "classifier", "opset": opset if format == "onnx" else None,
        "inputs": [tensor_spec(input_names[0], shape)] + extra.pop("more_inputs", []),
        "outputs": extra.pop("outputs"),
        "normalization": normalization if not detector else extra.pop("normalization"),
        "class_names": class_names if class_names is not None else getattr(model, "class_names", None),
        **extra,
    }
    write_sidecar(path, contract)
    return contract
