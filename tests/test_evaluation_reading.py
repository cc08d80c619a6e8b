"""Reading COCO files: the msgspec path for box results gives the arrays of the dict path, and bad records still
stop with the dict path's messages."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from convzoo.evaluation import evaluate_coco, parse_detections, parse_ground_truth, read_detections, read_json
from convzoo.evaluation.reading import box_detections


def _gt() -> dict:
    return {"images": [{"id": 3, "height": 50, "width": 60}, {"id": 8, "height": 50, "width": 60}],
            "categories": [{"id": 1, "name": "a"}, {"id": 5, "name": "b"}],
            "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 8, "category_id": 5, "bbox": [0, 0, 30, 10], "area": 300,
                             "iscrowd": 0}]}


def _dets() -> list:
    rng = np.random.default_rng(0)
    return [{"image_id": int(rng.choice([3, 8])), "category_id": int(rng.choice([1, 5])),
             "score": round(float(rng.uniform()), 3), "bbox": [round(float(v), 2) for v in rng.uniform(0, 30, 4)],
             "id": i, "area": 1.0} for i in range(40)]


def _same(a, b) -> None:
    for field in ("image", "category", "score", "area", "boxes"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert getattr(a, field).dtype == getattr(b, field).dtype


def test_read_detections_equals_the_dict_path(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(_dets()))
    gt = parse_ground_truth(_gt())
    _same(read_detections(path, gt), parse_detections(_dets(), gt))
    assert read_json(path) == _dets()
    assert evaluate_coco(gt, read_detections(path, gt)).stats == evaluate_coco(_gt(), _dets()).stats
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert len(read_detections(empty, gt).score) == 0


def test_box_detections_of_typed_records():
    gt = parse_ground_truth(_gt())
    records = [SimpleNamespace(**{k: v for k, v in d.items() if k in ("image_id", "category_id", "score", "bbox")})
               for d in _dets()]
    _same(box_detections(records, gt), parse_detections(_dets(), gt))


@pytest.mark.parametrize(("text", "message"), [
    ('[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, NaN, 4]}]', r"detections\[0\].*not finite"),
    ('[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 1e999, 4]}]', r"detections\[0\].*not finite"),
    ('[{"image_id": 3, "category_id": 1, "score": 0.5}]', r"detections\[0\].*has no field 'bbox'"),
    ('[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3]}]', r"detections\[0\].*must be 4 numbers"),
    ('[{"image_id": 4, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]', r"image_id 4 is not in the ground"),
    ('[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, -3, 4]}]', r"negative bbox width"),
    ('[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}', r"dets.json is not JSON"),
])
def test_bad_result_files_name_the_record(tmp_path, text, message):
    path = tmp_path / "dets.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_detections(path, parse_ground_truth(_gt()))


def test_read_detections_in_slices_equals_the_whole_file(tmp_path, monkeypatch):
    """Decoded a few records at a time (cut between records, pretty-printed or compact), with string ids, and with
    a cut that falls inside a string value (the whole file is read again): the arrays of the dict path."""
    from convzoo.evaluation import reading

    monkeypatch.setattr(reading, "CHUNK_BYTES", 150)
    gt = parse_ground_truth(_gt())
    for text in (json.dumps(_dets()), json.dumps(_dets(), indent=2), json.dumps(_dets(), separators=(",", ":"))):
        path = tmp_path / "dets.json"
        path.write_text(text)
        with path.open("rb") as handle:
            chunks = list(reading.record_chunks(handle, 150))
        assert len(chunks) > 5 and sum(len(json.loads(c)) for c in chunks) == len(_dets())
        _same(read_detections(path, gt), parse_detections(_dets(), gt))
    named = {**_gt(), "images": [{**image, "id": f"im{image['id']}"} for image in _gt()["images"]],
             "annotations": [{**a, "image_id": f"im{a['image_id']}"} for a in _gt()["annotations"]]}
    dets = [{**d, "image_id": f"im{d['image_id']}", "note": "x}, {\"y\": 1"} for d in _dets()]
    path.write_text(json.dumps(dets))
    _same(read_detections(path, parse_ground_truth(named)), parse_detections(dets, parse_ground_truth(named)))
    bad = [*_dets()[:30], {**_dets()[30], "image_id": 4}, *_dets()[31:]]  # in a later slice: named as record 30
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"detections\[30\].*image_id 4 is not in the ground"):
        read_detections(path, gt)
