"""Reading mask results with the compiled reader (``read_masks`` of ``_boxjson.c``): the arrays and RLE dicts of the
dict path (``parse_detections(read_json(path), gt, "segm")``) as packed RLEs, the areas measured while reading, and
everything unusual left to the general readers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from test_evaluation_reading import _gt

from convzoo.evaluation import (
    PackedRles,
    evaluate_coco,
    parse_detections,
    parse_ground_truth,
    read_detections,
    read_json,
)
from convzoo.evaluation.masks import _compiled, compressed_areas, mask_iou_pairs
from convzoo.evaluation.reading import _boxjson, _compiled_masks, start_reading

pytestmark = pytest.mark.skipif(_boxjson() is None, reason="the compiled reader was not built (no C compiler)")


def _masks(with_box: bool = False, count: int = 30) -> list:
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        m = np.zeros((50, 60), dtype=np.uint8, order="F")
        y, x = rng.integers(0, 40), rng.integers(0, 50)
        m[y:y + rng.integers(1, 20), x:x + rng.integers(1, 20)] = 1
        rle = mask_utils.encode(m)
        record = {"image_id": int(rng.choice([3, 8])), "category_id": int(rng.choice([1, 5])),
                  "score": round(float(rng.uniform()), 3),
                  "segmentation": {"size": [50, 60], "counts": rle["counts"].decode()}, "id": i}
        if i % 4 == 1:
            record["segmentation"] = {"counts": record["segmentation"]["counts"], "size": [50, 60]}  # other order
        if with_box:
            record["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
        out.append(record)
    return out


def _same(a, b) -> None:
    for field in ("image", "category", "score", "area", "boxes"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        np.testing.assert_array_equal(x, y, err_msg=field)
    assert a.segmentations == b.segmentations


@pytest.mark.parametrize("with_box", [False, True])
def test_read_masks_equals_the_dict_path(tmp_path, with_box):
    gt = parse_ground_truth({**_gt(), "annotations": []}, "segm")
    records = _masks(with_box)
    assert any("\\" in r["segmentation"]["counts"] for r in records)  # an escaped backslash is read as one
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records, indent=1 if with_box else None))
    assert _compiled_masks(path) is not None
    _same(read_detections(path, gt, "segm"), parse_detections(read_json(path), gt, "segm"))
    _same(read_detections(path, gt, "segm", start_reading(path, "segm")), parse_detections(records, gt, "segm"))


def test_read_masks_evaluates_as_the_dicts(tmp_path):
    gt_dict = _gt()
    for ann in gt_dict["annotations"]:
        x, y, w, h = ann["bbox"]
        ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    gt = parse_ground_truth(gt_dict, "segm")
    records = _masks()
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    assert evaluate_coco(gt, read_detections(path, gt, "segm"), "segm").stats == evaluate_coco(
        gt_dict, records, "segm").stats


@pytest.mark.parametrize("change", [
    lambda r: r[3].pop("bbox"),  # some with a box, some without
    lambda r: r[2]["segmentation"].update(counts="a\x01b"),  # json writes \u0001: an escape other than \\ and \/
    lambda r: r[2]["segmentation"].update(extra=1),
    lambda r: r[2]["segmentation"].update(size=[50.0, 60]),
    lambda r: r[2]["segmentation"].update(size=[-1, 60]),
    lambda r: r[2]["segmentation"].update(counts=[0, 3000]),  # uncompressed
    lambda r: r[2].update(segmentation=[[1, 1, 5, 1, 5, 5]]),  # a polygon
    lambda r: r[2].update(image_id="3"),
    lambda r: r[2]["segmentation"].update(counts="0\x7f"),
])
def test_unusual_mask_files_go_to_the_general_readers(tmp_path, change):
    records = _masks(with_box=True)
    change(records)
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    assert _boxjson().read_masks(os.fsencode(path)) is None


def test_unmeasured_masks_and_refused_values_fall_back(tmp_path):
    gt = parse_ground_truth({**_gt(), "annotations": []}, "segm")
    records = _masks()
    records[5]["segmentation"]["counts"] = "0" + "l" * 7 + "0"  # read, but left to pycocotools to measure
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    columns = _compiled_masks(path)
    assert columns is not None and columns[6] is None
    _same(read_detections(path, gt, "segm"), parse_detections(records, gt, "segm"))
    records[5] = {**_masks()[5], "image_id": 99}  # not in the ground truth: the dict path's message
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"detections\[5\].*image_id 99"):
        read_detections(path, gt, "segm")


def test_empty_mask_file(tmp_path):
    gt = parse_ground_truth({**_gt(), "annotations": []}, "segm")
    path = tmp_path / "dets.json"
    path.write_text("[]")
    _same(read_detections(path, gt, "segm"), parse_detections([], gt, "segm"))


def test_read_masks_of_long_strings(tmp_path):
    """More than 2 MB of counts, strings longer than the first look-ahead of a record (4,096 bytes)."""
    rng = np.random.default_rng(4)
    gt_dict = {"images": [{"id": 1, "height": 600, "width": 600}], "annotations": [],
               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    records = []
    for i in range(12):
        m = np.asfortranarray((rng.uniform(size=(600, 600)) < 0.5).astype(np.uint8))
        rle = mask_utils.encode(m)
        records.append({"image_id": 1, "category_id": 1 + i % 2, "score": float(i) / 12,
                        "segmentation": {"size": [600, 600], "counts": rle["counts"].decode()}})
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    assert path.stat().st_size > 2 << 20
    gt = parse_ground_truth(gt_dict, "segm")
    _same(read_detections(path, gt, "segm"), parse_detections(records, gt, "segm"))


def test_packed_rles_read_as_the_dicts(tmp_path):
    records = _masks(count=12)
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    packed = _compiled_masks(path)[4]
    dicts = [r["segmentation"] for r in records]
    assert type(packed) is PackedRles and len(packed) == 12 and packed == dicts and dicts == list(packed)
    assert packed[-1] == dicts[-1] and packed[3:7] == dicts[3:7] and packed[::-5] == dicts[::-5]
    assert [packed[i] for i in range(12)] == dicts and packed[np.int64(2)] == dicts[2]
    assert packed != dicts[:-1] and packed != "abc"
    with pytest.raises(IndexError):
        packed[12]
    with pytest.raises(ValueError, match="ends"):
        PackedRles(b"", np.zeros(2, np.int64), np.zeros(1, np.int64), np.zeros(2, np.int64))


@pytest.mark.skipif(_compiled() is None, reason="the RLE kernels were not built (no C compiler)")
def test_rle_kernels_read_packed_rles_as_the_dicts(tmp_path):
    records = _masks(count=40)
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    image_ids, _, _, _, packed, _, areas = _compiled_masks(path)
    dicts = [r["segmentation"] for r in records]
    expected = mask_utils.area(dicts).astype(np.float64)
    np.testing.assert_array_equal(areas, expected)  # measured while reading
    np.testing.assert_array_equal(compressed_areas(packed), expected)
    gt_rles, crowd = dicts[::3], np.arange(len(dicts[::3])) % 4 == 0
    pair_det, pair_gt = (v.reshape(-1) for v in np.meshgrid(np.arange(40), np.arange(len(gt_rles)), indexing="ij"))
    image = image_ids[pair_det]
    np.testing.assert_array_equal(mask_iou_pairs(packed, gt_rles, crowd, pair_det, pair_gt, image),
                                  mask_iou_pairs(dicts, gt_rles, crowd, pair_det, pair_gt, image))
    np.testing.assert_array_equal(mask_iou_pairs(packed, gt_rles, crowd, pair_det, pair_gt, image),
                                  np.asarray(mask_utils.iou(dicts, gt_rles, crowd.astype(np.uint8))).reshape(-1))


@pytest.mark.parametrize("counts", ["0" + "l" * 7 + "0", "0X", "0 1", "0/1"])
def test_areas_of_unusual_strings_are_left_to_pycocotools(tmp_path, counts):
    records = _masks(count=6)
    records[2]["segmentation"]["counts"] = counts
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(records))
    columns = _compiled_masks(path)
    assert columns is not None and columns[6] is None and columns[4][2]["counts"] == counts


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_path_that_is_not_a_file_goes_to_the_general_readers(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # its size is unknown beforehand: the general readers take it
    assert _boxjson().read_masks(os.fsencode(fifo)) is None
    assert _boxjson().read_masks(os.fsencode(tmp_path / "absent.json")) is None
