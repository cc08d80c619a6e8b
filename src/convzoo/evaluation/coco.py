"""Reading and validating COCO ground truth and COCO result files into flat numpy arrays.

Ground truth is a COCO dict (``images``, ``annotations``, ``categories``); detections are a list of COCO result
dicts (``image_id``, ``category_id``, ``score`` and ``bbox`` / ``segmentation`` / ``keypoints``). Boxes stay in
COCO's ``(x, y, w, h)`` absolute pixels here, because the COCO protocol measures areas and IoUs in that form.

Malformed input stops with a ``ValueError`` that names the record (``annotations[12]``, ``detections[4051]``):
pycocotools silently drops detections of unknown categories, we refuse them instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from convzoo.evaluation.masks import compressed_areas, fast_rles, rle_areas, to_rle
from convzoo.evaluation.matching import sorted_unique

IOU_TYPES = ("bbox", "segm", "keypoints")


@dataclass(frozen=True)
class CocoGroundTruth:
    """Ground truth of one COCO set, one row per annotation.

    ``image_ids`` and ``category_ids`` are sorted (pycocotools' ``imgIds``/``catIds`` order); ``image`` and
    ``category`` index into them. ``boxes`` is ``float64[N, 4]`` ``(x, y, w, h)``; ``segmentations`` holds compressed
    RLEs (segm only); ``keypoints`` is ``float64[N, K, 3]`` ``(x, y, visibility)`` (keypoints only).
    ``ignore`` is pycocotools' flag: crowd, or (keypoints) no labelled keypoint.
    """

    image_ids: list
    image_sizes: np.ndarray  # int64[I, 2] (height, width)
    category_ids: list
    category_names: list[str]
    ids: np.ndarray  # int64[N] annotation ids
    image: np.ndarray  # int64[N]
    category: np.ndarray  # int64[N]
    area: np.ndarray  # float64[N], the annotation's own ``area`` field
    iscrowd: np.ndarray  # bool[N]
    ignore: np.ndarray  # bool[N]
    boxes: np.ndarray | None  # float64[N, 4] (x, y, w, h); None for segm ground truth without boxes
    segmentations: list | None = None
    keypoints: np.ndarray | None = None


@dataclass(frozen=True)
class CocoDetections:
    """Detections aligned to a :class:`CocoGroundTruth`, one row per detection in file order.

    ``area`` follows pycocotools' ``loadRes``: box ``w * h`` when the first record has a ``bbox``, otherwise the mask
    area (segmentation results) or the extent of the keypoints (keypoint results).
    """

    image: np.ndarray  # int64[D] index into gt.image_ids
    category: np.ndarray  # int64[D] index into gt.category_ids
    score: np.ndarray  # float64[D]
    area: np.ndarray  # float64[D]
    boxes: np.ndarray  # float64[D, 4] (x, y, w, h); NaN for mask results evaluated as segm (not needed)
    segmentations: Sequence | None = None  # compressed RLE dicts: a list, or PackedRles from read_detections
    keypoints: np.ndarray | None = None


def _record(records: list, kind: str, index: int) -> str:
    text = repr(records[index])
    return f"{kind}[{index}] ({text[:80]}{'...' if len(text) > 80 else ''})"


def _column(records: list, key: str, kind: str, default: Any = None) -> list:
    """``[r[key] for r in records]``, or a ``ValueError`` naming the first record without ``key``."""
    try:
        if default is None:
            return list(map(itemgetter(key), records))  # a third faster than a comprehension on 500k records
        return [r.get(key, default) for r in records]
    except (KeyError, TypeError, AttributeError):
        for i, r in enumerate(records):
            if not isinstance(r, dict) or (default is None and key not in r):
                raise ValueError(f"{_record(records, kind, i)} has no field '{key}'") from None
        raise


def _numbers(values: list, records: list, kind: str, key: str, width: int | None = None) -> np.ndarray:
    """A float64 array of ``values`` (scalars or rows of ``width``), rejecting non-numbers and NaN/inf by record."""
    if not values:
        return np.zeros((0,) if width is None else (0, width))
    try:
        if width is not None and set(map(len, values)) == {width}:  # rows of one length: read them flat, 2x faster
            array = np.fromiter(chain.from_iterable(values), dtype=np.float64, count=width * len(values))
            array = array.reshape(-1, width)
        else:
            array = np.asarray(values, dtype=np.float64)
        good = array.ndim == (1 if width is None else 2) and (width is None or array.shape[1] == width)
    except (ValueError, TypeError):
        array, good = None, False
    if not good:
        for i, v in enumerate(values):
            try:
                row = np.asarray(v, dtype=np.float64)
            except (ValueError, TypeError):
                row = None
            if row is None or row.shape != (() if width is None else (width,)):
                shape = "a number" if width is None else f"{width} numbers"
                raise ValueError(f"{_record(records, kind, i)}: '{key}' must be {shape}, got {v!r}")
    bad = ~np.isfinite(array).reshape(len(values), -1).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{_record(records, kind, i)}: '{key}' is not finite ({values[i]!r}); "
                         f"{bad.sum()} such records")
    return array


def _index(ids: list, table: list, records: list, kind: str, key: str) -> np.ndarray:
    """Positions of ``ids`` in the sorted id list ``table``; an unknown id is an error naming the record."""
    position = _positions(np.asarray(ids), table)
    if position is not None:
        return position
    lookup = {value: i for i, value in enumerate(table)}
    try:
        return np.fromiter((lookup[v] for v in ids), dtype=np.int64, count=len(ids))
    except (KeyError, TypeError):
        missing = [i for i, v in enumerate(ids) if not _hashable(v) or v not in lookup]
        raise ValueError(
            f"{_record(records, kind, missing[0])}: {key} {ids[missing[0]]!r} is not in the ground truth "
            f"({len(missing)} such records)"
        ) from None


def _positions(ids: np.ndarray, table: list) -> np.ndarray | None:
    """int64 positions of the integer ``ids`` in the sorted integer id list ``table``; ``None`` when either is not
    integers or an id is not in ``table``."""
    sorted_table = np.asarray(table)
    if ids.dtype.kind != "i" or (len(ids) and (not len(table) or sorted_table.dtype.kind != "i")):
        return None
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    position = np.minimum(np.searchsorted(sorted_table, ids), len(table) - 1)
    return position.astype(np.int64) if (sorted_table[position] == ids).all() else None


def _hashable(value: Any) -> bool:
    return isinstance(value, (int, str, float)) and not isinstance(value, bool)


def _sorted_unique_ids(records: list, kind: str) -> list:
    ids = _column(records, "id", kind)
    seen: dict = {}
    for i, v in enumerate(ids):
        if not _hashable(v):
            raise ValueError(f"{_record(records, kind, i)}: 'id' must be a number or a string")
        if v in seen:
            raise ValueError(f"{_record(records, kind, i)}: duplicate id {v!r} (first at {kind}[{seen[v]}])")
        seen[v] = i
    try:
        return sorted(ids)
    except TypeError:
        raise ValueError(f"{kind} ids mix numbers and strings") from None


def _nonnegative(array: np.ndarray, records: list, kind: str, what: str) -> None:
    bad = (array < 0).reshape(len(array), -1).any(1) if len(array) else np.zeros(0, dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{_record(records, kind, i)}: negative {what}; {bad.sum()} such records")


def _segmentations(records: list) -> list:
    try:
        return list(map(itemgetter("segmentation"), records))
    except KeyError:
        return [r.get("segmentation") for r in records]


def no_boxes(count: int) -> np.ndarray:
    """``float64[count, 4]`` NaN, read-only and without memory of its own: the boxes of masks compared as masks."""
    return np.broadcast_to(np.float64(np.nan), (count, 4))


def start_mask_areas(results: list):
    """The compiled areas of the results' masks begun on a thread (a ``Future`` of :func:`compressed_areas`, which
    runs without the interpreter lock), for :func:`parse_detections`; ``None`` where it would not help."""
    if not isinstance(results, list) or not results or not isinstance(results[0], dict) or compressed_areas([]) is None:
        return None
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    column = _segmentations(results)
    started = pool.submit(compressed_areas, column)
    started.column = column  # parse_detections takes it from here
    pool.shutdown(wait=False)  # its thread ends with the one task
    return started


def _rles(records: list, image: np.ndarray, sizes: np.ndarray, kind: str, default_boxes=None,
          segmentations: list | None = None, all_rles: bool = False) -> list:
    """The records' segmentations as compressed RLEs (``segmentations``: their column, when already taken;
    ``all_rles``: the caller knows every one is a compressed RLE dict)."""
    segmentations = _segmentations(records) if segmentations is None else segmentations
    if all_rles:
        return segmentations
    rles = fast_rles(segmentations, image, sizes)
    boxes = default_boxes.tolist() if default_boxes is not None else None
    for i in [i for i, rle in enumerate(rles) if rle is None]:  # what the column checks did not take, one by one
        h, w = sizes[image[i]].tolist()  # Python ints: numpy scalars are slower in pycocotools
        segmentation = records[i].get("segmentation")
        if segmentation is None and boxes is not None:
            x, y, bw, bh = boxes[i]  # loadRes: a box result becomes a rectangle polygon
            segmentation = [[x, y, x, y + bh, x + bw, y + bh, x + bw, y]]
        if segmentation is None:
            raise ValueError(f"{_record(records, kind, i)} has no field 'segmentation'")
        try:
            rles[i] = to_rle(segmentation, h, w)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise ValueError(f"{_record(records, kind, i)}: bad 'segmentation': {error}") from None
    return rles


def _keypoints(records: list, kind: str) -> np.ndarray:
    values = _column(records, "keypoints", kind)
    lengths = {len(v) if isinstance(v, list) else -1 for v in values}
    if len(lengths) != 1 or next(iter(lengths)) % 3 != 0 or next(iter(lengths)) <= 0:
        first = 0 if len(lengths) == 1 else next(
            i for i, v in enumerate(values) if not isinstance(v, list) or len(v) != len(values[0]))
        raise ValueError(f"{_record(records, kind, first)}: 'keypoints' must be lists of 3K numbers of one length")
    return _numbers(values, records, kind, "keypoints", len(values[0])).reshape(len(values), -1, 3)


def parse_ground_truth(dataset: dict, iou_type: str = "bbox") -> CocoGroundTruth:
    """Validate a COCO ground-truth dict and turn it into arrays; ``iou_type`` says which fields are required."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    if not isinstance(dataset, dict):
        raise ValueError(f"ground truth must be a COCO dict, got {type(dataset).__name__}")  # noqa: TRY004 (bad data)
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise ValueError(f"ground truth has no '{key}' list")  # noqa: TRY004 (bad data, not a bad call)
    images, anns, cats = dataset["images"], dataset["annotations"], dataset["categories"]
    image_ids = _sorted_unique_ids(images, "images")
    category_ids = _sorted_unique_ids(cats, "categories")
    order = np.argsort(_index(_column(images, "id", "images"), image_ids, images, "images", "id"))
    default = None if iou_type == "segm" else 0  # masks need the image size; boxes and keypoints do not
    hw = [_column(images, "height", "images", default), _column(images, "width", "images", default)]
    sizes = _numbers(list(zip(*hw)), images, "images", "height, width", 2).reshape(-1, 2)[order].astype(np.int64)
    _nonnegative(sizes, [images[i] for i in order], "images", "height or width")
    names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    ids = _numbers(_column(anns, "id", "annotations"), anns, "annotations", "id").astype(np.int64)
    if len(sorted_unique(ids)) != len(ids):
        seen: dict = {}
        for i, v in enumerate(ids.tolist()):
            if v in seen:
                raise ValueError(f"{_record(anns, 'annotations', i)}: duplicate id {v} "
                                 f"(first at annotations[{seen[v]}])")
            seen[v] = i
    image = _index(_column(anns, "image_id", "annotations"), image_ids, anns, "annotations", "image_id")
    category = _index(_column(anns, "category_id", "annotations"), category_ids, anns, "annotations", "category_id")
    area = _numbers(_column(anns, "area", "annotations"), anns, "annotations", "area")
    _nonnegative(area, anns, "annotations", "area")
    iscrowd = _numbers(_column(anns, "iscrowd", "annotations", default=0), anns, "annotations", "iscrowd") != 0
    boxes = None  # masks are compared as masks; boxes are needed by bbox IoU and by OKS
    if iou_type != "segm" or all("bbox" in a for a in anns):
        boxes = _numbers(_column(anns, "bbox", "annotations"), anns, "annotations", "bbox", 4).reshape(-1, 4)
        _nonnegative(boxes[:, 2:], anns, "annotations", "bbox width or height")
    ignore = iscrowd.copy()
    segmentations = keypoints = None
    if iou_type == "segm":
        segmentations = _rles(anns, image, sizes, "annotations")
    if iou_type == "keypoints":
        keypoints = _keypoints(anns, "annotations") if anns else np.zeros((0, 0, 3))
        num = _numbers(_column(anns, "num_keypoints", "annotations"), anns, "annotations", "num_keypoints")
        ignore |= num == 0  # pycocotools: a person without labelled keypoints is ignored
    return CocoGroundTruth(image_ids, sizes, category_ids, [names[c] for c in category_ids], ids, image, category,
                           area, iscrowd, ignore, boxes, segmentations, keypoints)


def parse_detections(results: list, gt: CocoGroundTruth, iou_type: str = "bbox", started=None) -> CocoDetections:
    """Validate COCO result dicts against ``gt`` and turn them into arrays (the work of pycocotools' ``loadRes``).

    ``started``: :func:`start_mask_areas` of ``results``, begun while the ground truth was parsed.
    The first record decides how areas are measured, as in ``loadRes``: a ``bbox`` gives ``w * h``, otherwise a
    ``segmentation`` gives the mask area and ``keypoints`` give the area of their extent.
    """
    if not isinstance(results, list):
        raise ValueError(f"detections must be a list of result dicts, got {type(results).__name__}")  # noqa: TRY004
    kind = "detections"
    image = _index(_column(results, "image_id", kind), gt.image_ids, results, kind, "image_id")
    category = _index(_column(results, "category_id", kind), gt.category_ids, results, kind, "category_id")
    score = _numbers(_column(results, "score", kind), results, kind, "score")
    first = results[0] if results else {}
    mode = ("bbox" if len(first.get("bbox", [])) else "segm" if "segmentation" in first
            else "keypoints" if "keypoints" in first else iou_type)
    boxes = segmentations = keypoints = None
    if mode == "bbox":
        boxes = _numbers(_column(results, "bbox", kind), results, kind, "bbox", 4).reshape(-1, 4)
        _nonnegative(boxes[:, 2:], results, kind, "bbox width or height")
        area = boxes[:, 2] * boxes[:, 3]
    if iou_type == "segm" or mode == "segm":
        column = getattr(started, "column", None) or _segmentations(results)
        # the compiled areas take only compressed RLE dicts: where they take them all, nothing else needs checking
        mask_area = None
        if mode == "segm":
            mask_area = started.result() if started is not None else compressed_areas(column)
        segmentations = _rles(results, image, gt.image_sizes, kind, default_boxes=boxes, segmentations=column,
                              all_rles=mask_area is not None)
    if mode == "segm":
        area = rle_areas(segmentations) if mask_area is None else mask_area
        if iou_type == "segm":  # masks are compared as masks: their boxes are never read (and cost a decode)
            boxes = no_boxes(len(results))
        else:
            boxes = mask_utils.toBbox(segmentations).reshape(-1, 4) if results else np.zeros((0, 4))
    if iou_type == "keypoints" or mode == "keypoints":
        keypoints = _keypoints(results, kind) if results else np.zeros((0, 0, 3))
    if mode == "keypoints":
        low, high = keypoints[..., :2].min(1), keypoints[..., :2].max(1)  # [D, 2] (x, y)
        area = (high[:, 0] - low[:, 0]) * (high[:, 1] - low[:, 1])
        boxes = np.concatenate([low, high - low], axis=1)
    if iou_type == "keypoints" and len(gt.ids) and len(results) and keypoints.shape[1] != gt.keypoints.shape[1]:
        raise ValueError(f"detections have {keypoints.shape[1]} keypoints, the ground truth {gt.keypoints.shape[1]}")
    return CocoDetections(image, category, score, np.asarray(area, np.float64), boxes, segmentations, keypoints)
