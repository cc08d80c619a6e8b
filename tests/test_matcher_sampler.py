"""Matcher and sampler: hand-computed tables and equality with torchvision's Matcher and sampler."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler
from torchvision.models.detection._utils import Matcher as TorchvisionMatcher

from convzoo.detection.boxes import box_iou
from convzoo.detection.matcher import BELOW_LOW, BETWEEN, Matcher, match
from convzoo.detection.sampler import BACKGROUND, FOREGROUND, IGNORE, roi_labels, sample_labels


def test_match_thresholds_hand_computed():
    iou = torch.tensor([
        [0.9, 0.1, 0.0, 0.0, 0.2],
        [0.1, 0.0, 0.4, 0.4, 0.35],
    ])
    # best IoU per prediction: 0.9 (gt 0) >= 0.7; 0.1 < 0.3; 0.4, 0.4, 0.35 in [0.3, 0.7)
    assert match(iou, 0.7, 0.3).tolist() == [0, BELOW_LOW, BETWEEN, BETWEEN, BETWEEN]
    # gt 1 keeps its best predictions 2 and 3 (a tie, both kept); prediction 4 (0.35) is not its best
    assert match(iou, 0.7, 0.3, allow_low_quality=True).tolist() == [0, BELOW_LOW, 1, 1, BETWEEN]
    # one threshold (Fast R-CNN's 0.5, 0.5): nothing is BETWEEN
    assert match(iou, 0.5, 0.5).tolist() == [0, BELOW_LOW, BELOW_LOW, BELOW_LOW, BELOW_LOW]


def test_low_quality_match_keeps_the_predictions_own_best_gt():
    iou = torch.tensor([[0.5, 0.1], [0.45, 0.2]])
    # gt 1's best prediction is 0 (0.45), but prediction 0's best gt is 0 (0.5): it is matched to gt 0
    assert match(iou, 0.7, 0.3, allow_low_quality=True).tolist() == [0, BELOW_LOW]


def test_match_empty_inputs():
    assert match(torch.zeros(0, 4), 0.7, 0.3).tolist() == [BELOW_LOW] * 4
    assert match(torch.zeros(3, 0), 0.7, 0.3, allow_low_quality=True).tolist() == []


def test_match_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="low <= high"):
        match(torch.zeros(1, 1), 0.3, 0.7)
    with pytest.raises(ValueError, match="low <= high"):
        Matcher(0.3, 0.7)


@pytest.mark.parametrize("high, low, allow_low_quality", [(0.7, 0.3, True), (0.7, 0.3, False), (0.5, 0.5, False)])
def test_match_equals_torchvision(high, low, allow_low_quality):
    reference = TorchvisionMatcher(high, low, allow_low_quality_matches=allow_low_quality)
    ours = Matcher(high, low, allow_low_quality)
    for trial in range(20):
        generator = torch.Generator().manual_seed(trial)
        # anchors on a coarse grid, so that exact IoU ties occur, and random ground truths
        xy = torch.arange(0, 64, 8.0)
        grid = torch.stack(torch.meshgrid(xy, xy, indexing="ij"), dim=-1).reshape(-1, 2)
        anchors = torch.cat([torch.cat([grid, grid + 16], 1), torch.cat([grid, grid + 32], 1)])
        corners = torch.rand(1 + trial % 5, 2, generator=generator) * 48
        sides = 4 + torch.randint(0, 5, (1 + trial % 5, 2), generator=generator) * 8.0
        gt = torch.cat([corners.round(), corners.round() + sides], 1)
        iou = box_iou(gt, anchors)
        assert torch.equal(ours(iou), reference(iou))


def test_sample_labels_counts_and_membership():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 20 + [3] * 5)[torch.randperm(135)]
    pos, neg = sample_labels(labels, 32, 0.25)
    assert len(pos) == 8 and len(neg) == 24  # int(32 * 0.25) positives, the rest negatives
    assert (labels[pos] >= 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 8 and len(set(neg.tolist())) == 24


def test_sample_labels_when_short_of_positives_or_negatives():
    labels = torch.tensor([1, 2, 0, 0, 0, 0, 0, 0, 0, 0, -1])
    pos, neg = sample_labels(labels, 8, 0.5)
    assert sorted(pos.tolist()) == [0, 1] and len(neg) == 6  # negatives fill up for missing positives
    pos, neg = sample_labels(labels, 256, 0.5)
    assert sorted(pos.tolist()) == [0, 1] and sorted(neg.tolist()) == list(range(2, 10))
    pos, neg = sample_labels(torch.full((5,), -1), 4, 0.5)
    assert pos.numel() == 0 and neg.numel() == 0


def test_sample_labels_reproducible_with_generator():
    labels = torch.randint(-1, 3, (500,))
    first = sample_labels(labels, 64, 0.25, generator=torch.Generator().manual_seed(7))
    second = sample_labels(labels, 64, 0.25, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("num_samples, fraction", [(256, 0.5), (512, 0.25), (64, 0.25)])
def test_sample_labels_equals_torchvision_with_the_same_seed(num_samples, fraction):
    labels = torch.randint(-1, 4, (2000,))
    labels[torch.rand(2000) < 0.8] = 0  # mostly background, as for anchors
    torch.manual_seed(123)
    pos, neg = sample_labels(labels, num_samples, fraction)
    torch.manual_seed(123)
    (pos_mask,), (neg_mask,) = BalancedPositiveNegativeSampler(num_samples, fraction)([labels])
    assert sorted(pos.tolist()) == torch.where(pos_mask.bool())[0].tolist()
    assert sorted(neg.tolist()) == torch.where(neg_mask.bool())[0].tolist()


def test_roi_labels_fast_rcnn_rule():
    max_iou = torch.tensor([0.05, 0.1, 0.3, 0.4999, 0.5, 0.9])
    # IoU >= 0.5 foreground; [0.1, 0.5) background; below 0.1 ignored
    assert roi_labels(max_iou).tolist() == [IGNORE, BACKGROUND, BACKGROUND, BACKGROUND, FOREGROUND, FOREGROUND]
    # torchvision's rule: everything under 0.5 is background
    assert roi_labels(max_iou, bg_low=0.0).tolist() == [0, 0, 0, 0, 1, 1]
    # Fast R-CNN's 25% foreground out of 64 RoIs
    pos, neg = sample_labels(roi_labels(max_iou.repeat(20)), 64, 0.25)
    assert len(pos) == 16 and len(neg) == 48
    with pytest.raises(ValueError, match="bg_low"):
        roi_labels(max_iou, fg_threshold=0.4)
