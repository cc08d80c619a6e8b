"""Boxes: hand-computed tables, round trips, and agreement with torchvision.ops and torchvision's BoxCoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder

from convzoo.detection.boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    complete_box_iou,
    complete_box_iou_loss,
    decode_boxes,
    distance_box_iou,
    distance_box_iou_loss,
    elementwise_box_iou,
    encode_boxes,
    generalized_box_iou,
    generalized_box_iou_loss,
    remove_small_boxes,
    smooth_l1,
)


def random_boxes(n: int, size: float = 100.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` valid xyxy boxes with corners in [0, size] and sides >= 1."""
    x1y1 = torch.rand(n, 2, dtype=dtype) * size
    wh = 1 + torch.rand(n, 2, dtype=dtype) * size / 2
    return torch.cat([x1y1, x1y1 + wh], dim=1)


def test_box_area_hand_computed():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 2, 3, 5], [5, 5, 5, 9], [4, 4, 2, 8]])
    # 10*10; 2*3; zero width; inverted x (x2 < x1) counts as empty
    torch.testing.assert_close(box_area(boxes), torch.tensor([100.0, 6, 0, 0]))


def test_box_area_agrees_with_torchvision():
    boxes = random_boxes(50)
    torch.testing.assert_close(box_area(boxes), torchvision.ops.box_area(boxes))


def test_box_iou_hand_computed():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 10, 10]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 10]])
    expected = torch.tensor([
        [1 / 7, 4 / 100, 0, 4 / 50],  # (0,0,2,2) vs (1,1,3,3): inter 1, union 4 + 4 - 1
        [4 / 100, 1, 0, 50 / 100],
    ])
    torch.testing.assert_close(box_iou(a, b), expected)


def test_box_iou_agrees_with_torchvision():
    a, b = random_boxes(40), random_boxes(30)
    torch.testing.assert_close(box_iou(a, b), torchvision.ops.box_iou(a, b))


def test_giou_diou_ciou_hand_computed():
    a, b = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[2.0, 0, 4, 2]])  # touching: IoU 0, enclosing 4 x 2
    assert generalized_box_iou(a, b).item() == 0 - (8 - 8) / 8
    assert distance_box_iou(a, b, eps=0).item() == pytest.approx(-(2**2) / (4**2 + 2**2))  # centers 2 apart
    assert complete_box_iou(a, b, eps=0).item() == pytest.approx(-4 / 20)  # same aspect ratio: v = 0
    far = torch.tensor([[10.0, 0, 12, 2]])
    assert generalized_box_iou(a, far).item() == pytest.approx(-(24 - 8) / 24)


@pytest.mark.parametrize(("ours", "theirs"), [
    (generalized_box_iou, torchvision.ops.generalized_box_iou),
    (distance_box_iou, torchvision.ops.distance_box_iou),
    (complete_box_iou, torchvision.ops.complete_box_iou),
])
def test_pairwise_iou_variants_agree_with_torchvision(ours, theirs):
    a, b = random_boxes(40), random_boxes(30)
    b[:5] = a[:5]  # identical boxes: IoU 1
    torch.testing.assert_close(ours(a, b), theirs(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("ours", "theirs"), [
    (generalized_box_iou_loss, torchvision.ops.generalized_box_iou_loss),
    (distance_box_iou_loss, torchvision.ops.distance_box_iou_loss),
    (complete_box_iou_loss, torchvision.ops.complete_box_iou_loss),
])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_iou_losses_and_gradients_agree_with_torchvision(ours, theirs, reduction):
    a, b = random_boxes(60), random_boxes(60)
    a1, a2 = a.clone().requires_grad_(), a.clone().requires_grad_()
    ours_loss, theirs_loss = ours(a1, b, reduction=reduction), theirs(a2, b, reduction=reduction)
    torch.testing.assert_close(ours_loss, theirs_loss, rtol=1e-12, atol=1e-12)
    ours_loss.sum().backward()
    theirs_loss.sum().backward()
    torch.testing.assert_close(a1.grad, a2.grad, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        ours(a, b, reduction="max")


def test_elementwise_box_iou_broadcasts():
    a, b = random_boxes(7), random_boxes(5)
    pairs = elementwise_box_iou(a[:, None], b[None, :])
    assert pairs.shape == (7, 5)
    torch.testing.assert_close(pairs, box_iou(a, b))
    torch.testing.assert_close(elementwise_box_iou(a, a), torch.ones(7, dtype=a.dtype))
    batched = elementwise_box_iou(a[None].expand(3, 7, 4), a[0])  # [3, 7, 4] against one box
    assert batched.shape == (3, 7)


def test_box_convert_hand_computed():
    xyxy = torch.tensor([[1.0, 2, 5, 10]])
    expected = {
        "xyxy": [[1.0, 2, 5, 10]],
        "xywh": [[1.0, 2, 4, 8]],
        "cxcywh": [[3.0, 6, 4, 8]],
        "tlbr": [[2.0, 1, 10, 5]],  # (top, left, bottom, right) = (y1, x1, y2, x2)
    }
    for fmt, value in expected.items():
        torch.testing.assert_close(box_convert(xyxy, "xyxy", fmt), torch.tensor(value))
        torch.testing.assert_close(box_convert(torch.tensor(value), fmt, "xyxy"), xyxy)


@pytest.mark.parametrize("in_fmt", BOX_FORMATS)
@pytest.mark.parametrize("out_fmt", BOX_FORMATS)
def test_box_convert_round_trip(in_fmt, out_fmt):
    boxes = box_convert(random_boxes(20), "xyxy", in_fmt)
    torch.testing.assert_close(box_convert(box_convert(boxes, in_fmt, out_fmt), out_fmt, in_fmt), boxes)


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_agrees_with_torchvision(fmt):
    boxes = random_boxes(20)
    torch.testing.assert_close(box_convert(boxes, "xyxy", fmt), torchvision.ops.box_convert(boxes, "xyxy", fmt))
    other = torchvision.ops.box_convert(boxes, "xyxy", fmt)
    torch.testing.assert_close(box_convert(other, fmt, "xyxy"), torchvision.ops.box_convert(other, fmt, "xyxy"))


def test_box_convert_rejects_unknown_format():
    with pytest.raises(ValueError, match="in_fmt"):
        box_convert(torch.zeros(1, 4), "yxyx", "xyxy")


def test_clip_boxes():
    boxes = torch.tensor([[-5.0, -1, 50, 20], [10, 10, 20, 20]])
    # image of height 15, width 40: x in [0, 40], y in [0, 15]
    torch.testing.assert_close(clip_boxes(boxes, (15, 40)), torch.tensor([[0.0, 0, 40, 15], [10, 10, 20, 15]]))
    many = random_boxes(50, size=150) - 20
    torch.testing.assert_close(clip_boxes(many, (90, 120)), torchvision.ops.clip_boxes_to_image(many, (90, 120)))
    per_class = many.reshape(25, 8)  # two boxes per row
    torch.testing.assert_close(clip_boxes(per_class, (90, 120)), clip_boxes(many, (90, 120)).reshape(25, 8))


def test_remove_small_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 2, 10], [0, 0, 10, 3], [5, 5, 5, 5], [0, 0, 3, 3]])
    # widths 10, 2, 10, 0, 3 and heights 10, 10, 3, 0, 3: both sides >= 3 keeps boxes 0, 2, 4
    assert remove_small_boxes(boxes, 3.0).tolist() == [0, 2, 4]
    assert remove_small_boxes(boxes, 1e-3).tolist() == [0, 1, 2, 4]
    many = random_boxes(100, size=10)
    assert remove_small_boxes(many, 3.0).tolist() == torchvision.ops.remove_small_boxes(many, 3.0).tolist()


def test_encode_hand_computed():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20]])
    boxes = torch.tensor([[5.0, 0, 15, 10], [0, 0, 20, 60]])
    # anchor 0 center (5, 5) size 10x10; box center (10, 5): t_x = 5/10, t_y = 0, t_w = t_h = log 1
    # anchor 1 center (5, 10) size 10x20; box center (10, 30) size 20x60: t_x = 0.5, t_y = 1, t_w = log 2, t_h = log 3
    expected = torch.tensor([[0.5, 0, 0, 0], [0.5, 1, math.log(2), math.log(3)]])
    torch.testing.assert_close(encode_boxes(boxes, anchors), expected)
    torch.testing.assert_close(encode_boxes(boxes, anchors, (10, 10, 5, 5)), expected * torch.tensor([10, 10, 5, 5]))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 4.0, 0.5)])
def test_decode_inverts_encode(weights):
    anchors, boxes = random_boxes(200), random_boxes(200)
    deltas = encode_boxes(boxes, anchors, weights)
    assert deltas.shape == (200, 4)
    torch.testing.assert_close(decode_boxes(deltas, anchors, weights), boxes)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_agree_with_torchvision_box_coder(weights):
    anchors, boxes = random_boxes(100, dtype=torch.float32), random_boxes(100, dtype=torch.float32)
    coder = BoxCoder(weights)
    torch.testing.assert_close(encode_boxes(boxes, anchors, weights), coder.encode_single(boxes, anchors))
    # per-class decoding: 3 groups of four deltas per anchor, some with t_w, t_h large enough to be clamped
    deltas = torch.randn(100, 12) * 3
    deltas[:5, 2::4] = 50.0
    expected = coder.decode_single(deltas, anchors)
    assert torch.equal(decode_boxes(deltas, anchors, weights), expected)


def test_decode_broadcasts_over_leading_axes():
    anchors = random_boxes(30)
    deltas = torch.randn(2, 30, 4, dtype=anchors.dtype)  # [B, N, 4] against the same anchors [N, 4]
    batched = decode_boxes(deltas, anchors)
    assert batched.shape == (2, 30, 4)
    torch.testing.assert_close(batched[1], decode_boxes(deltas[1], anchors))


def test_decode_clamps_before_exp():
    anchors = torch.tensor([[0.0, 0, 16, 16]])
    boxes = decode_boxes(torch.tensor([[0.0, 0, 100, 100]]), anchors)
    # clamp at log(1000/16): the box is at most 1000 pixels wide, centered on the anchor center 8
    torch.testing.assert_close(boxes, torch.tensor([[8.0 - 500, 8 - 500, 8 + 500, 8 + 500]]))
    assert torch.isinf(decode_boxes(torch.tensor([[0.0, 0, 1000, 0]]), anchors, clamp=math.inf)).any()


def test_decode_rejects_bad_shape():
    with pytest.raises(ValueError, match="4 \\* K"):
        decode_boxes(torch.zeros(3, 6), torch.zeros(3, 4))


def test_smooth_l1_lecture_table():
    x = torch.tensor([0.0, 0.5, -0.5, 1.0, 2.0, -3.0])
    # 0.5 x^2 for |x| < 1, |x| - 0.5 otherwise
    expected = torch.tensor([0.0, 0.125, 0.125, 0.5, 1.5, 2.5])
    torch.testing.assert_close(smooth_l1(x, torch.zeros(6), reduction="none"), expected)
    torch.testing.assert_close(smooth_l1(x, torch.zeros(6)), expected.sum())
    torch.testing.assert_close(smooth_l1(x, torch.zeros(6), reduction="mean"), expected.mean())


@pytest.mark.parametrize("beta", [1.0, 1 / 9, 0.5, 0.0])
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_smooth_l1_agrees_with_torch(beta, reduction):
    a, b = torch.randn(30, 4) * 2, torch.randn(30, 4)
    expected = F.smooth_l1_loss(a, b, beta=beta, reduction=reduction)
    torch.testing.assert_close(smooth_l1(a, b, beta=beta, reduction=reduction), expected)


def test_smooth_l1_gradient_is_bounded():
    x = torch.tensor([-5.0, -0.2, 0.3, 7.0], requires_grad=True)
    smooth_l1(x, torch.zeros(4)).backward()
    # derivative: x inside the quadratic zone, sign(x) outside
    torch.testing.assert_close(x.grad, torch.tensor([-1.0, -0.2, 0.3, 1.0]))
