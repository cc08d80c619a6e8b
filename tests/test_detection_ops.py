"""NMS, RoI pooling and RoIAlign wrappers: hand-computed cases that pin down their coordinate conventions."""

from __future__ import annotations

import pytest
import torch
import torchvision

from convzoo.detection.ops import batched_nms, boxes_to_rois, nms, roi_align, roi_pool


def test_nms_hand_computed():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) first; box 0 has IoU 1 with it; box 1 has IoU 81 / 119 = 0.68; box 2 does not overlap
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.7).tolist() == [3, 1, 2]


def test_nms_keeps_iou_equal_to_threshold():
    boxes = torch.tensor([[0.0, 0, 4, 4], [0, 0, 4, 2]])  # IoU = 8 / 16 = 0.5 exactly
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]


def test_batched_nms_only_within_a_class():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 1 is the only box of class 1, so nothing suppresses it
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0, 0]), 0.5).tolist() == [3, 1, 2]


def test_boxes_to_rois():
    rois = boxes_to_rois([torch.tensor([[1.0, 2, 3, 4]]), torch.zeros(0, 4), torch.tensor([[5.0, 6, 7, 8]] * 2)])
    assert rois.tolist() == [[0, 1, 2, 3, 4], [2, 5, 6, 7, 8], [2, 5, 6, 7, 8]]
    assert boxes_to_rois([]).shape == (0, 5)


def test_roi_pool_hand_computed():
    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    # (0, 0, 3, 3) covers cells 0..3 inclusive (the "+1"): 2x2 bins of 2x2 cells
    assert roi_pool(features, [torch.tensor([[0.0, 0, 3, 3]])], 2).flatten().tolist() == [5, 7, 13, 15]
    # spatial scale 1/2: (0, 0, 6, 6) in image pixels is (0, 0, 3, 3) in cells
    assert roi_pool(features, [torch.tensor([[0.0, 0, 6, 6]])], 2, 0.5).flatten().tolist() == [5, 7, 13, 15]
    # rounding: (0.4, 0.4, 1.6, 1.6) -> cells 0..2, the maximum is cell (2, 2) = 10
    assert roi_pool(features, [torch.tensor([[0.4, 0.4, 1.6, 1.6]])], 1).item() == 10


def test_roi_pool_overlapping_bins():
    features = torch.arange(25.0).reshape(1, 1, 5, 5)
    # 5 cells into 2 bins of 2.5: bin 0 spans cells [0, 3), bin 1 spans [2, 5); cell 2 is in both
    assert roi_pool(features, [torch.tensor([[0.0, 0, 4, 4]])], 2).flatten().tolist() == [12, 14, 22, 24]


def ramp(height: int = 8, width: int = 8) -> torch.Tensor:
    """f(i, j) = 10 i + j at cell (i, j): bilinear interpolation reproduces a linear function exactly."""
    rows = torch.arange(height, dtype=torch.float32)[:, None]
    cols = torch.arange(width, dtype=torch.float32)[None, :]
    return (10 * rows + cols)[None, None]


def test_roi_align_hand_computed():
    box = [torch.tensor([[2.0, 2, 6, 6]])]
    # 2x2 bins of 2x2 pixels; the mean of a linear function over a bin is its value at the bin center:
    # centers (x, y) = (3, 3), (5, 3), (3, 5), (5, 5)
    # aligned=False: continuous (x, y) is cell (y, x): 10 * 3 + 3 = 33, ...
    legacy = roi_align(ramp(), box, 2, sampling_ratio=2, aligned=False)
    torch.testing.assert_close(legacy.flatten(), torch.tensor([33.0, 35, 53, 55]))
    # aligned=True: continuous (x, y) is cell (y - 0.5, x - 0.5): 10 * 2.5 + 2.5 = 27.5, ...
    aligned = roi_align(ramp(), box, 2, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(aligned.flatten(), torch.tensor([27.5, 29.5, 47.5, 49.5]))
    # adaptive sampling (ceil(4 / 2) = 2 per axis) and a spatial scale of 1/2 give the same numbers
    adaptive = roi_align(ramp(), [torch.tensor([[4.0, 4, 12, 12]])], 2, spatial_scale=0.5, aligned=True)
    torch.testing.assert_close(adaptive.flatten(), torch.tensor([27.5, 29.5, 47.5, 49.5]))


def test_roi_align_single_sample_is_bilinear_interpolation():
    box = [torch.tensor([[2.0, 1, 2.5, 2]])]  # 0.5 wide, 1 high
    # aligned=False widens the box to 1 cell: one sample at (x, y) = (2.5, 1.5), cell (1.5, 2.5): 10 * 1.5 + 2.5
    legacy = roi_align(ramp(), box, 1, sampling_ratio=1, aligned=False)
    torch.testing.assert_close(legacy.flatten(), torch.tensor([17.5]))
    # aligned=True keeps the width: sample at (2.25, 1.5), shifted by -0.5 to cell (1.0, 1.75): 10 * 1.0 + 1.75
    aligned = roi_align(ramp(), box, 1, sampling_ratio=1, aligned=True)
    torch.testing.assert_close(aligned.flatten(), torch.tensor([11.75]))


def test_roi_inputs_as_list_or_tensor_and_batch_index():
    features = torch.stack([ramp()[0], 100 + ramp()[0]])  # [2, 1, 8, 8]
    boxes = [torch.tensor([[2.0, 2, 6, 6]]), torch.tensor([[2.0, 2, 6, 6], [0, 0, 7, 7]])]
    rois = boxes_to_rois(boxes)
    for op in (roi_pool, roi_align):
        from_list, from_tensor = op(features, boxes, 2), op(features, rois, 2)
        assert from_list.shape == (3, 1, 2, 2)
        torch.testing.assert_close(from_list, from_tensor)
        torch.testing.assert_close(from_list[1], from_list[0] + 100)  # same box, second image


def _random_rois(count: int, images: int, extent: float) -> torch.Tensor:
    """Boxes partly outside the map, some narrower than a cell, spread over ``images`` images."""
    corner = torch.rand(count, 2) * extent * 1.2 - extent * 0.1
    size = torch.rand(count, 2) * extent * 0.5
    size[: count // 4] *= 0.02  # tiny boxes: legacy RoIAlign widens them to one cell
    image = torch.randint(0, images, (count, 1)).float()
    return torch.cat([image, corner, corner + size], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio,output_size,shape", [(2, 7, (3, 4, 9, 13)), (1, (3, 5), (2, 3, 1, 6)),
                                                               (3, 4, (2, 2, 6, 6))])
def test_roi_align_cpu_gradient_equals_torchvision(aligned, sampling_ratio, output_size, shape):
    features = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    rois = _random_rois(17, shape[0], 4 * max(shape[-2:])).double()
    rois[rois[:, 0] == 0, 0] = 1  # image 0 gets no RoI, so its gradient must stay 0
    ours = roi_align(features, rois, output_size, 0.25, sampling_ratio, aligned)
    theirs = torchvision.ops.roi_align(features, rois, output_size, 0.25, sampling_ratio, aligned)
    assert torch.equal(ours, theirs)  # the forward is torchvision's own kernel
    weight = torch.randn_like(ours)
    (grad_ours,) = torch.autograd.grad((ours * weight).sum(), features)
    (grad_theirs,) = torch.autograd.grad((theirs * weight).sum(), features)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-10, atol=1e-10)
    assert grad_ours[0].abs().max() == 0


def test_roi_align_separable_gradient_is_used_only_where_it_applies():
    from convzoo.detection.roi_align_grad import use_separable_grad

    small = torch.zeros(1, 8, 32, 32, requires_grad=True)
    assert use_separable_grad(small, (7, 7), 2)
    assert not use_separable_grad(small, (7, 7), 0)  # adaptive sampling: not separable with a fixed grid
    assert not use_separable_grad(small.detach(), (7, 7), 2)
    assert not use_separable_grad(torch.zeros(1, 8, 200, 300, requires_grad=True), (7, 7), 2)
    with torch.no_grad():
        assert not use_separable_grad(small, (7, 7), 2)


def test_roi_align_float32_gradient_close_to_torchvision():
    features = torch.randn(2, 16, 32, 32, requires_grad=True)
    rois = _random_rois(64, 2, 128.0)
    ours = roi_align(features, rois, 7, 0.25, 2, False)
    theirs = torchvision.ops.roi_align(features, rois, 7, 0.25, 2, False)
    (grad_ours,) = torch.autograd.grad(ours.square().sum(), features)
    (grad_theirs,) = torch.autograd.grad(theirs.square().sum(), features)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-4, atol=1e-4)
