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


def _compiled():
    try:
        from convzoo.evaluation import _boxjson  # noqa: F401
    except ImportError:
        pytest.skip("convzoo's compiled reader was not built (no C compiler when it was installed)")
    from convzoo.evaluation.reading import compiled_box_detections

    return compiled_box_detections


def test_compiled_reader_numbers_are_floats_bit_for_bit(tmp_path):
    """Every kind of JSON number (Clinger's fast path and Gay's strtod behind it) reads as Python's float()."""
    compiled = _compiled()
    rng = np.random.default_rng(1)
    texts = ["0", "-0", "0.0", "-0.0", "1", "0.1", "0.3", "123.456", "9007199254740993", "9007199254740992.5",
             "12345678901234567890.5", "0.000000000000000000001", "1e-05", "1E+2", "2.5e-308", "1.7976931348623157e308",
             "0.1000000000000000055511151231257827", "4.35", "1000000000000000000000000", "-345.54", "5e-324"]
    texts += [repr(float(v)) for v in rng.uniform(0, 640, 300)] + [f"{v:.{d}f}" for v, d in
                                                              zip(rng.uniform(0, 1e6, 300), rng.integers(0, 18, 300))]
    texts += [f"{v:.17g}" for v in rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200)]
    text = "[" + ", ".join(f'{{"image_id": 3, "category_id": 1, "score": {t}, "bbox": [{t}, 1, 2, 3]}}'
                           for t in texts) + "]"
    path = tmp_path / "dets.json"
    path.write_text(text)
    dets = compiled(path, parse_ground_truth(_gt()))
    expected = np.array([float(json.loads(t)) for t in texts])  # "-0" is json's int 0: +0.0
    assert dets is not None
    np.testing.assert_array_equal(dets.score.view(np.int64), expected.view(np.int64))  # the bits, signs of 0 too
    np.testing.assert_array_equal(dets.boxes[:, 0].view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize("member", [
    '"id": 7', '"note": "a \\"quoted\\" }, { \\\\ \\u00e9 \\n"', '"segmentation": {"size": [5, 6], "counts": "abc"}',
    '"keypoints": [[1, 2.5, -3e2], [], {}, {"a": [true, false, null]}]', '"flag": true', '"none": null',
])
def test_compiled_reader_skips_other_members(tmp_path, member):
    compiled = _compiled()
    dets = [{**d, "extra": 0} for d in _dets()]
    text = json.dumps(dets).replace('"extra": 0', member)
    path = tmp_path / "dets.json"
    path.write_text(text)
    gt = parse_ground_truth(_gt())
    got = compiled(path, gt)
    assert got is not None
    _same(got, parse_detections(json.loads(text), gt))


@pytest.mark.parametrize("text", [
    '[{"image_id": "3", "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',  # a string id
    '[{"image_id": 3.0, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',  # an id with a fraction
    '[{"image_id": 3, "image_id": 8, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',  # repeated
    '[{"image_id": 3, "category_id": 1, "score": 0.5}]',  # no bbox
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3]}]',
    '[{"image_id": 3, "category_id": 1, "score": NaN, "bbox": [1, 2, 3, 4]}]',
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 1e999, 4]}]',  # inf
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, -3, 4]}]',  # negative width
    '[{"image_id": 4, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',  # not in the ground truth
    '[{"image_id": 9223372036854775808, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',  # beyond int64
    '[{"image\\u005fid": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}]',  # an escaped key
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "x": [1 2]}]',  # bad JSON, skipped
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "x": "\t"}]',  # a raw tab in a string
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "x": "\\q"}]',  # a bad escape
    '[{"image_id": 3, "category_id": 1, "score": 01, "bbox": [1, 2, 3, 4]}]',  # a leading zero
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "a\tb": 1}]',  # a raw tab in a key
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4], "x": "caf\u00e9"}]',  # UTF-8: not ours
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]},]',
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}] x',
    '[{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}',
    '{"image_id": 3, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}', '[1]', '', '[{}]',
])
def test_compiled_reader_leaves_the_rest_to_the_general_readers(tmp_path, text):
    """What the compiled reader does not take it hands on (None); read_detections then answers as the dict path."""
    compiled = _compiled()
    path = tmp_path / "dets.json"
    path.write_text(text)
    gt = parse_ground_truth(_gt())
    assert compiled(path, gt) is None
    try:
        expected = parse_detections(json.loads(text), gt)
    except (ValueError, TypeError) as error:
        with pytest.raises(ValueError):
            read_detections(path, gt)
        expected = error
    if not isinstance(expected, Exception):
        _same(read_detections(path, gt), expected)
    assert compiled(tmp_path / "missing.json", gt) is None


def test_compiled_reader_across_its_4_mb_blocks(tmp_path):
    """Records of random lengths (up to 2.5x the 4 KB look-ahead, the numbers after a long skipped string) over
    several 4 MB blocks: the buffer's end falls inside strings, keys and numbers, and the arrays stay those of json."""
    compiled = _compiled()
    gt = parse_ground_truth(_gt())
    rng = np.random.default_rng(2)
    for _ in range(2):
        dets = [{"note": "x" * int(n), **d} for n, d in zip(rng.integers(0, 10_000, 1_800), _dets() * 45)]
        path = tmp_path / "dets.json"
        path.write_text(json.dumps(dets))
        got = compiled(path, gt)
        assert got is not None
        _same(got, parse_detections(dets, gt))
    path.write_text("[" + " " * (5 << 20) + json.dumps(_dets())[1:] + " " * 5000)  # white space beyond a block
    _same(compiled(path, gt), parse_detections(_dets(), gt))


def test_reading_started_beside_the_ground_truth(tmp_path):
    """start_reading(path, "bbox") runs the compiled reader on a thread; read_detections takes its result (or, for a
    file it does not take, reads the general way)."""
    _compiled()
    from convzoo.evaluation.reading import start_reading

    gt = parse_ground_truth(_gt())
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(_dets()))
    _same(read_detections(path, gt, started=start_reading(path, "bbox")), parse_detections(_dets(), gt))
    named = [{**d, "image_id": str(d["image_id"])} for d in _dets()]
    path.write_text(json.dumps(named))
    with pytest.raises(ValueError, match=r"detections\[0\].*image_id '\d' is not in the ground"):
        read_detections(path, gt, started=start_reading(path, "bbox"))
