"""The R-CNN parts against torchvision's implementations and hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from convzoo.detection.keypoint_head import heatmaps_to_keypoints, keypoint_loss, keypoint_targets
from convzoo.detection.mask_head import mask_loss, mask_targets, paste_masks
from convzoo.detection.models import HeadWidths
from convzoo.detection.poolers import RoIPooler, fpn_levels
from convzoo.detection.roi_heads import RoIHeadsConfig, detect_boxes
from convzoo.detection.rpn import flatten_predictions
from convzoo.detection.transform import DetectionTransform
from convzoo.registry import create_model, list_models
from convzoo.weights import WeightsMismatchError, head_keys, load_weights


def _boxes(n: int, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2) * size * 0.6
    return torch.cat([xy, xy + 4 + torch.rand(n, 2) * size * 0.4], dim=1)


def test_fpn_levels_table() -> None:
    # FPN eq. (1): k = floor(4 + log2(sqrt(wh) / 224)); 224 -> 4, 112 -> 3, 448 -> 5, 56 -> 2, 16 -> 2 (clamped),
    # 1000 -> 6.2 -> 5 (clamped), 223 -> 3.99 -> 3
    sides = torch.tensor([224.0, 112, 448, 56, 16, 1000, 223])
    boxes = torch.stack([torch.zeros(7), torch.zeros(7), sides, sides], dim=1)
    assert fpn_levels(boxes, 2, 5).tolist() == [4, 3, 5, 2, 2, 5, 3]


def test_multiscale_roi_align_equals_torchvision() -> None:
    features = [torch.rand(2, 8, 256 // s, 256 // s) for s in (4, 8, 16, 32)]
    boxes = [_boxes(20, 64) * 4, _boxes(7, 64) * 4]
    reference = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    expected = reference(dict(zip("0123", features)), boxes, [(256, 256), (256, 256)])
    torch.testing.assert_close(RoIPooler(7, [4, 8, 16, 32])(features, boxes), expected)


def test_flatten_predictions_equals_torchvision() -> None:
    objectness = [torch.rand(2, 3, 5, 6), torch.rand(2, 3, 3, 2)]
    deltas = [torch.rand(2, 12, 5, 6), torch.rand(2, 12, 3, 2)]
    logits, flat = flatten_predictions(objectness, deltas)
    expected_logits, expected_deltas = concat_box_prediction_layers(objectness, deltas)
    torch.testing.assert_close(logits.reshape(-1, 1), expected_logits)
    torch.testing.assert_close(flat.reshape(-1, 4), expected_deltas)


def test_detect_boxes_equals_torchvision_postprocess() -> None:
    config = RoIHeadsConfig(score_thresh=0.05, nms_thresh=0.5, detections_per_image=30)
    heads = tv_roi_heads.RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, 0.05, 0.5, 30)
    proposals = [_boxes(40), _boxes(25)]
    logits, deltas = torch.randn(65, 5) * 2, torch.randn(65, 20) * 0.5
    expected = heads.postprocess_detections(logits, deltas, proposals, [(100, 100), (90, 120)])
    actual = detect_boxes(logits, deltas, proposals, [(100, 100), (90, 120)], config)
    for got, boxes, scores, labels in zip(actual, *expected):
        torch.testing.assert_close(got["boxes"], boxes)
        torch.testing.assert_close(got["scores"], scores)
        torch.testing.assert_close(got["labels"], labels)


def test_paste_masks_equals_torchvision() -> None:
    masks = torch.rand(6, 1, 28, 28)
    boxes = torch.tensor([[10.0, 20, 50, 60], [-5, -3, 30, 20], [80, 70, 130, 110], [0, 0, 1, 1],
                          [33.3, 12.7, 34.1, 50.2], [5.5, 6.5, 90.2, 70.9]])
    torch.testing.assert_close(paste_masks(masks, boxes, (100, 120)),
                               tv_roi_heads.paste_masks_in_image(masks, boxes, (100, 120)))


def test_mask_loss_equals_torchvision() -> None:
    gt_masks = (torch.rand(3, 60, 80) > 0.5).to(torch.uint8)
    rois, matched = _boxes(5, 60), torch.tensor([0, 2, 1, 1, 0])
    gt_labels, logits = torch.tensor([1, 3, 2]), torch.randn(5, 4, 28, 28)
    labels = gt_labels[matched]  # each RoI's class: its matched object's
    expected = tv_roi_heads.maskrcnn_loss(logits, [rois], [gt_masks], [gt_labels], [matched])
    actual = mask_loss(logits, labels, mask_targets(gt_masks, rois, matched, 28))
    torch.testing.assert_close(actual, expected)


def test_keypoint_targets_loss_and_inference_equal_torchvision() -> None:
    rois = _boxes(6)
    keypoints = torch.cat([torch.rand(6, 5, 2) * 100, torch.randint(0, 3, (6, 5, 1)).float()], dim=2)
    keypoints[0, 0, :2] = rois[0, 2:]  # exactly on the bottom-right corner: the last cell
    cells, valid = keypoint_targets(keypoints, rois, 56)
    expected_cells, expected_valid = tv_roi_heads.keypoints_to_heatmap(keypoints, rois, 56)
    torch.testing.assert_close(cells, expected_cells)
    torch.testing.assert_close(valid, expected_valid.bool())
    logits = torch.randn(6, 5, 56, 56)
    expected = tv_roi_heads.keypointrcnn_loss(logits, [rois], [keypoints], [torch.arange(6)])
    torch.testing.assert_close(keypoint_loss(logits, cells, valid), expected)
    points, scores = heatmaps_to_keypoints(logits, rois)
    expected_points, expected_scores = tv_roi_heads.heatmaps_to_keypoints(logits, rois)
    torch.testing.assert_close(points, expected_points)
    torch.testing.assert_close(scores, expected_scores)


def test_transform_equals_torchvision() -> None:
    images = [torch.rand(3, 60, 90), torch.rand(3, 75, 50)]
    targets = [{"boxes": _boxes(3, 50), "labels": torch.tensor([1, 2, 3]),
                "masks": (torch.rand(3, *image.shape[-2:]) > 0.5).to(torch.uint8),
                "keypoints": torch.rand(3, 4, 3) * 50} for image in images]
    reference = GeneralizedRCNNTransform(100, 160, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    ours = DetectionTransform(min_size=100, max_size=160).eval()
    expected_batch, expected_targets = reference(images, [dict(t) for t in targets])
    batch, resized = ours(images, targets)
    torch.testing.assert_close(batch.tensors, expected_batch.tensors)
    assert batch.image_sizes == expected_batch.image_sizes
    for got, want in zip(resized, expected_targets):
        for key in ("boxes", "masks", "keypoints"):
            torch.testing.assert_close(got[key], want[key])
    detections = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(3),
                   "masks": torch.rand(3, 1, 28, 28), "keypoints": t["keypoints"]} for t in resized]
    original = [(60, 90), (75, 50)]
    expected_out = reference.postprocess([dict(d) for d in detections], batch.image_sizes, original)
    for got, want in zip(ours.postprocess(detections, batch.image_sizes, original), expected_out):
        for key in ("boxes", "masks", "keypoints"):
            torch.testing.assert_close(got[key], want[key])


THIN = HeadWidths(fpn=64, box=128, mask=32, keypoint=32)  # CPU-sized heads for the smoke tests
# VGG's fc6 (25088 x 4096) makes those models slow to build: out of the default run
DETECTORS = [pytest.param(name, marks=pytest.mark.slow) if "vgg" in name else name for name in list_models("*rcnn*")]


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_trains_and_detects(name: str) -> None:
    """Smoke test over the registry: small backbone, 64-px images, losses finite with gradients, eval output."""
    backbone = "vgg11" if "vgg" in name else "resnet18"
    kwargs = {"num_keypoints": 3} if "keypoint" in name else {}
    if name.endswith("_fpn"):  # thin heads: the paper's widths are checked against torchvision elsewhere
        kwargs["widths"] = THIN
    model = create_model(name, backbone=backbone, num_classes=3, min_size=64, max_size=64, **kwargs)
    images = [torch.rand(3, 64, 64)]
    target = {"boxes": torch.tensor([[8.0, 10, 40, 50]]), "labels": torch.tensor([2]),
              "masks": torch.zeros(1, 64, 64, dtype=torch.uint8), "keypoints": torch.tensor([[[10.0, 12, 2]] * 3])}
    target["masks"][0, 10:50, 8:40] = 1
    given = [torch.tensor([[6.0, 8, 42, 48], [0, 0, 30, 30], [20, 20, 60, 60]])]
    proposals = given if name.startswith("fast_") else None
    losses = model.train()(images, [target], proposals=proposals)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    with torch.no_grad():
        (detection,) = model.eval()(images, proposals=proposals)
    assert {"boxes", "labels", "scores"} <= set(detection)
    assert detection["boxes"].shape[1] == 4


def test_images_without_objects_train() -> None:
    model = create_model("mask_rcnn_r50_fpn", backbone="resnet18", num_classes=3, min_size=64, max_size=64)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)}
    losses = model.train()([torch.rand(3, 64, 64)], [empty])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box_reg"] == 0 and losses["loss_mask"] == 0  # nothing to regress, no mask RoI
    sum(losses.values()).backward()


def test_detector_fine_tunes_to_other_classes_and_keypoints() -> None:
    """Loading a detector of another label set: only the class-shaped layers differ, and
    ``ignore_mismatched_head=True`` keeps exactly those fresh (every other tensor is loaded)."""
    source = create_model("keypoint_rcnn_r50_fpn", backbone="resnet18", num_classes=2, num_keypoints=17)
    target = create_model("keypoint_rcnn_r50_fpn", backbone="resnet18", num_classes=4, num_keypoints=3)
    heads = {"roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred",
             "roi_heads.keypoint_branch.head.logits"}
    assert head_keys(target) == {f"{name}.{p}" for name in heads for p in ("weight", "bias")}
    with pytest.raises(WeightsMismatchError, match="ignore_mismatched_head=True"):
        load_weights(target, source.state_dict())
    fresh = {key: value.clone() for key, value in target.state_dict().items()}
    report = load_weights(target, source.state_dict(), ignore_mismatched_head=True)
    assert set(report.reinitialized) == head_keys(target)
    for key, value in target.state_dict().items():
        expected = fresh[key] if key in head_keys(target) else source.state_dict()[key]
        assert torch.equal(value, expected), key
    mask = create_model("mask_rcnn_r50_fpn", backbone="resnet18", num_classes=4)
    assert "roi_heads.mask_branch.head.logits.weight" in head_keys(mask)


def test_fpn_anchor_sizes_option() -> None:
    model = create_model("faster_rcnn_r50_fpn", backbone="resnet18", num_classes=3, anchor_sizes=(16, 32, 64, 128, 256))
    cells = [getattr(model.rpn.anchor_generator, f"cell_anchors_{level}") for level in range(5)]
    assert [int(c[1, 2] - c[1, 0]) for c in cells] == [16, 32, 64, 128, 256]  # the 1:1 anchor of each level
    with pytest.raises(ValueError, match="one size per FPN level"):
        create_model("faster_rcnn_r50_fpn", backbone="resnet18", anchor_sizes=(16, 32))


def test_backbone_weights_initialize_the_detector() -> None:
    classifier = create_model("resnet18")
    model = create_model("faster_rcnn_r50_fpn", backbone="resnet18", num_classes=3,
                         backbone_weights=classifier.state_dict())
    assert torch.equal(model.backbone.body.layer3[0].conv1.weight, classifier.layer3[0].conv1.weight)


@pytest.mark.slow
def test_vgg_detector_takes_fc6_fc7_from_the_imagenet_classifier() -> None:
    classifier = create_model("vgg11")
    model = create_model("faster_rcnn_vgg16", backbone="vgg11", num_classes=3, backbone_weights=classifier.state_dict())
    assert torch.equal(model.roi_heads.box_head.fc6.weight, classifier.classifier[0].weight)
    assert torch.equal(model.roi_heads.box_head.fc7.bias, classifier.classifier[3].bias)
    assert torch.equal(model.backbone.body.features[0].weight, classifier.features[0].weight)


@pytest.mark.parametrize("name", ["mask_rcnn_r50_fpn", "keypoint_rcnn_r50_fpn"])
def test_eval_mode_inference_outside_no_grad(name: str) -> None:
    """``model.eval()(images)`` with grad enabled, as torchvision users call it (docs/detection.md): it used to
    crash in mask pasting (an in-place write into a view of the zero image while the masks require grad)."""
    torch.manual_seed(0)
    kwargs = {"num_keypoints": 3, "widths": THIN} if "keypoint" in name else {"widths": THIN}
    model = create_model(name, backbone="resnet18", num_classes=3, min_size=64, max_size=64, **kwargs).eval()
    (detection,) = model([torch.rand(3, 48, 64)])
    key = "masks" if "mask" in name else "keypoints"
    assert len(detection["boxes"]) > 0
    assert detection[key].shape[0] == len(detection["boxes"])
    if key == "masks":
        assert detection["masks"].shape[1:] == (1, 48, 64)  # pasted into the original image size


def test_paste_masks_is_differentiable() -> None:
    masks = torch.rand(3, 1, 28, 28, requires_grad=True)
    boxes = torch.tensor([[10.0, 20, 50, 60], [-5, -3, 30, 20], [200, 200, 210, 210]])  # the last is off the image
    pasted = paste_masks(masks, boxes, (100, 120))
    pasted.sum().backward()
    assert masks.grad[:2].abs().sum() > 0 and masks.grad[2].abs().sum() == 0
