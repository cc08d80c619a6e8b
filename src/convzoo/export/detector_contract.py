"""The export of a detector: its graph module, axes, trace inputs and the ``detection`` part of its sidecar.

Trace inputs: torch.export specializes a dynamic axis whose size is 1 in the example (its "0/1 specialization").
For a detector that is not only the batch axis: at 64 px, FPN's stride-64 map P6 is 1 x 1, torch.export records
the guard ``P6 height == 1`` and gives every tensor derived from P6 (its anchors, its RPN logits) a fixed size 1,
which the ONNX file then declares; ONNX Runtime fails on such a file at any size with a larger P6 (a Reshape to
[1, 1], a Range's buffer of 1). :func:`trace_inputs` therefore enlarges the example until every feature map is at
least 2 x 2 (and a batch of 1 to 2): the graph is the same, only its shapes stay symbolic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.export import Dim

from convzoo.detection.detector import RCNN
from convzoo.export.contract import tensor_spec
from convzoo.export.detector_graph import DetectorGraph


def _output_specs(graph: DetectorGraph, channels: int) -> list[dict]:
    specs = [tensor_spec("boxes", ["detections", 4]), tensor_spec("scores", ["detections"]),
             tensor_spec("labels", ["detections"], "int64"), tensor_spec("batch_index", ["detections"], "int64")]
    if graph.has_masks:
        specs.append(tensor_spec("masks", ["detections", 1, "height", "width"]))
    if graph.has_keypoints:
        keypoints = graph.model.roi_heads.keypoint_branch.head.logits.out_channels
        specs += [tensor_spec("keypoints", ["detections", keypoints, 3]),
                  tensor_spec("keypoints_scores", ["detections", keypoints])]
    return specs


def _smallest_map(model: RCNN, channels: int, height: int, width: int) -> int:
    """The smallest side of the backbone's feature maps for a ``height x width`` input (padded as the graph does)."""
    divisor = model.transform.size_divisible
    padded = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, channels, *padded, device=next(model.parameters()).device))
    return min(min(feature.shape[-2:]) for feature in features)


def trace_inputs(model: RCNN, inputs: tuple, dynamic_batch: bool, dynamic_size: bool) -> tuple:
    """``inputs`` as torch.export must see them to keep the dynamic axes symbolic (see module doc): a batch of at
    least 2 (``dynamic_batch``), a size at which every feature map is at least 2 x 2 (``dynamic_size``: the
    images bilinearly enlarged, by powers of 2), and at least 2 proposals (a Fast R-CNN's second input)."""
    images, rest = inputs[0], list(inputs[1:])
    if dynamic_batch and images.shape[0] == 1:
        images = torch.cat([images, images.flip(-1)])
    if dynamic_size:
        height, width = images.shape[-2:]
        for _ in range(8):
            if _smallest_map(model, images.shape[1], height, width) >= 2:
                break
            height, width = 2 * height, 2 * width
        if (height, width) != tuple(images.shape[-2:]):
            images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
    if rest and rest[0].shape[0] < 2:
        rest[0] = torch.cat([rest[0], rest[0]]) if len(rest[0]) else torch.tensor([[0.0, 0, 0, 16, 16]] * 2)
    return (images, *rest)


def prepare(model: RCNN, inputs: tuple, dynamic_batch: bool, dynamic_size: bool):
    """(module, input names, output names, dynamic shapes, sidecar fields) of ``model``'s graph."""
    graph = DetectorGraph(model).eval()
    images = inputs[0]
    if images.dim() != 4 or images.shape[1] != len(model.transform.mean):
        raise ValueError(f"a detector exports with images Tensor[N, {len(model.transform.mean)}, H, W], "
                         f"got shape {list(images.shape)}")
    if model.rpn is None and len(inputs) < 2:
        raise ValueError("a Fast R-CNN (no RPN) exports with (images, proposals Tensor[P, 5]) example inputs")
    axes = {}
    if dynamic_batch:
        axes[0] = Dim.AUTO
    if dynamic_size:
        axes.update({2: Dim.AUTO, 3: Dim.AUTO})
    shapes: tuple = (axes,)
    input_names = ["images"]
    more = []
    if model.rpn is None:
        shapes = (axes, {0: Dim.AUTO})
        input_names.append("proposals")
        more.append(tensor_spec("proposals", ["proposals", 5]))
    transform = model.transform
    config = model.roi_heads.config
    extra = {
        "outputs": _output_specs(graph, images.shape[1]),
        "more_inputs": more,
        "normalization": {"mean": list(transform.mean), "std": list(transform.std), "where": "graph",
                          "input_range": [0.0, 1.0]},
        "detection": {
            "box_format": "xyxy", "box_coordinates": "input pixels", "score_thresh": config.score_thresh,
            "nms_thresh": config.nms_thresh, "detections_per_image": config.detections_per_image,
            "resize_by_caller": {"min_size": transform.min_size[-1], "max_size": transform.max_size,
                                 "rule": "scale so the shorter side is min_size unless the longer would pass "
                                         "max_size; the graph does not resize"},
            "size_divisible": transform.size_divisible,
            "outputs_order": "image-major, best first within an image; batch_index names the image",
            "masks": "probabilities, threshold 0.5 for a binary mask" if graph.has_masks else None,
            "roi_align_aligned": model.roi_heads.box_pooler.aligned,
        },
    }
    return graph, input_names, graph.output_names, shapes, extra


def run_onnx(path, images: torch.Tensor, proposals: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Run an exported detector with ONNX Runtime -> its outputs by name, as tensors."""
    from convzoo.export.runtime import session

    ort_session = session(path)
    feed = {"images": images.numpy()}
    if proposals is not None:
        feed["proposals"] = proposals.numpy()
    names = [output.name for output in ort_session.get_outputs()]
    return {name: torch.from_numpy(value) for name, value in zip(names, ort_session.run(None, feed))}
