"""The export of a detector: its graph module, axes and the ``detection`` part of its sidecar."""

from __future__ import annotations

import torch
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
