"""Reading COCO files fast: box results straight into arrays with msgspec when it is installed (optional).

Python's ``json`` turns a results file into one dict per detection, which costs more than the evaluation itself
(3,000 images, 300,000 detections: about twice the evaluation's CPU time) and a few hundred bytes per detection.
With ``msgspec`` installed (``pip install msgspec``; it is in the ``bench`` extra), box results are decoded into
compact typed records (``image_id``, ``category_id``, ``score``, ``bbox``; other fields skipped) and from there into
:class:`~convzoo.evaluation.coco.CocoDetections`, several times faster and in a fraction of the memory. Anything
that does not decode into that shape (no ``bbox``, ids that are neither integers nor strings, ``NaN``) is read again
with ``json`` and goes through :func:`~convzoo.evaluation.coco.parse_detections`, whose errors name the record. The
arrays are the same either way (tested).
"""

from __future__ import annotations

import json
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from convzoo.evaluation.coco import (
    CocoDetections,
    CocoGroundTruth,
    _index,
    _nonnegative,
    _numbers,
    parse_detections,
)


@lru_cache(maxsize=1)
def _msgspec():
    """``(msgspec, BoxResult struct type)``, or ``None`` without msgspec."""
    try:
        import msgspec
    except ImportError:
        return None

    class BoxResult(msgspec.Struct, gc=False):
        image_id: int | str
        category_id: int | str
        score: float
        bbox: tuple[float, float, float, float]

    return msgspec, BoxResult


def read_json(path: str | Path) -> Any:
    """Parse a JSON file (msgspec when installed, else ``json``), naming the file when it is not JSON."""
    path = Path(path)
    fast = _msgspec()
    if fast is not None:
        try:
            return fast[0].json.decode(path.read_bytes())
        except fast[0].DecodeError:
            pass  # NaN literals and the like: json accepts them, and json's message says where the text is wrong
    try:
        with path.open() as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None


def read_detections(path: str | Path, gt: CocoGroundTruth, iou_type: str = "bbox") -> CocoDetections:
    """``parse_detections(read_json(path), gt, iou_type)``, for box results without building a dict per record."""
    path = Path(path)
    fast = _msgspec()
    if fast is not None and iou_type == "bbox":
        msgspec, box_result = fast
        try:
            records = msgspec.json.decode(path.read_bytes(), type=list[box_result])
        except (msgspec.DecodeError, msgspec.ValidationError):
            records = None
        if records is not None:
            return box_detections(records, gt)
    return parse_detections(read_json(path), gt, iou_type)


def box_detections(records: list, gt: CocoGroundTruth) -> CocoDetections:
    """:class:`CocoDetections` of typed box records (attributes ``image_id``, ``category_id``, ``score``, ``bbox``
    of four numbers), checked as :func:`parse_detections` checks dicts."""
    kind = "detections"
    image = _index(list(map(attrgetter("image_id"), records)), gt.image_ids, records, kind, "image_id")
    category = _index(list(map(attrgetter("category_id"), records)), gt.category_ids, records, kind, "category_id")
    score = np.fromiter(map(attrgetter("score"), records), dtype=np.float64, count=len(records))
    boxes = np.fromiter(chain.from_iterable(map(attrgetter("bbox"), records)), dtype=np.float64,
                        count=4 * len(records)).reshape(-1, 4)
    for values, key in ((score, "score"), (boxes, "bbox")):
        if not np.isfinite(values).all():  # msgspec reads 1e999 as inf: the dict path names the record
            _numbers(values.tolist(), records, kind, key, None if key == "score" else 4)
    _nonnegative(boxes[:, 2:], records, kind, "bbox width or height")
    return CocoDetections(image, category, score, boxes[:, 2] * boxes[:, 3], boxes)
