"""evaluate_coco on several threads (groups of categories) gives the tables and statistics of one thread, bit for
bit, for every IoU type and parameter that splits, and falls back to one thread where it cannot split."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluation_coco import random_set

from convzoo.evaluation import evaluate_coco, parse_detections, parse_ground_truth
from convzoo.evaluation.threads import category_groups


def _same(a, b) -> None:
    assert a.stats == b.stats and a.counts == b.counts and a.category_ids == b.category_ids
    for key in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


@pytest.mark.parametrize(("kind", "options"), [
    ("bbox", {}), ("bbox", {"max_dets": [1, 5, 10, 100]}), ("bbox", {"category_ids": [11, 3]}),
    ("bbox", {"pycocotools_quirks": True, "area_ranges": {"all": (0, 1e10), "mid": (100, 900)}}),
    ("segm", {}), ("keypoints", {}), ("bbox", {"use_categories": False}),
])
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_threads_give_the_numbers_of_one(kind, options, threads):
    gt, dets = random_set(5, images=15, segm=kind == "segm", keypoints=5 if kind == "keypoints" else 0)
    parsed_gt = parse_ground_truth(gt, kind)
    parsed = parse_detections(dets, parsed_gt, kind)
    kwargs = {"kpt_sigmas": np.full(5, 0.05)} if kind == "keypoints" else {}
    _same(evaluate_coco(parsed_gt, parsed, kind, threads=threads, **options, **kwargs),
          evaluate_coco(parsed_gt, parsed, kind, **options, **kwargs))


def test_category_groups_are_contiguous_and_cover_every_category():
    gt, dets = random_set(6)
    parsed_gt = parse_ground_truth(gt)
    parsed = parse_detections(dets, parsed_gt)
    for parts in (1, 2, 3, 10):
        groups = category_groups(parsed_gt, parsed, parsed_gt.category_ids, parts)
        assert [c for g in groups for c in g] == parsed_gt.category_ids and 1 <= len(groups) <= parts
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        evaluate_coco(parsed_gt, parsed, threads=0)
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_coco(parsed_gt, parsed, threads=2, category_ids=[3, 999])
