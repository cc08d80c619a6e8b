"""The compiled core of the COCO evaluation (``_cocoeval.c``) against the numpy forms it replaces: the same tables,
statistics and matches bit for bit, for every IoU type and parameter, on one thread and on several; its own checks
of what it is handed. (Both forms are also compared with pycocotools in the other evaluation tests: those run the
compiled core wherever it is built, which CI checks first.)"""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
from test_evaluation_coco import random_set

from convzoo.evaluation import compiled, evaluate_coco, parse_detections, parse_ground_truth
from convzoo.evaluation.cocoeval import _order_numpy
from convzoo.evaluation.threads import evaluate_threaded

built = pytest.mark.skipif(compiled.core() is None, reason="the C core was not built (no C compiler at install)")


def test_the_core_is_built_where_a_compiler_is():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if not shutil.which(compiler):
        pytest.skip("no C compiler here: the numpy forms are the only ones")
    assert compiled.core() is not None, "pip install did not build convzoo.evaluation._cocoeval"


def _numpy(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(compiled, "core", lambda: None)
        return evaluate_coco(*args, **kwargs)


def _same(a, b) -> None:
    assert a.stats == b.stats and a.counts == b.counts and a.category_ids == b.category_ids
    for key in ("precision", "recall", "scores"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and x.shape == y.shape, key
        np.testing.assert_array_equal(x, y, err_msg=key)


OPTIONS = [
    {}, {"max_dets": [1, 5, 10, 100]}, {"max_dets": [7]}, {"category_ids": [11, 3]}, {"image_ids": [100, 103, 106]},
    {"iou_thresholds": [0.1, 0.5, 0.99, 1.0], "rec_thresholds": [0.7, 0.0, 0.3, 1.0, -0.1]},
    {"pycocotools_quirks": True, "rec_thresholds": [0.5, 0.9, 0.2]},
    {"pycocotools_quirks": True, "area_ranges": {"all": (0, 1e10), "mid": (100, 900)}},
    {"area_ranges": [("a", (0, 50)), ("b", (40, 1e10)), ("c", (0, 1e10))]}, {"use_categories": False},
    {"use_categories": False, "pycocotools_quirks": True},
]


@built
@pytest.mark.parametrize("options", OPTIONS, ids=range(len(OPTIONS)))
@pytest.mark.parametrize("kind", ["bbox", "segm", "keypoints"])
def test_compiled_equals_numpy(monkeypatch, kind, options):
    gt, dets = random_set(11, images=16, segm=kind == "segm", keypoints=5 if kind == "keypoints" else 0)
    parsed_gt = parse_ground_truth(gt, kind)
    parsed = parse_detections(dets, parsed_gt, kind)
    kwargs = {"kpt_sigmas": np.full(5, 0.05)} if kind == "keypoints" else {}
    reference = _numpy(monkeypatch, parsed_gt, parsed, kind, **options, **kwargs)
    for threads in (1, 3):
        _same(evaluate_coco(parsed_gt, parsed, kind, threads=threads, **options, **kwargs), reference)


@built
@pytest.mark.parametrize("seed", range(4))
def test_compiled_matches_equal_numpy(monkeypatch, seed):
    """keep_matches (pycocotools' evalImgs): the matched ground truth of every detection, threshold and area."""
    gt, dets = random_set(seed, images=10)
    for det in dets[::3]:
        det["score"] = 0.5  # ties across images and within one
    ours = evaluate_coco(gt, dets, keep_matches=True)
    reference = _numpy(monkeypatch, gt, dets, keep_matches=True)
    _same(ours, reference)
    for key in ("det_index", "det_group", "gt_index", "gt_group", "gt_ignore", "det_outside", "matched_gt"):
        np.testing.assert_array_equal(getattr(ours.matches, key), getattr(reference.matches, key), err_msg=key)


@built
def test_order_equals_numpy():
    rng = np.random.default_rng(3)
    n, images, cats = 5000, 40, 6
    image, category = rng.integers(0, images, n), rng.integers(0, cats, n)
    score = rng.choice([0.1, 0.5, 0.9, 0.25, -0.0, 0.0], n)  # many ties, and -0.0 == 0.0
    keep = rng.uniform(size=n) < 0.8

    class Dets:  # what _order_numpy reads
        pass

    dets = Dets()
    dets.image, dets.category, dets.score = image, category, score
    for max_det in (1, 3, 100000):
        want = _order_numpy(dets, keep, category, images, True, max_det, False)
        got = compiled.order_detections(compiled.core(), image, category, score, keep, images, cats, max_det)
        for a, b in zip(got[:3], want[:3]):
            np.testing.assert_array_equal(a, b)
        assert got[3] == want[4]


@built
def test_many_detections_per_group_and_identical_scores(monkeypatch):
    gt, dets = random_set(100, images=3)
    ann = gt["annotations"][0]
    same = [{"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 0.5,
             "bbox": [ann["bbox"][0] + i % 5, ann["bbox"][1], ann["bbox"][2], ann["bbox"][3]]} for i in range(130)]
    for options in ({}, {"max_dets": [1, 10, 100, 120]}):
        _same(evaluate_coco(gt, dets + same, **options), _numpy(monkeypatch, gt, dets + same, **options))


@built
def test_empty_inputs(monkeypatch):
    gt, dets = random_set(2, images=4)
    for g, d in ((gt, []), ({**gt, "annotations": []}, dets), ({**gt, "annotations": []}, [])):
        _same(evaluate_coco(g, d), _numpy(monkeypatch, g, d))


def test_numpy_threads_give_the_numbers_of_one(monkeypatch):
    """Where the core is not built, threads.py splits the categories instead."""
    gt, dets = random_set(5, images=15)
    parsed_gt = parse_ground_truth(gt)
    parsed = parse_detections(dets, parsed_gt)
    monkeypatch.setattr(compiled, "core", lambda: None)
    _same(evaluate_threaded(parsed_gt, parsed, "bbox", 3), evaluate_coco(parsed_gt, parsed))
    _same(evaluate_coco(parsed_gt, parsed, threads=2), evaluate_coco(parsed_gt, parsed))


def _valid_call() -> list:
    """evaluate()'s arguments for three detections of image 0, category 0, and no ground truth."""
    return [np.arange(3), np.zeros(3, np.int64), np.arange(3), np.ones(3), np.ones(3), np.ones(12),
            np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0), np.zeros(0),
            np.array([0.5]), np.array([0.5]), np.array([100]), np.array([0.0]), np.array([1e10]),
            np.zeros(1, np.int64), np.zeros(1, np.int64), 1, 1, 1, False, False, 1, -np.ones(1), -np.ones(1),
            -np.ones(1), np.zeros(0, np.int64)]


@built
def test_the_core_refuses_what_does_not_fit():
    module = compiled.core()
    ints, flags = np.zeros(3, np.int64), np.zeros(3, bool)
    with pytest.raises(ValueError, match="score"):
        module.order(ints, ints, np.zeros(2), flags, 1, 1, 10, ints.copy(), ints.copy(), ints.copy())
    with pytest.raises(ValueError, match="out of range"):
        module.order(ints + 5, ints, np.zeros(3), ~flags, 1, 1, 10, ints.copy(), ints.copy(), ints.copy())
    args = _valid_call()
    module.evaluate(*args)
    assert args[-4][0] == -1  # no ground truth: the cell stays -1
    short = _valid_call()
    short[1] = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="d_group"):
        module.evaluate(*short)
    beyond = _valid_call()
    beyond[0] = np.array([0, 5, 1])
    with pytest.raises(ValueError, match="indices"):
        module.evaluate(*beyond)
    unordered = _valid_call()
    unordered[1] = np.array([0, 1, 0])  # image 1 of 1: not a group of these categories
    with pytest.raises(ValueError, match="order"):
        module.evaluate(*unordered)


@pytest.mark.parametrize("options", [{"iou_thresholds": [np.nan, 0.5]}, {"rec_thresholds": [0.0, np.inf]},
                                     {"rec_thresholds": [-np.inf, 0.5]}])
def test_thresholds_must_be_finite(options):
    """pycocotools matches everything at a NaN IoU threshold (min() keeps the NaN); convzoo refuses it."""
    gt, dets = random_set(1, images=4)
    with pytest.raises(ValueError, match="must be finite"):
        evaluate_coco(gt, dets, **options)
