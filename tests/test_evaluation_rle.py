"""The compiled RLE kernels (``_rle.c``) against pycocotools' own: areas and mask IoUs bit for bit on random masks,
crowds, empty and full masks, masks of other sizes, and the strings they leave to pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from convzoo.evaluation import masks

rle = masks._compiled()
pytestmark = pytest.mark.skipif(rle is None, reason="the RLE kernels were not built (no C compiler at install)")


def _random_masks(rng, count: int, h: int, w: int) -> list:
    out = []
    for i in range(count):
        kind = i % 5
        if kind == 0:  # a polygon, through pycocotools' rasterizer
            pts = rng.uniform(-5, max(h, w) + 5, (int(rng.integers(3, 9)), 2)) * [w / max(h, w), h / max(h, w)]
            out.append(mask_utils.merge(mask_utils.frPyObjects([pts.reshape(-1).tolist()], h, w)))
            continue
        m = np.zeros((h, w), dtype=np.uint8, order="F")
        if kind == 1:  # a box
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = 1
        elif kind == 2:  # noise
            m[:] = rng.uniform(size=(h, w)) < rng.uniform(0.05, 0.6)
        elif kind == 3:
            m[:] = 1 if i % 2 else 0  # full or empty
        else:  # two far-apart blobs: boxes overlap, masks hardly
            m[: h // 4, : w // 4] = 1
            m[-h // 4:, -w // 4:] = 1
        out.append(mask_utils.encode(m))
    for r in out[::3]:
        r["counts"] = r["counts"].decode()  # str as well as bytes
    return out


@pytest.mark.parametrize("seed", range(4))
def test_areas_equal_pycocotools(seed):
    rng = np.random.default_rng(seed)
    rles = _random_masks(rng, 60, int(rng.integers(1, 70)), int(rng.integers(1, 70)))
    got = np.frombuffer(rle.areas(rles), dtype=np.float64)
    np.testing.assert_array_equal(got, mask_utils.area(rles[:200]).astype(np.float64))
    np.testing.assert_array_equal(masks.rle_areas(rles), got)


@pytest.mark.parametrize("seed", range(6))
def test_ious_equal_pycocotools(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
    dets, gts = _random_masks(rng, 25, h, w), _random_masks(rng, 12, h, w)
    gts += _random_masks(rng, 3, h + 1, w)  # another size: -1 where the boxes overlap (pycocotools)
    crowd = rng.uniform(size=len(gts)) < 0.3
    det_group = rng.integers(0, 3, len(dets))  # three groups of five ground truths
    order = np.argsort(det_group, kind="stable")
    pair_det = np.repeat(order, 5)
    pair_gt = (det_group[order][:, None] * 5 + np.arange(5)).reshape(-1)
    shuffled = rng.permutation(len(pair_det))  # any order of the pairs
    for threads in (1, 2, 5):
        for pairs in (np.arange(len(pair_det)), shuffled):
            out = np.full(len(pairs), np.nan)
            assert rle.ious(dets, gts, crowd, pair_det[pairs], pair_gt[pairs], out, threads)
            want = np.asarray(mask_utils.iou(dets, gts, crowd.astype(np.uint8)), dtype=np.float64)
            np.testing.assert_array_equal(out, want.reshape(len(dets), -1)[pair_det[pairs], pair_gt[pairs]])
    assert (want == -1).any() or h + w < 4  # the size rule was exercised


def test_mask_iou_pairs_take_the_compiled_path_or_pycocotools_alike():
    rng = np.random.default_rng(9)
    dets, gts = _random_masks(rng, 10, 30, 40), _random_masks(rng, 4, 30, 40)
    pair_det, pair_gt = np.repeat(np.arange(10), 4), np.tile(np.arange(4), 10)
    crowd, image = np.array([0, 1, 0, 0], bool), np.zeros(40, np.int64)
    fast = masks.mask_iou_pairs(dets, gts, crowd, pair_det, pair_gt, image, threads=2)
    slow = masks.mask_iou_pairs(tuple(dets), gts, crowd, pair_det, pair_gt, image)  # not a list: pycocotools
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("counts", ["0\x7f1", "\x2f", "0Z", "0" + "l" * 6 + "0", "4\udcff", "1\x00"])
def test_unusual_strings_are_left_to_pycocotools(counts):
    """A byte outside '0'..'o', a number cut off, one of seven 5-bit groups, non-ASCII, NUL: not decoded here."""
    try:
        record = {"size": [4, 5], "counts": counts.encode("utf-8", "surrogateescape")}
    except UnicodeEncodeError:
        record = {"size": [4, 5], "counts": counts.encode("latin-1", "replace")}
    good = mask_utils.encode(np.ones((4, 5), dtype=np.uint8, order="F"))
    assert rle.areas([good, record]) is None
    assert not rle.ious([record], [good], np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64),
                        np.zeros(1))


@pytest.mark.parametrize("record", [{"size": [-1, 5], "counts": "0"}, {"size": [4], "counts": "0"},
                                    {"size": [4, True], "counts": "0"}, {"counts": "0"}, {"size": [4, 5]},
                                    {"size": [4, 5], "counts": [20]}, "not a dict"])
def test_unusual_records_are_left_to_the_general_path(record):
    assert rle.areas([record]) is None
    good = mask_utils.encode(np.ones((4, 5), dtype=np.uint8, order="F"))
    assert not rle.ious([record], [good], np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64),
                        np.zeros(1))


def test_a_zero_size_has_an_area_but_no_iou_here():
    """pycocotools measures the area of a 0 x 5 mask (0) but would divide by its height in iou: not taken."""
    empty = {"size": [0, 5], "counts": "0"}
    assert np.frombuffer(rle.areas([empty]), np.float64).tolist() == [0.0]
    good = mask_utils.encode(np.ones((4, 5), dtype=np.uint8, order="F"))
    assert not rle.ious([empty], [good], np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64),
                        np.zeros(1))


def test_bad_arguments_are_errors():
    good = mask_utils.encode(np.ones((4, 5), dtype=np.uint8, order="F"))
    with pytest.raises(ValueError, match="sizes"):
        rle.ious([good], [good], np.zeros(2, bool), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1))
    with pytest.raises(ValueError, match="out of range"):
        rle.ious([good], [good], np.zeros(1, bool), np.zeros(1, np.int64), np.ones(1, np.int64), np.zeros(1))
    with pytest.raises(TypeError):
        rle.areas("not a list")


def _reference_polygons(objects: list, h: int, w: int) -> list:
    out = []
    for obj in objects:
        rles = mask_utils.frPyObjects(obj, h, w)
        out.append(rles[0] if len(obj) == 1 else mask_utils.merge(rles))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_polygons_equal_pycocotools(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
    objects = []
    for i in range(80):
        parts = []
        for _ in range(int(rng.integers(1, 4)) if i % 3 == 0 else 1):
            n = int(rng.integers(3, 12))
            pts = rng.uniform(-10, max(h, w) + 10, (n, 2))  # concave, self-crossing, partly outside
            if i % 4 == 1:
                pts = np.round(pts)  # integer vertices, some on the grid lines
            values = pts.reshape(-1).tolist()
            parts.append([int(v) for v in values] if i % 8 == 1 else values)
        objects.append(parts)
    objects.append([[1.0, 1.0, 1.0, 1.0, 5.0, 5.0]])  # two equal consecutive points: left to pycocotools
    objects.append([[0.5, 0.5, 3.0, 0.5, 3.0, 4.0, 0.5, 0.5]])  # closed explicitly: so is this one
    got = masks._rasterizer().polygons(objects, h, w, 3)
    assert got[-1] is None and got[-2] is None and all(r is not None for r in got[:-2])
    assert got[:-2] == _reference_polygons(objects[:-2], h, w)


def test_fast_rles_of_polygons_equal_pycocotools():
    rng = np.random.default_rng(7)
    segs = [[rng.uniform(0, 60, 8).tolist()] for _ in range(40)] + [[[1.0, 1.0, 1.0, 1.0, 5.0, 5.0]]]
    image = np.zeros(len(segs), np.int64)
    got = masks.fast_rles(segs, image, np.array([[50, 60]]))
    assert got == _reference_polygons(segs, 50, 60)


@pytest.mark.parametrize("objects", [[[]], [[[1, 2, 3, 4]]], [[[1, 2, 3, 4, 5]]], [[(1, 2, 3, 4, 5, 6)]],
                                     [[[1, 2, 3, 4, 5, "6"]]], [[[1, 2, 3, 4, 5, True]]], ["no"]])
def test_polygons_refuse_what_pycocotools_would_take_otherwise(objects):
    assert masks._rasterizer().polygons(objects, 10, 10) is None


def test_empty_foreground_runs_measure_as_pycocotools_2_0_11():
    """Runs of length 0 (uncompressed counts such as [2, 0, 2]): rleToBbox of 2.0.11 skips them."""
    rng = np.random.default_rng(12)
    rles = []
    for _ in range(40):
        h, w = 3, 4
        counts = rng.integers(0, 4, int(rng.integers(1, 8))).tolist()
        counts.append(h * w - sum(counts)) if sum(counts) <= h * w else None
        if sum(counts) != h * w:
            counts = [h * w]
        rles.append(mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w))
    pairs = np.array([(d, g) for d in range(len(rles)) for g in range(len(rles))])
    out = np.empty(len(pairs))
    assert rle.ious(rles, rles, np.zeros(len(rles), bool), pairs[:, 0].copy(), pairs[:, 1].copy(), out)
    want = np.asarray(mask_utils.iou(rles, rles, np.zeros(len(rles), np.uint8)), dtype=np.float64)
    np.testing.assert_array_equal(out, want.reshape(len(rles), -1)[pairs[:, 0], pairs[:, 1]])


def test_counts_that_do_not_fill_the_mask_are_an_error():
    """pycocotools' rleIou never ends on two masks of different totals; here it is a ValueError."""
    short = {"size": [2, 2], "counts": "03"}  # 0, 3: three pixels of four
    good = {"size": [2, 2], "counts": "04"}
    with pytest.raises(ValueError, match="detection 0 do not add up"):
        rle.ious([short], [good], np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1))
    with pytest.raises(ValueError, match="ground truth 0 do not add up"):
        rle.ious([good], [short], np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1))


def test_a_mask_that_does_not_fill_is_named_by_its_record():
    from convzoo.evaluation import evaluate_coco

    gt = {"images": [{"id": 1, "height": 2, "width": 2}], "categories": [{"id": 1}],
          "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "area": 1, "iscrowd": 0,
                           "segmentation": {"size": [2, 2], "counts": "04"}},
                          {"id": 6, "image_id": 1, "category_id": 1, "area": 1, "iscrowd": 0,
                           "segmentation": {"size": [2, 2], "counts": "03"}}]}
    dets = [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [2, 2], "counts": "04"}},
            {"image_id": 1, "category_id": 1, "score": 0.4, "segmentation": {"size": [2, 2], "counts": "03"}}]
    with pytest.raises(ValueError, match=r"annotations\[1\]|detections\[1\]"):
        evaluate_coco(gt, dets, "segm")


def test_polygon_counts_past_2_29_are_encoded_whole():
    """A count difference of 2^29 or more takes 7 characters (pycocotools allots 6 a count)."""
    h, w = 32768, 49400
    obj = [[16390.0, -1.0, 32780.0, -1.0, 32780.0, h + 1.0, 16390.0, h + 1.0],
           [32790.0, 10, 32791.0, 10, 32791.0, 20, 32790, 20]]
    got = masks._rasterizer().polygons([obj], h, w, 1)[0]
    counts, p = [], 0
    text = got["counts"]
    while p < len(text):  # rleFrString with Python's unbounded ints
        x, k, more = 0, 0, True
        while more:
            c = text[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more, p, k = bool(c & 0x20), p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        counts.append(x + (counts[-2] if len(counts) > 2 else 0))
    assert sum(counts) == h * w
    assert sum(counts[1::2]) == (32780 - 16390) * h + 10  # the rectangle's columns, whole, and the sliver's 10


def _random_rle(rng, h: int, w: int) -> dict:
    m = np.zeros((h, w), np.uint8, order="F")
    kind = rng.integers(4)
    if kind == 0:
        m[:] = rng.uniform(size=(h, w)) < 0.3 * rng.uniform()
    elif kind == 1:
        y, x = rng.integers(0, h), rng.integers(0, w)
        m[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = 1
    elif kind == 2:
        m[rng.integers(0, h), rng.integers(0, w)] = 1
    else:  # runs from a column's foot into the next column's head
        m[rng.integers(0, h):, rng.integers(0, w)] = 1
        m[:rng.integers(0, h), rng.integers(0, w)] = 1
    rle = mask_utils.encode(m)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def test_boxes_decide_other_sizes_as_pycocotools():
    """Masks of other sizes: 0 or -1 by whether the boxes (rleToBbox) overlap, so every box edge counts."""
    rng = np.random.default_rng(1)
    minus = 0
    for _ in range(120):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        dets = [_random_rle(rng, h, w) for _ in range(6)]
        gts = [_random_rle(rng, *(int(v) for v in rng.integers(1, 30, size=2))) for _ in range(10)]
        pair_det, pair_gt = (v.reshape(-1) for v in np.meshgrid(np.arange(6), np.arange(10), indexing="ij"))
        crowd = np.zeros(10, dtype=bool)
        want = np.asarray(mask_utils.iou(dets, gts, crowd.astype(np.uint8))).reshape(-1)
        np.testing.assert_array_equal(
            masks.mask_iou_pairs(dets, gts, crowd, pair_det, pair_gt, np.zeros_like(pair_det)), want)
        minus += int((want == -1).sum())
    assert minus > 1000  # the box test decided many pairs
