"""Reading COCO files fast: box results straight into arrays, by convzoo's compiled reader or msgspec; mask results
into arrays and packed RLE strings (:class:`~convzoo.evaluation.masks.PackedRles`), by the compiled reader.

Box results are read, in order of preference, by convzoo's own compiled reader (``_boxjson``, C, built with the
package where a compiler is at hand: a file of plain box results straight into arrays, about 0.1 s for 300,000
detections), by msgspec (below), or by ``json``. A reader that meets anything it does not handle gives the file to
the next, so what is read, and every error message, is the same whichever reads it (tested).

Python's ``json`` turns a results file into one dict per detection, which costs more than the evaluation itself
(3,000 images, 300,000 detections: about twice the evaluation's CPU time) and a few hundred bytes per detection.
With ``msgspec`` installed (``pip install msgspec``; it is in the ``bench`` extra), box results are decoded into
compact typed records (``image_id``, ``category_id``, ``score``, ``bbox``; other fields skipped) and from there into
:class:`~convzoo.evaluation.coco.CocoDetections`, several times faster and in a fraction of the memory. Anything
that does not decode into that shape (no ``bbox``, ids that are neither integers nor strings, ``NaN``) is read again
with ``json`` and goes through :func:`~convzoo.evaluation.coco.parse_detections`, whose errors name the record. The
arrays are the same either way (tested).

The records are read and decoded a slice of the file at a time (:data:`CHUNK_BYTES`, cut between two records), each
slice's records turned into arrays and dropped before the next: neither the file's text nor the typed records of the
whole file (about 250 bytes each, 75 MB for 300,000 detections) exist at once, only the arrays (64 bytes a
detection).
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
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
    _positions,
    no_boxes,
    parse_detections,
)
from convzoo.evaluation.masks import PackedRles

CHUNK_BYTES = 1 << 22  # JSON text decoded at once by the msgspec path (about 40,000 box results)
_BETWEEN_RECORDS = re.compile(rb"\}\s*,\s*\{")


@lru_cache(maxsize=1)
def _msgspec():
    """``(msgspec, BoxResult struct type, the same with integer ids)``, or ``None`` without msgspec."""
    try:
        import msgspec
    except ImportError:
        return None

    class BoxResult(msgspec.Struct, gc=False):
        image_id: int | str
        category_id: int | str
        score: float
        bbox: tuple[float, float, float, float]

    class IntBoxResult(msgspec.Struct, gc=False):  # integer ids (COCO's): read straight into int64 arrays
        image_id: int
        category_id: int
        score: float
        bbox: tuple[float, float, float, float]

    return msgspec, BoxResult, IntBoxResult


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


@lru_cache(maxsize=1)
def _boxjson():
    """convzoo's compiled reader (``_boxjson.c``), or ``None`` where it was not built."""
    try:
        from convzoo.evaluation import _boxjson as module
    except ImportError:
        return None
    return module


def _compiled_columns(path: str | Path) -> tuple | None:
    """The compiled reader's ``(image_ids int64[D], category_ids int64[D], score float64[D], boxes float64[D, 4],
    others)`` (``others``: members skipped) of the file at ``path``, or ``None`` (no reader, or a file it does not
    take)."""
    raw = _boxjson().read_boxes(os.fsencode(path)) if _boxjson() is not None else None
    if raw is None:
        return None
    image_ids, category_ids = (np.frombuffer(c, dtype=np.int64) for c in raw[:2])
    return image_ids, category_ids, np.frombuffer(raw[2]), np.frombuffer(raw[3]).reshape(-1, 4), raw[4]


def _compiled_masks(path: str | Path) -> tuple | None:
    """The compiled reader's ``(image_ids, category_ids, score, boxes float64[D, 4] or None, rles, others, areas)``
    of a file of mask results (``segmentation`` a compressed RLE dict; ``bbox`` in all or none; ``rles`` a
    :class:`~convzoo.evaluation.masks.PackedRles`; ``areas``: the masks' areas, ``None`` where a string is one
    pycocotools must measure), or ``None``."""
    raw = _boxjson().read_masks(os.fsencode(path)) if _boxjson() is not None else None
    if raw is None:
        return None
    image_ids, category_ids, ends, heights, widths = (np.frombuffer(raw[i], dtype=np.int64) for i in (0, 1, 5, 6, 7))
    boxes = np.frombuffer(raw[3]).reshape(-1, 4) if len(raw[3]) else None
    areas = np.frombuffer(raw[8])  # measured as the strings were read
    areas = None if np.isnan(areas).any() else areas
    return (image_ids, category_ids, np.frombuffer(raw[2]), boxes, PackedRles(raw[4], ends, heights, widths), raw[9],
            areas)


def start_reading(path: str | Path, iou_type: str = "bbox") -> Future | None:
    """Start the compiled reader on the box (``bbox``) or mask (``segm``) results at ``path`` in a thread (it runs
    without the interpreter lock, so the caller can read the ground truth meanwhile); pass the future to
    :func:`read_detections`. ``None`` without the compiled reader or for another ``iou_type``."""
    if _boxjson() is None or iou_type not in ("bbox", "segm"):
        return None
    pool = ThreadPoolExecutor(1, thread_name_prefix="convzoo-read-results")
    future = pool.submit(_compiled_columns if iou_type == "bbox" else _compiled_masks, path)
    pool.shutdown(wait=False)
    return future


def read_detections(path: str | Path, gt: CocoGroundTruth, iou_type: str = "bbox",
                    started: Future | None = None) -> CocoDetections:
    """``parse_detections(read_json(path), gt, iou_type)``, without building a dict per record (mask results'
    ``segmentations`` are a :class:`~convzoo.evaluation.masks.PackedRles`); ``started``: :func:`start_reading` of
    the same ``path`` and type."""
    path = Path(path)
    if iou_type in ("bbox", "segm"):
        reader = _compiled_columns if iou_type == "bbox" else _compiled_masks
        columns = started.result() if started is not None else reader(path)
        if columns is not None:
            compiled = box_columns(*columns[:4], gt) if iou_type == "bbox" else mask_columns(*columns, gt)
            if compiled is not None:
                return compiled
    fast = _msgspec()
    if fast is not None and iou_type == "bbox":
        msgspec, box_result, int_box_result = fast

        def decoded(chunk: bytes) -> CocoDetections:
            try:
                return box_detections(msgspec.json.decode(chunk, type=list[int_box_result]), gt, int_ids=True)
            except (msgspec.ValidationError, OverflowError):  # string (or huge) ids
                return box_detections(msgspec.json.decode(chunk, type=list[box_result]), gt)

        try:
            with path.open("rb") as handle:
                parts = [decoded(chunk) for chunk in record_chunks(handle, CHUNK_BYTES)]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            parts = None  # read again as dicts: parse_detections' message names the record
        if parts is not None:
            if len(parts) == 1:
                return parts[0]
            return CocoDetections(*(np.concatenate([getattr(p, k) for p in parts])
                                    for k in ("image", "category", "score", "area", "boxes")))
    return parse_detections(read_json(path), gt, iou_type)


def compiled_box_detections(path: str | Path, gt: CocoGroundTruth) -> CocoDetections | None:
    """The box results in the file at ``path`` read by the compiled reader, or ``None``: without the reader, for a
    file it does not take (anything but an array of objects with integer ids, a numeric score and a four-number
    ``bbox``; other members are skipped), and for values the checks refuse (not finite, a negative width or height,
    an id not in ``gt``), whose errors the general readers name by record."""
    columns = _compiled_columns(path)
    return None if columns is None else box_columns(*columns[:4], gt)


def plain_box_columns(path: str | Path) -> tuple | None:
    """``(image_ids int64[D], category_ids int64[D], score float64[D], boxes float64[D, 4])`` of a file of at least
    one box result with exactly the four fields each, finite numbers, read by the compiled reader; ``None`` for
    anything else (or without the reader)."""
    columns = _compiled_columns(path)
    if columns is None or columns[4] or not len(columns[0]):
        return None
    if not (np.isfinite(columns[2]).all() and np.isfinite(columns[3]).all()):
        return None
    return columns[:4]


def box_columns(image_ids: np.ndarray, category_ids: np.ndarray, score: np.ndarray, boxes: np.ndarray,
                gt: CocoGroundTruth) -> CocoDetections | None:
    """:class:`CocoDetections` of box columns (int64 ids, float64 scores, ``[D, 4]`` boxes), or ``None`` where the
    checks refuse a value (the general readers then name the record)."""
    if not (np.isfinite(score).all() and np.isfinite(boxes).all() and (boxes[:, 2:] >= 0).all()):
        return None
    image, category = _positions(image_ids, gt.image_ids), _positions(category_ids, gt.category_ids)
    if image is None or category is None:
        return None
    return CocoDetections(image, category, score, boxes[:, 2] * boxes[:, 3], boxes)


def mask_columns(image_ids: np.ndarray, category_ids: np.ndarray, score: np.ndarray, boxes: np.ndarray | None,
                 rles: PackedRles, others: int, areas: np.ndarray | None, gt: CocoGroundTruth) -> CocoDetections | None:
    """:class:`CocoDetections` of mask results read by the compiled reader (as ``parse_detections`` makes them for
    ``segm``: box areas where there are boxes, as pycocotools' ``loadRes``), or ``None`` where the checks refuse a
    value or the RLE kernels did not measure the masks (the general readers then decide)."""
    if not np.isfinite(score).all() or (boxes is not None and not (np.isfinite(boxes).all()
                                                                   and (boxes[:, 2:] >= 0).all())):
        return None
    image, category = _positions(image_ids, gt.image_ids), _positions(category_ids, gt.category_ids)
    if image is None or category is None or (boxes is None and areas is None):
        return None
    if boxes is None:
        return CocoDetections(image, category, score, areas, no_boxes(len(score)), rles)
    return CocoDetections(image, category, score, boxes[:, 2] * boxes[:, 3], boxes, rles)


def record_chunks(handle, size: int):
    """The JSON array in the binary file ``handle`` as JSON arrays of consecutive records of about ``size`` bytes
    each, read ``size`` bytes at a time and cut only at a ``}`` ``,`` ``{`` between two objects (yields the whole
    text when it is not an array). The file's text never lies in memory whole, only about two slices of it.

    A cut that falls inside a string leaves that string open at the end of its slice, so the slice fails to decode
    and the caller falls back to the whole file: a cut never changes what is read.
    """
    text = handle.read(size)
    stripped = text.lstrip()
    if not stripped.startswith(b"["):
        yield text + handle.read()
        return
    text, start = stripped, 1  # text[start:] is not yet yielded
    while True:
        more = handle.read(size)
        if not more:
            yield b"[" + text[start:]
            return
        fresh = len(text) - start
        text = text[start:] + more
        cut = _BETWEEN_RECORDS.search(text, fresh)  # a boundary in what was just read
        if cut is None:  # none: read on (a record longer than a slice)
            start = 0
            continue
        yield b"[" + text[:cut.start() + 1] + b"]"
        start = cut.end() - 1


def box_detections(records: list, gt: CocoGroundTruth, int_ids: bool = False) -> CocoDetections:
    """:class:`CocoDetections` of typed box records (attributes ``image_id``, ``category_id``, ``score``, ``bbox``
    of four numbers), checked as :func:`parse_detections` checks dicts; ``int_ids``: the ids are known to be
    Python ints (read into int64 arrays without a list; one beyond int64 raises ``OverflowError``)."""
    kind = "detections"

    def ids(key: str):
        values = map(attrgetter(key), records)
        return np.fromiter(values, dtype=np.int64, count=len(records)) if int_ids else list(values)

    image = _index(ids("image_id"), gt.image_ids, records, kind, "image_id")
    category = _index(ids("category_id"), gt.category_ids, records, kind, "category_id")
    score = np.fromiter(map(attrgetter("score"), records), dtype=np.float64, count=len(records))
    boxes = np.fromiter(chain.from_iterable(map(attrgetter("bbox"), records)), dtype=np.float64,
                        count=4 * len(records)).reshape(-1, 4)
    for values, key in ((score, "score"), (boxes, "bbox")):
        if not np.isfinite(values).all():  # msgspec reads 1e999 as inf: the dict path names the record
            _numbers(values.tolist(), records, kind, key, None if key == "score" else 4)
    _nonnegative(boxes[:, 2:], records, kind, "bbox width or height")
    return CocoDetections(image, category, score, boxes[:, 2] * boxes[:, 3], boxes)
