"""Faster/Mask/Keypoint R-CNN R50-FPN with torchvision's weights give torchvision's detections and losses.

Random weights are built here (no downloads); BatchNorm statistics and predictor weights are perturbed so that
the network is not near-trivial, and the score threshold is lowered so that many detections survive.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import detection as tv_detection

from convzoo.detection.boxes import box_iou
from convzoo.detection.roi_heads import RoIHeadsConfig
from convzoo.registry import create_model
from convzoo.weights import load_weights

PAIRS = {
    "faster_rcnn_r50_fpn": tv_detection.fasterrcnn_resnet50_fpn,
    "mask_rcnn_r50_fpn": tv_detection.maskrcnn_resnet50_fpn,
    "keypoint_rcnn_r50_fpn": tv_detection.keypointrcnn_resnet50_fpn,
}
SIZE = {"min_size": 160, "max_size": 256}


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
        elif key.endswith("running_mean"):
            value.normal_(0, 0.1)
        elif "bn" in key and key.endswith("weight"):  # keep activations O(1) through 50 layers
            value.uniform_(0.3, 0.7)
        elif key.startswith("rpn.head") and key.endswith("weight"):  # spread objectness: no near-ties
            value.normal_(0, 0.1)
        elif "predictor" in key and key.endswith("weight"):
            value.normal_(0, 0.05)
    model.load_state_dict(state)
    return model


def _pair(name: str, detections: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    reference = PAIRS[name](weights=None, weights_backbone=None, box_score_thresh=0.0,
                            box_detections_per_img=detections, **SIZE)
    reference = _perturbed(reference)
    model = create_model(name, roi_config=RoIHeadsConfig(score_thresh=0.0, detections_per_image=detections),
                         **SIZE)
    report = load_weights(model, reference.state_dict(), source="torchvision")
    assert not report.missing and not report.unexpected
    return reference, model


def _assert_same_detections(want: dict, got: dict, top: int) -> None:
    """Each of torchvision's ``top`` best detections has a twin: same label, IoU > 0.999, same score (and masks,
    keypoints). Matching instead of comparing rows: float noise (~1e-6 relative in the features) may swap two
    detections of almost equal score."""
    assert set(got) == set(want) and len(got["boxes"]) == len(want["boxes"])
    torch.testing.assert_close(got["scores"], want["scores"], atol=1e-4, rtol=1e-4)  # both sorted, best first
    iou = box_iou(want["boxes"][:top], got["boxes"])
    iou[want["labels"][:top, None] != got["labels"][None, :]] = 0
    best, twin = iou.max(dim=1)
    assert (best > 0.999).all(), best.min()
    torch.testing.assert_close(got["scores"][twin], want["scores"][:top], atol=1e-4, rtol=1e-4)
    for key in ("masks", "keypoints", "keypoints_scores"):
        if key in want:
            torch.testing.assert_close(got[key][twin], want[key][:top], atol=1e-2, rtol=1e-3)


@pytest.mark.parametrize("name", ["faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn",
                                  pytest.param("keypoint_rcnn_r50_fpn", marks=pytest.mark.slow)])
def test_same_detections_as_torchvision(name: str) -> None:
    detections = 5 if name.startswith("keypoint") else 50
    reference, model = _pair(name, detections)
    images = [torch.rand(3, 150, 200), torch.rand(3, 130, 170)]
    with torch.no_grad():
        expected, actual = reference.eval()(images), model.eval()(images)
    for want, got in zip(expected, actual):
        assert len(want["boxes"]) == detections
        _assert_same_detections(want, got, top=detections * 4 // 5)


def test_same_training_losses_as_torchvision() -> None:
    reference, model = _pair("mask_rcnn_r50_fpn", 10)
    masks = torch.zeros(2, 150, 200, dtype=torch.uint8)
    masks[0, 20:80, 30:90] = 1
    masks[1, 60:140, 100:190] = 1
    targets = [{"boxes": torch.tensor([[30.0, 20, 90, 80], [100, 60, 190, 140]]), "labels": torch.tensor([3, 7]),
                "masks": masks}]
    image = [torch.rand(3, 150, 200)]
    reference.train().backbone.body.eval()  # without weights torchvision trains BatchNorm; ours is frozen
    torch.manual_seed(1)
    expected = reference(image, targets)
    torch.manual_seed(1)
    actual = model.train()(image, targets)
    assert set(actual) == set(expected)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=1e-4, rtol=1e-4, msg=key)
