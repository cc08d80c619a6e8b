"""Anchors: hand-computed cells and grids, and equality with torchvision's AnchorGenerator."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from convzoo.detection.anchors import AnchorGenerator, cell_anchors, grid_anchors
from convzoo.detection.boxes import box_area


def test_cell_anchors_hand_computed():
    # ratio-major: (0.5, 128), (0.5, 256), (1, 128), (1, 256), (2, 128), (2, 256)
    # ratio 0.5 = h / w, size 128: w = 128 / sqrt(0.5) = 181.02, h = 128 * sqrt(0.5) = 90.51 -> halves 90.51, 45.25
    expected = torch.tensor([
        [-91.0, -45, 91, 45],
        [-181, -91, 181, 91],  # 256: halves 181.02, 90.51
        [-64, -64, 64, 64],
        [-128, -128, 128, 128],
        [-45, -91, 45, 91],
        [-91, -181, 91, 181],
    ])
    assert torch.equal(cell_anchors((128, 256), (0.5, 1.0, 2.0)), expected)


def test_cell_anchors_unrounded_keep_area_and_ratio():
    cell = cell_anchors((32, 64, 128), (0.5, 1.0, 2.0), rounded=False, dtype=torch.float64)
    assert cell.shape == (9, 4)
    sizes = torch.tensor([32.0, 64, 128] * 3, dtype=torch.float64)
    ratios = torch.tensor([0.5] * 3 + [1.0] * 3 + [2.0] * 3, dtype=torch.float64)
    torch.testing.assert_close(box_area(cell), sizes**2, rtol=1e-6, atol=0)
    heights, widths = cell[:, 3] - cell[:, 1], cell[:, 2] - cell[:, 0]
    torch.testing.assert_close(heights / widths, ratios, rtol=1e-6, atol=0)
    torch.testing.assert_close(cell[:, :2] + cell[:, 2:], torch.zeros(9, 2, dtype=torch.float64))  # centered on 0


def test_cell_anchors_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        cell_anchors((0,), (1.0,))


def test_grid_anchors_hand_computed():
    cell = torch.tensor([[-8.0, -8, 8, 8], [-16, -4, 16, 4]])
    anchors = grid_anchors((2, 3), (10, 16), cell)
    assert anchors.shape == (2 * 3 * 2, 4)
    # position (i, j) has its anchors centered at (x, y) = (16 j, 10 i), the two of one position contiguous
    centers = [(x, y) for y in (0, 10) for x in (0, 16, 32)]
    expected = torch.tensor([[x + c[0], y + c[1], x + c[2], y + c[3]] for x, y in centers for c in cell.tolist()])
    assert torch.equal(anchors, expected)
    assert torch.equal(grid_anchors((2, 3), 16, cell), grid_anchors((2, 3), (16, 16), cell))


def test_generator_levels_and_counts():
    generator = AnchorGenerator(sizes=((32,), (64, 128)), aspect_ratios=(0.5, 1.0, 2.0))
    assert generator.num_anchors_per_location() == [3, 6]
    p3, p4 = generator((64, 64), [(8, 8), (4, 4)])
    assert p3.shape == (8 * 8 * 3, 4) and p4.shape == (4 * 4 * 6, 4)
    assert torch.equal(p3[:3], generator.cell(0))  # position (0, 0): centered at the origin
    assert torch.equal(p3[3:6], generator.cell(0) + torch.tensor([8.0, 0, 8, 0]))  # stride 64 // 8 = 8
    assert generator((64, 64), [(8, 8), (4, 4)])[0] is p3  # cached per shape
    uncached = AnchorGenerator(sizes=((32,), (64, 128)), aspect_ratios=(0.5, 1.0, 2.0), cache_size=0)
    first = uncached((64, 64), [(8, 8), (4, 4)])[0]
    assert torch.equal(first, p3) and uncached((64, 64), [(8, 8), (4, 4)])[0] is not first
    assert generator.state_dict() == {}


def test_generator_explicit_strides_and_errors():
    generator = AnchorGenerator(sizes=((16,),), aspect_ratios=((1.0,),))
    (anchors,) = generator((100, 100), [(2, 2)], strides=[(32, 40)])
    assert torch.equal(anchors, torch.tensor([[-8.0, -8, 8, 8], [32, -8, 48, 8], [-8, 24, 8, 40], [32, 24, 48, 40]]))
    with pytest.raises(ValueError, match="1 levels"):
        generator((100, 100), [(2, 2), (1, 1)])
    with pytest.raises(ValueError, match="ratios"):
        AnchorGenerator(sizes=((16,), (32,)), aspect_ratios=((1.0,), (1.0,), (2.0,)))


def _torchvision_anchors(sizes, ratios, image_size, feature_sizes):
    reference = TorchvisionAnchorGenerator(sizes, ratios)
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    features = [torch.zeros(1, 1, h, w) for h, w in feature_sizes]
    return reference(images, features)[0]


@pytest.mark.parametrize("image_size", [(800, 1216), (512, 683), (320, 320)])
def test_fpn_config_equals_torchvision(image_size):
    sizes = ((32,), (64,), (128,), (256,), (512,))
    ratios = ((0.5, 1.0, 2.0),) * len(sizes)
    # ResNet-FPN maps: strides 4, 8, 16, 32 (ceil for odd sizes) and P6 by max-pool; torchvision's strides use //
    feature_sizes = [(math.ceil(image_size[0] / s), math.ceil(image_size[1] / s)) for s in (4, 8, 16, 32, 64)]
    ours = torch.cat(AnchorGenerator(sizes, ratios)(image_size, feature_sizes))
    assert torch.equal(ours, _torchvision_anchors(sizes, ratios, image_size, feature_sizes))


def test_single_map_config_equals_torchvision():
    # the Faster R-CNN paper's 3 scales x 3 ratios on one stride-16 map, and torchvision's mobilenet's 5 x 3
    for sizes in [((128, 256, 512),), ((32, 64, 128, 256, 512),)]:
        ratios = ((0.5, 1.0, 2.0),)
        ours = torch.cat(AnchorGenerator(sizes, ratios)((600, 1000), [(38, 63)]))
        assert torch.equal(ours, _torchvision_anchors(sizes, ratios, (600, 1000), [(38, 63)]))


def test_generator_follows_module_dtype():
    generator = AnchorGenerator(sizes=((32,),)).to(torch.float64)
    (anchors,) = generator((64, 64), [(2, 2)])
    assert anchors.dtype == torch.float64


def test_cache_separates_inference_mode():
    generator = AnchorGenerator(sizes=((32,),))
    with torch.inference_mode():
        (inference_anchors,) = generator((64, 64), [(4, 4)])
    (anchors,) = generator((64, 64), [(4, 4)])
    assert inference_anchors.is_inference() and not anchors.is_inference()
    deltas = torch.zeros(len(anchors), 4, requires_grad=True)
    (deltas * anchors).sum().backward()  # an inference tensor here would raise
    torch.testing.assert_close(deltas.grad, anchors)
