"""Shared by the export tests: tiny detectors and the comparison of flat graph outputs with eager detections."""

from __future__ import annotations

import torch

from convzoo.detection.models import HeadWidths
from convzoo.detection.roi_heads import RoIHeadsConfig
from convzoo.detection.rpn import RPNConfig
from convzoo.registry import create_model

# Fast R-CNN's proposals (image, x1, y1, x2, y2) for 64 x 64 images: image 1 gets one, image 0 three
PROPOSALS = torch.tensor([[0, 1, 2, 30, 40], [0, 10, 10, 60, 50], [0, 20, 4, 44, 60], [1, 5, 5, 20, 20.0]])


def tiny_detector(name: str, score_thresh: float = 0.05, **kwargs):
    """``name`` with a small backbone (resnet18, VGG-11) for 64-px images, narrow FPN heads, 50 proposals and 20
    detections per image, random weights, eval mode."""
    extra = {"num_keypoints": 3} if name.startswith("keypoint") else {}
    if "fpn" in name:
        extra["widths"] = HeadWidths(fpn=32, box=64, mask=32, keypoint=32)
    if "fast_rcnn" not in name:
        extra["rpn_config"] = RPNConfig(pre_nms_top_n_test=200, post_nms_top_n_test=50)
    backbone = "vgg11" if "vgg" in name else "resnet18"
    roi_config = RoIHeadsConfig(detections_per_image=20, score_thresh=score_thresh,
                                nms_thresh=0.3 if "vgg" in name else 0.5)
    return create_model(name, backbone=backbone, num_classes=3, min_size=64, max_size=96, roi_config=roi_config,
                        **extra, **kwargs).eval()


def proposals_for(model, num_images: int) -> torch.Tensor | None:
    return None if model.rpn is not None else PROPOSALS[PROPOSALS[:, 0] < num_images]


def assert_same_detections(reference: list[dict], flat: dict[str, torch.Tensor], tol: float = 1e-4) -> None:
    """Eager per-image detections == the graph's flat outputs split by ``batch_index``; boxes, scores, masks and
    keypoints within ``tol`` (absolute or relative), labels equal, masks equal after the 0.5 threshold (where the
    probability is not within ``tol`` of it)."""
    assert int((flat["batch_index"] >= len(reference)).sum()) == 0
    for image, detections in enumerate(reference):
        rows = flat["batch_index"] == image
        for key, expected in detections.items():
            got = flat[key][rows]
            assert got.shape == expected.shape, (key, image, got.shape, expected.shape)
            if key == "labels":
                assert torch.equal(got, expected), (key, image)
                continue
            torch.testing.assert_close(got.float(), expected.float(), atol=tol, rtol=tol, msg=f"{key} of image {image}")
            if key == "masks":  # random weights put many probabilities near 0.5: compare where they are not tied
                clear = (expected - 0.5).abs() > tol
                assert torch.equal((got > 0.5)[clear], (expected > 0.5)[clear]), f"thresholded masks of image {image}"
