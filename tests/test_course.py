"""convzoo.course: the test cases of the course's ``bboxes_utils.py`` (NPFL138 labs/06), plus types and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convzoo.course import (
    BOTTOM,
    LEFT,
    RIGHT,
    TOP,
    bboxes_area,
    bboxes_from_rcnn,
    bboxes_iou,
    bboxes_to_rcnn,
    bboxes_training,
)
from convzoo.detection.boxes import box_convert, box_iou

# The course's table: anchor, bbox, R-CNN parametrization (t_y, t_x, t_h, t_w); boxes (top, left, bottom, right)
TO_FROM_RCNN = [
    [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]],
    [[0, 0, 10, 10], [5, 0, 15, 10], [.5, 0, 0, 0]],
    [[0, 0, 10, 10], [0, 5, 10, 15], [0, .5, 0, 0]],
    [[0, 0, 10, 10], [0, 0, 20, 30], [.5, 1, np.log(2), np.log(3)]],
    [[0, 9, 10, 19], [2, 10, 5, 16], [-0.15, -0.1, -1.20397, -0.51083]],
    [[5, 3, 15, 13], [7, 7, 10, 9], [-0.15, 0, -1.20397, -1.60944]],
    [[7, 6, 17, 16], [9, 10, 12, 13], [-0.15, 0.05, -1.20397, -1.20397]],
    [[5, 6, 15, 16], [7, 7, 10, 10], [-0.15, -0.25, -1.20397, -1.20397]],
    [[6, 3, 16, 13], [8, 5, 12, 8], [-0.1, -0.15, -0.91629, -1.20397]],
    [[5, 2, 15, 12], [9, 6, 12, 8], [0.05, 0, -1.20397, -1.60944]],
    [[2, 10, 12, 20], [6, 11, 8, 17], [0, -0.1, -1.60944, -0.51083]],
    [[10, 9, 20, 19], [12, 13, 17, 16], [-0.05, 0.05, -0.69315, -1.20397]],
    [[6, 7, 16, 17], [10, 11, 12, 14], [0, 0.05, -1.60944, -1.20397]],
    [[2, 2, 12, 12], [3, 5, 8, 8], [-0.15, -0.05, -0.69315, -1.20397]],
]

TRAINING_ANCHORS = [[0, 0, 10, 10], [0, 10, 10, 20], [10, 0, 20, 10], [10, 10, 20, 20]]
# gold classes, gold boxes, expected anchor classes, expected anchor boxes, IoU threshold
TRAINING = [
    [[1], [[14., 14, 16, 16]], [0, 0, 0, 2], [[0, 0, 0, 0]] * 3 + [[0, 0, np.log(.2), np.log(.2)]], 0.5],
    [[2], [[0., 0, 20, 20]], [3, 0, 0, 0], [[.5, .5, np.log(2), np.log(2)]] + [[0, 0, 0, 0]] * 3, 0.26],
    [[2], [[0., 0, 20, 20]], [3, 3, 3, 3], [[y, x, np.log(2), np.log(2)] for y in [.5, -.5] for x in [.5, -.5]], 0.24],
    [[0, 1], [[3, 3, 20, 18], [10, 1, 18, 21]], [0, 0, 0, 1],
     [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [-0.35, -0.45, 0.53062, 0.40546]], 0.5],
    [[0, 1], [[3, 3, 20, 18], [10, 1, 18, 21]], [0, 0, 2, 1],
     [[0, 0, 0, 0], [0, 0, 0, 0], [-0.1, 0.6, -0.22314, 0.69314], [-0.35, -0.45, 0.53062, 0.40546]], 0.3],
    [[0, 1], [[3, 3, 20, 18], [10, 1, 18, 21]], [0, 1, 2, 1],
     [[0, 0, 0, 0], [0.65, -0.45, 0.53062, 0.40546], [-0.1, 0.6, -0.22314, 0.69314],
      [-0.35, -0.45, 0.53062, 0.40546]], 0.17],
]


def test_bboxes_to_from_rcnn_course_table():
    # as the course: first each row on its own, then all rows together
    for anchors, bboxes, rcnns in [[[x] for x in row] for row in TO_FROM_RCNN] + [list(zip(*TO_FROM_RCNN))]:
        anchors, bboxes, rcnns = [np.array(data, np.float32) for data in [anchors, bboxes, rcnns]]
        np.testing.assert_almost_equal(bboxes_to_rcnn(anchors, bboxes), rcnns, decimal=3)
        np.testing.assert_almost_equal(bboxes_from_rcnn(anchors, rcnns), bboxes, decimal=3)


@pytest.mark.parametrize("case", range(len(TRAINING)))
def test_bboxes_training_course_table(case):
    gold_classes, gold_bboxes, anchor_classes, anchor_bboxes, iou = TRAINING[case]
    anchors = np.array(TRAINING_ANCHORS, np.float32)
    gold_classes, anchor_classes = np.array(gold_classes, np.int32), np.array(anchor_classes, np.int32)
    gold_bboxes, anchor_bboxes = np.array(gold_bboxes, np.float32), np.array(anchor_bboxes, np.float32)
    computed_classes, computed_bboxes = bboxes_training(anchors, gold_classes, gold_bboxes, iou)
    assert isinstance(computed_classes, np.ndarray) and computed_classes.dtype == np.int32
    np.testing.assert_almost_equal(computed_classes, anchor_classes, decimal=3)
    np.testing.assert_almost_equal(computed_bboxes, anchor_bboxes, decimal=3)


def test_bboxes_area_and_iou():
    assert (TOP, LEFT, BOTTOM, RIGHT) == (0, 1, 2, 3)
    boxes = np.array([[0, 0, 10, 20], [5, 5, 15, 15], [3, 3, 2, 9]], np.float32)
    np.testing.assert_allclose(bboxes_area(boxes), [200, 100, 0])  # 10 high x 20 wide; inverted box: 0
    # (0, 0, 10, 20) and (5, 5, 15, 15): intersection rows 5..10, columns 5..15 = 50; union 200 + 100 - 50
    np.testing.assert_allclose(bboxes_iou(boxes[0], boxes[1]), 50 / 250)
    xs, ys = np.random.default_rng(0).uniform(0, 50, (2, 6, 4)).astype(np.float32)
    xs[:, 2:] += xs[:, :2]
    ys[:, 2:] += ys[:, :2]
    pairs = bboxes_iou(xs[:, None], ys[None, :])
    assert pairs.shape == (6, 6)
    to_xyxy = [box_convert(torch.from_numpy(b), "tlbr", "xyxy") for b in (xs, ys)]
    np.testing.assert_allclose(pairs, box_iou(*to_xyxy).numpy(), rtol=1e-6)


def test_tensors_in_tensors_out():
    anchors = torch.tensor(TRAINING_ANCHORS, dtype=torch.float32)
    gold = torch.tensor([[3.0, 3, 20, 18], [10, 1, 18, 21]])
    classes, boxes = bboxes_training(anchors, torch.tensor([0, 1]), gold, 0.3)
    assert isinstance(classes, torch.Tensor) and classes.dtype == torch.int64
    assert classes.tolist() == [0, 0, 2, 1] and boxes.shape == (4, 4)
    assert isinstance(bboxes_area(anchors), torch.Tensor)
    rcnns = bboxes_to_rcnn(anchors, anchors.flip(0))
    torch.testing.assert_close(bboxes_from_rcnn(anchors, rcnns), anchors.flip(0))


def test_bboxes_training_without_gold_objects():
    classes, boxes = bboxes_training(np.array(TRAINING_ANCHORS, np.float32), np.zeros(0, np.int64),
                                     np.zeros((0, 4), np.float32), 0.5)
    assert classes.tolist() == [0, 0, 0, 0] and not boxes.any()


def test_bboxes_training_tie_rules():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 20, 10, 30]], np.float32)
    # both gold objects have the same best anchor, a tie between anchors 0 and 1: they pick anchor 0 (smaller
    # index), gold 0 keeps it (smaller index); in step 2 anchor 1 (unused) takes its best gold object: gold 0 again
    gold = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    classes, boxes = bboxes_training(anchors, np.array([4, 7]), gold, 0.5)
    assert classes.tolist() == [5, 5, 0]
    np.testing.assert_allclose(boxes, np.zeros((3, 4)))
    # with a threshold no IoU reaches, step 1 still assigns one anchor per gold object
    classes, _ = bboxes_training(anchors, np.array([4, 7]), np.array([[0, 0, 10, 10], [0, 21, 5, 25]]), 1.1)
    assert classes.tolist() == [5, 0, 8]


def naive_bboxes_training(anchors, gold_classes, gold_bboxes, iou_threshold):
    """The course's algorithm as plain loops over NumPy rows, for cross-checking."""
    def iou(a, b):
        top, left = max(a[0], b[0]), max(a[1], b[1])
        bottom, right = min(a[2], b[2]), min(a[3], b[3])
        inter = max(bottom - top, 0) * max(right - left, 0)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    assigned = [-1] * len(anchors)
    for g, gold in enumerate(gold_bboxes):
        ious = [iou(gold, anchor) for anchor in anchors]
        best = ious.index(max(ious))  # first maximum
        if assigned[best] < 0:
            assigned[best] = g
    for a, anchor in enumerate(anchors):
        if assigned[a] < 0:
            ious = [iou(gold, anchor) for gold in gold_bboxes]
            if ious and max(ious) >= iou_threshold:
                assigned[a] = ious.index(max(ious))
    classes = [0 if g < 0 else 1 + gold_classes[g] for g in assigned]
    return classes, assigned


@pytest.mark.parametrize("seed", range(10))
def test_bboxes_training_equals_naive_loops(seed):
    rng = np.random.default_rng(seed)
    # anchors and gold boxes with integer corners on a small grid, so that IoU ties are common
    anchors = np.array([[y, x, y + s, x + s] for y in range(0, 24, 4) for x in range(0, 24, 4) for s in (4, 8)],
                       np.float32)
    corners = rng.integers(0, 20, (rng.integers(1, 8), 2))
    gold_bboxes = np.concatenate([corners, corners + rng.integers(2, 10, corners.shape)], axis=1).astype(np.float32)
    gold_classes = rng.integers(0, 5, len(gold_bboxes))
    threshold = float(rng.choice([0.3, 0.5, 0.7]))
    classes, boxes = bboxes_training(anchors, gold_classes, gold_bboxes, threshold)
    expected_classes, assigned = naive_bboxes_training(anchors, gold_classes.tolist(), gold_bboxes, threshold)
    assert classes.tolist() == expected_classes
    for a, g in enumerate(assigned):
        expected = bboxes_to_rcnn(anchors[a:a + 1], gold_bboxes[g:g + 1])[0] if g >= 0 else np.zeros(4)
        np.testing.assert_allclose(boxes[a], expected, rtol=1e-6, atol=1e-6)
