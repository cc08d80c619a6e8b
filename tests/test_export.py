"""Export (default run, no ONNX export: the exporter's fixed cost is tens of seconds here): the export-friendly
detector graph equals the eager detector, its pure parts equal their eager counterparts, the sidecar, and the
one-line error without the optional packages. The ONNX Runtime parity tests are in test_export_onnx.py (slow)."""

from __future__ import annotations

import builtins

import pytest
import torch
from export_helpers import assert_same_detections, proposals_for, tiny_detector

from convzoo.cli import main
from convzoo.detection.keypoint_head import heatmaps_to_keypoints
from convzoo.detection.mask_head import paste_masks
from convzoo.export import DetectorGraph, eager_detections, export, read_sidecar, write_sidecar
from convzoo.export.detector_ops import heatmaps_to_keypoints_dense, paste_masks_dense


def _boxes(n: int, height: int, width: int) -> torch.Tensor:
    corners = torch.rand(n, 2) * torch.tensor([width, height])
    sizes = torch.rand(n, 2) * torch.tensor([width, height]) * 0.6 + 0.3
    return torch.cat([corners, (corners + sizes).clamp(max=torch.tensor([width, height]))], dim=1)


def test_paste_masks_dense_equals_paste_masks() -> None:
    masks = torch.rand(12, 1, 28, 28)
    boxes = _boxes(12, 37, 53)
    boxes[0] = torch.tensor([-5.0, -3.0, 10.0, 8.0])  # partly outside
    boxes[1] = torch.tensor([20.0, 10.0, 20.2, 10.1])  # tiny
    boxes[2] = torch.tensor([60.0, 40.0, 70.0, 50.0])  # outside
    expected = paste_masks(masks, boxes, (37, 53))
    got = paste_masks_dense(masks[:, 0], boxes, 37, 53)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_heatmaps_to_keypoints_dense_equals_eager() -> None:
    heatmaps = torch.randn(6, 3, 56, 56)
    boxes = _boxes(6, 40, 50)
    boxes[0] = torch.tensor([0.0, 0.0, 0.4, 0.7])  # narrower than a pixel
    keypoints, scores = heatmaps_to_keypoints(heatmaps, boxes)
    got_keypoints, got_scores = heatmaps_to_keypoints_dense(heatmaps, boxes, 40, 50)
    torch.testing.assert_close(got_keypoints, keypoints, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_scores, scores, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["mask_rcnn_r50_fpn"])
def test_detector_graph_equals_eager_detector(name: str, one_thread) -> None:
    model = tiny_detector(name)
    images = torch.rand(2, 3, 64, 80)
    proposals = proposals_for(model, 2)
    graph = DetectorGraph(model).eval()
    with torch.no_grad():
        flat = dict(zip(graph.output_names, graph(images, proposals)))
    assert len(flat["boxes"]) > 0
    assert_same_detections(eager_detections(model, images, proposals), flat)


def test_detector_graph_without_detections(one_thread) -> None:
    model = tiny_detector("mask_rcnn_r50_fpn", score_thresh=1.0)
    with torch.no_grad():
        flat = dict(zip(DetectorGraph(model).output_names, DetectorGraph(model)(torch.rand(1, 3, 64, 64))))
    assert flat["boxes"].shape == (0, 4) and flat["labels"].shape == (0,) and flat["masks"].shape == (0, 1, 64, 64)


def test_sidecar_round_trip(tmp_path) -> None:
    path = tmp_path / "model.onnx"
    write_sidecar(path, {"format": "onnx", "inputs": [{"name": "images", "shape": ["batch", 3, 32, 32]}]})
    assert read_sidecar(path)["inputs"][0]["shape"] == ["batch", 3, 32, 32]
    with pytest.raises(FileNotFoundError, match="sidecar"):
        read_sidecar(tmp_path / "other.onnx")


def test_export_without_onnx_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime", "onnxscript"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    for name in ("onnx", "onnxruntime", "onnxscript"):
        monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    assert main(["export", "resnet20", "--out", str(tmp_path / "r.onnx")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "pip install convzoo[export]" in error and error.startswith("convzoo export:")


def test_detector_opset_below_18_is_one_line(tmp_path) -> None:
    """RoIAlign aligned=True needs opset 16, but torch.onnx cannot convert the detector's Pad below 18: --opset 16
    is refused before any tracing, naming the option and the least opset that works."""
    with pytest.raises(ValueError, match=r"--opset 16: .*opset >= 18") as error:
        export(tiny_detector("faster_rcnn_r50_fpn"), torch.rand(1, 3, 64, 64), tmp_path / "d.onnx", opset=16)
    assert "\n" not in str(error.value) and not (tmp_path / "d.onnx").exists()


def test_trace_inputs_keep_every_axis_symbolic(one_thread) -> None:
    """At 64 px FPN's P6 is 1 x 1, which torch.export would fix to 1 (and ONNX Runtime then fails at other sizes):
    the traced example is enlarged until every map is 2 x 2, a batch of 1 becomes 2; the example itself is kept."""
    from convzoo.export.detector_contract import trace_inputs

    model = tiny_detector("mask_rcnn_r50_fpn")
    images = torch.rand(1, 3, 64, 48)
    traced = trace_inputs(model, (images,), dynamic_batch=True, dynamic_size=True)[0]
    assert traced.shape == (2, 3, 128, 96) and images.shape == (1, 3, 64, 48)
    with torch.no_grad():
        assert min(min(f.shape[-2:]) for f in model.backbone(traced)) >= 2
    assert trace_inputs(model, (images,), dynamic_batch=False, dynamic_size=False)[0] is images


def test_a_batch_of_one_still_exports_a_dynamic_batch(tmp_path) -> None:
    from convzoo.registry import create_model

    model = create_model("spec:CB-4-3-1-same,M-2-2,F,H-5", num_classes=5, in_chans=1, input_size=8).eval()
    contract = export(model, torch.rand(1, 1, 8, 8), tmp_path / "m.pt2", format="exported-program")
    assert contract["inputs"][0]["shape"][0] == "batch"
    program = torch.export.load(str(tmp_path / "m.pt2"))
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), model(images))
