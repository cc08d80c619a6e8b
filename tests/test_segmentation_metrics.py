"""Segmentation scores: hand-computed tables, streaming = one call, and torchmetrics' MeanIoU where the conventions
agree (one image, no ignored pixels) and where they differ (several images: #2558; ignored pixels: #312)."""

from __future__ import annotations

import math

import pytest
import torch

from convzoo.evaluation import confusion_matrix, scores_from_confusion, segmentation_scores


def test_hand_computed_table():
    # target  0 0 1 1 2 2      confusion (rows target, columns prediction):  [[1, 1, 0],
    # pred    0 1 1 1 2 0                                                     [0, 2, 0],
    #                                                                         [1, 0, 1]]
    target = torch.tensor([[0, 0, 1, 1, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1, 2, 0]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    scores = scores_from_confusion(cm)
    # IoU: class 0 1/(2+2-1) = 1/3, class 1 2/(2+3-2) = 2/3, class 2 1/(2+1-1) = 1/2
    assert scores["IoU"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert scores["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)
    assert scores["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert scores["fwIoU"] == pytest.approx((2 * 1 / 3 + 2 * 2 / 3 + 2 * 1 / 2) / 6)
    assert scores["pixels"] == 6


def test_absent_class_is_nan_and_left_out_of_the_means_predicted_only_class_counts_zero():
    target = torch.tensor([0, 0, 1, 1])
    scores = segmentation_scores(target.clone(), target, num_classes=4)  # classes 2, 3 nowhere
    assert scores["IoU"][:2] == [1.0, 1.0] and all(math.isnan(v) for v in scores["IoU"][2:])
    assert scores["mIoU"] == 1.0 and scores["mean_accuracy"] == 1.0 and scores["fwIoU"] == 1.0
    scores = segmentation_scores(torch.tensor([0, 0, 1, 3]), target, num_classes=4)  # class 3 predicted only
    assert scores["IoU"][3] == 0.0 and math.isnan(scores["IoU"][2]) and math.isnan(scores["accuracy"][3])
    assert scores["mIoU"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert math.isnan(segmentation_scores(torch.tensor([255]), torch.tensor([255]), 2)["mIoU"])


def test_ignore_index_pixels_leave_prediction_and_target_alike():
    target = torch.tensor([0, 1, 255, 255])
    assert confusion_matrix(torch.tensor([0, 1, 1, 0]), target, 2).tolist() == [[1, 0], [0, 1]]
    # torchmetrics #312: IoU(3, ignore_index=0) of pred [1,2,1,1] / [1,2,1,0] vs target [2,1,1,0] must not depend on
    # the last pixel (target 0, ignored). Left: [1,2,1] vs [2,1,1]: class 1 1/3, class 2 0/2; class 0 absent.
    for pred in ([1, 2, 1, 1], [1, 2, 1, 0]):
        scores = segmentation_scores(torch.tensor([pred]), torch.tensor([[2, 1, 1, 0]]), 3, ignore_index=0)
        assert scores["mIoU"] == pytest.approx(1 / 6) and math.isnan(scores["IoU"][0])
    # a prediction of the ignored class (in range) drops its pixel too: its row and column are stripped
    assert confusion_matrix(torch.tensor([0, 2]), torch.tensor([1, 2]), 3, ignore_index=0).tolist() == \
        [[0, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_streaming_sum_equals_one_call_and_images_of_different_sizes():
    generator = torch.Generator().manual_seed(0)
    images = [(torch.randint(0, 4, (h, w), generator=generator), torch.randint(0, 4, (h, w), generator=generator))
              for h, w in ((5, 7), (3, 3), (8, 2))]
    for _, target in images:
        target[0, 0] = 255
    summed = sum(confusion_matrix(p, t, 4) for p, t in images)
    # every class occurs in the targets, so no NaN spoils the dict comparison
    assert scores_from_confusion(summed) == segmentation_scores([p for p, _ in images], [t for _, t in images], 4)


def test_bad_labels_and_shapes_are_one_line_errors():
    with pytest.raises(ValueError, match="target label 7 is outside the classes 0..2 and not the ignore index 255"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)
    with pytest.raises(ValueError, match=r"same shape, got \[2\] and \[3\]"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 2]), 3)


def _torchmetrics_mean_iou(pred, target, num_classes, per_class=False):
    MeanIoU = pytest.importorskip("torchmetrics.segmentation", reason="torchmetrics is not installed (pip install "
                                  "torchmetrics or the test extra)").MeanIoU

    metric = MeanIoU(num_classes=num_classes, per_class=per_class, input_format="index")
    metric.update(pred, target)
    return metric.compute()


def test_equal_to_torchmetrics_on_one_image_absent_classes_included():
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (1, 16, 16), generator=generator)  # classes 3 and 4 absent from the target
    pred = torch.where(torch.rand(1, 16, 16, generator=generator) < 0.7, target,
                       torch.randint(0, 4, (1, 16, 16), generator=generator))  # 3 predicted, 4 nowhere
    ours = segmentation_scores(pred, target, 5)
    per_class = _torchmetrics_mean_iou(pred, target, 5, per_class=True)
    # torchmetrics writes -1 for a class absent from both (union 0); ours is NaN, left out of the mean alike
    assert math.isnan(ours["IoU"][4]) and per_class[4] == -1
    torch.testing.assert_close(torch.tensor(ours["IoU"][:4], dtype=torch.float64), per_class[:4].double(),
                               rtol=1e-6, atol=1e-7)
    assert ours["mIoU"] == pytest.approx(float(_torchmetrics_mean_iou(pred, target, 5)), rel=1e-6)


def test_ignored_pixels_removed_first_equal_torchmetrics_which_has_no_ignore_index():
    generator = torch.Generator().manual_seed(2)
    target = torch.randint(0, 3, (12, 12), generator=generator)
    target[:3] = 255  # VOC's void border; torchmetrics' MeanIoU takes no ignore_index (its #2747)
    pred = torch.randint(0, 3, (12, 12), generator=generator)
    keep = target != 255
    reference = _torchmetrics_mean_iou(pred[keep][None], target[keep][None], 3)
    assert segmentation_scores(pred, target, 3)["mIoU"] == pytest.approx(float(reference), rel=1e-6)


def test_differs_from_torchmetrics_over_several_images_it_averages_per_image():
    # image A: 1 pixel of class 1, predicted right; image B: 3 pixels of class 1, one predicted 0 (plus class 0).
    pred = torch.tensor([[[1, 0, 0, 0]], [[1, 1, 0, 0]]])
    target = torch.tensor([[[1, 0, 0, 0]], [[1, 1, 1, 0]]])
    ours = segmentation_scores(pred, target, 2)
    # one matrix: class 1 = 3 / 4 (all pixels of both images), class 0 = 4 / 5
    assert ours["IoU"] == pytest.approx([4 / 5, 3 / 4])
    per_image = _torchmetrics_mean_iou(pred, target, 2, per_class=True)
    # torchmetrics (#2558 fixed to a mean over images): class 1 = (1 + 2/3) / 2, class 0 = (1 + 1/2) / 2
    torch.testing.assert_close(per_image.double(), torch.tensor([3 / 4, 5 / 6], dtype=torch.float64))
    assert ours["mIoU"] != pytest.approx(float(_torchmetrics_mean_iou(pred, target, 2)))


def _vernier():
    return pytest.importorskip("vernier.semantic", reason="vernier is not installed (pip install vernier)")


def test_equal_to_vernier_semantic_over_several_images_with_ignore():
    """vernier accumulates one confusion matrix over the data set, as convzoo does: every figure agrees exactly
    (both modes), with pixels whose target is the ignore value removed."""
    import numpy as np

    semantic = _vernier()
    rng = np.random.default_rng(0)
    gt = {i: rng.integers(0, 5, (12 + i, 9)).astype(np.uint32) for i in range(3)}
    for g in gt.values():
        g[rng.random(g.shape) < 0.1] = 255
    dt = {i: np.where(rng.random(g.shape) < 0.6, np.where(g == 255, 0, g), rng.integers(0, 5, g.shape))
          .astype(np.uint32) for i, g in gt.items()}
    ours = segmentation_scores(torch.cat([torch.from_numpy(dt[i].astype("int64")).flatten() for i in gt]),
                               torch.cat([torch.from_numpy(gt[i].astype("int64")).flatten() for i in gt]), 5)
    for mode in ("corrected", "strict"):
        theirs = semantic.evaluate_semantic_from_arrays(gt, dt, 5, mode, ignore_label=255)
        assert ours["mIoU"] == pytest.approx(theirs.miou, abs=1e-12)
        assert ours["fwIoU"] == pytest.approx(theirs.fwiou, abs=1e-12)
        assert ours["pixel_accuracy"] == pytest.approx(theirs.pixel_accuracy, abs=1e-12)
        assert ours["mean_accuracy"] == pytest.approx(theirs.mean_accuracy, abs=1e-12)
        assert ours["IoU"] == pytest.approx([theirs.per_class()[c].iou for c in range(5)], abs=1e-12)


def test_vernier_writes_an_absent_class_as_zero_and_leaves_it_out_of_the_mean_as_convzoo_does_with_nan():
    import numpy as np

    semantic = _vernier()
    gt = {0: np.array([[0, 0, 1], [1, 255, 1]], dtype=np.uint32)}
    dt = {0: np.array([[0, 1, 1], [1, 0, 1]], dtype=np.uint32)}
    theirs = semantic.evaluate_semantic_from_arrays(gt, dt, 3, "corrected", ignore_label=255)
    ours = segmentation_scores(torch.tensor([[0, 1, 1], [1, 0, 1]]), torch.tensor([[0, 0, 1], [1, 255, 1]]), 3)
    assert theirs.per_class()[2].iou == 0.0 and math.isnan(ours["IoU"][2])  # class 2: in neither map
    assert ours["mIoU"] == theirs.miou == 0.625 and ours["pixel_accuracy"] == pytest.approx(theirs.pixel_accuracy)
