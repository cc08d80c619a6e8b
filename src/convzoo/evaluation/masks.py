"""COCO masks in bulk: segmentations to compressed RLEs, their areas, and mask IoU of (detection, ground truth) pairs.

The arithmetic is pycocotools' own C code (``maskApi.c``: ``rleFrPoly``, ``rleArea``, ``rleIou``) or convzoo's compiled
copy of it (``_rle.c``: decoding, areas, boxes, IoUs; ``_polygons.c``: rasterizing polygons; tested equal), so every
number is bit for bit pycocotools'. What this module changes is how often it is entered: polygons of one image size go
to ``_polygons`` (or ``frPyObjects``) in one call; areas and the IoUs of all pairs are one call of ``_rle`` (where it
was not built, or a record is unusual: areas 255 RLEs a ``pycocotools.mask.area`` call, which overflows its uint8
counter on longer lists in 2.0.11, and IoUs one ``pycocotools.mask.iou`` call per image). The Python-level checks of the
records run over whole columns (``set(map(type, ...))``) instead of record by record; a record that fails them goes
through :func:`to_rle`, which says what is wrong with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from itertools import chain
from operator import index as as_index
from operator import itemgetter
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

_AREA_CHUNK = 255  # pycocotools 2.0.11's area() keeps the list length in a uint8
_CORES = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)


@cache
def _compiled():
    """convzoo's compiled RLE kernels (``_rle.c``), or ``None`` where they were not built."""
    try:
        from convzoo.evaluation import _rle
    except ImportError:
        return None
    return _rle


@cache
def _rasterizer():
    """convzoo's compiled polygon rasterizer (``_polygons.c``), or ``None`` where it was not built."""
    try:
        from convzoo.evaluation import _polygons
    except ImportError:
        return None
    return _polygons


class PackedRles(Sequence):
    """Compressed RLEs in four columns, as the compiled results reader gives them: ``counts`` (bytes, every RLE
    string back to back), ``ends`` (``int64[N]``: where each ends in ``counts``), ``heights`` and ``widths``
    (``int64[N]``).

    A read-only sequence of pycocotools' RLE dicts ``{"size": [h, w], "counts": str}``, each built when it is read;
    the kernels of ``_rle.c`` read the columns themselves. A mask costs its string and 24 bytes, where a dict of its
    own costs about 400 more (and building 500,000 of them needs the interpreter lock for 0.2 s).
    """

    __slots__ = ("counts", "ends", "heights", "widths")

    def __init__(self, counts: bytes, ends: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> None:
        if not len(ends) == len(heights) == len(widths):
            raise ValueError(f"PackedRles: {len(ends)} ends, {len(heights)} heights, {len(widths)} widths")
        self.counts, self.ends, self.heights, self.widths = counts, ends, heights, widths

    @property
    def columns(self) -> tuple:
        """``(counts, ends, heights, widths)``, as ``_rle.c`` takes them."""
        return self.counts, self.ends, self.heights, self.widths

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = as_index(index)
        i += len(self) if i < 0 else 0
        if not 0 <= i < len(self):
            raise IndexError(f"mask {index} of {len(self)}")
        start = int(self.ends[i - 1]) if i else 0
        return {"size": [int(self.heights[i]), int(self.widths[i])],
                "counts": self.counts[start:int(self.ends[i])].decode("ascii")}

    def __iter__(self):
        ends, counts = self.ends.tolist(), self.counts
        for start, end, h, w in zip([0, *ends[:-1]], ends, self.heights.tolist(), self.widths.tolist()):
            yield {"size": [h, w], "counts": counts[start:end].decode("ascii")}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)) or len(other) != len(self):
            return False
        return list(self) == list(other)

    __hash__ = None  # a sequence that compares by value, as a list

    def __repr__(self) -> str:
        return f"PackedRles({len(self)} masks, {len(self.counts)} bytes of counts)"


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE from a polygon list, an uncompressed RLE or a compressed RLE (pycocotools' ``annToRLE``).

    Checked first, so that a malformed one is a ValueError saying what is wrong rather than pycocotools' errors:
    polygons are non-empty lists of at least 3 (x, y) points (an even count of numbers); an RLE has ``size``
    [h, w] (two non-negative integers) and ``counts`` a string (compressed) or integers summing to h * w."""
    _check_segmentation(segmentation)
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        return segmentation
    raise ValueError(f"expected polygons or an RLE dict, got {type(segmentation).__name__}")


def _check_segmentation(segmentation: Any) -> None:
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError("an empty polygon list")
        for polygon in segmentation:
            if not isinstance(polygon, (list, tuple)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
                raise ValueError("a polygon must be a list of numbers x1, y1, x2, y2, ...")
            if len(polygon) % 2 or len(polygon) < 6:
                raise ValueError(f"a polygon needs an even count of at least 6 numbers (3 points), got "
                                 f"{len(polygon)}")
        return
    if not isinstance(segmentation, dict):
        return
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if not _good_size(size):
        raise ValueError(f"an RLE needs 'size' [height, width] (two integers >= 0), got {size!r}")
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise ValueError("uncompressed RLE 'counts' must be integers >= 0")
        if sum(counts) != size[0] * size[1]:
            raise ValueError(f"uncompressed RLE 'counts' sum to {sum(counts)}, not height * width = "
                             f"{size[0] * size[1]}")
    elif not isinstance(counts, (str, bytes)):
        raise ValueError(f"RLE 'counts' must be a string (compressed) or a list of integers, got "
                         f"{type(counts).__name__}")


def _good_size(size: Any) -> bool:
    return (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size))


def fast_rles(segmentations: list, image: np.ndarray, sizes: np.ndarray) -> list:
    """:func:`to_rle` of every segmentation that passes the column checks, ``None`` for the rest.

    ``segmentations[i]`` belongs to image ``image[i]`` of ``sizes`` (``int[I, 2]`` height, width). Compressed RLE
    dicts are returned as they are (as ``to_rle`` does); polygon lists are rasterized in one ``frPyObjects`` call per
    image size, and merged where an object has several (``merge`` of one RLE is that RLE, byte for byte).
    """
    kinds = set(map(type, segmentations))
    if kinds == {dict}:
        out, dicts, polys = list(segmentations), range(len(segmentations)), []
    else:
        out = [None] * len(segmentations)
        dicts = [i for i, s in enumerate(segmentations) if type(s) is dict]
        polys = [i for i, s in enumerate(segmentations) if type(s) is list]
    if dicts and not _compressed(segmentations if kinds == {dict} else [segmentations[i] for i in dicts]):
        for i in dicts:
            out[i] = None
    if kinds == {list}:
        polys = range(len(segmentations))
    if polys:
        _polygons(segmentations, polys, image, sizes, out)
    return out


def _compressed(records: list) -> bool:
    """Whether every record is a compressed RLE with a valid ``size`` (checked per distinct size)."""
    try:
        shapes = set(map(tuple, map(itemgetter("size"), records)))
        counts_types = set(map(type, map(itemgetter("counts"), records)))
    except (KeyError, TypeError):
        return False
    return counts_types <= {str, bytes} and all(_good_size(s) for s in shapes)


def _polygons(segmentations: list, polys, image: np.ndarray, sizes: np.ndarray, out: list) -> None:
    """Rasterize the polygon lists ``segmentations[polys]`` into ``out``, one image size at a time: by the compiled
    kernels (which check the records themselves), else by pycocotools if that size's records pass the column
    checks (those that do not stay ``None`` and go through :func:`to_rle`, which names what is wrong)."""
    poly_idx = np.asarray(polys, dtype=np.int64)
    hw = sizes[image[poly_idx]]
    shapes, which = np.unique(hw, axis=0, return_inverse=True)
    for s, (h, w) in enumerate(shapes.tolist()):
        members = poly_idx[which.reshape(-1) == s].tolist()
        parts = [segmentations[i] for i in members]
        compiled = _rasterizer().polygons(parts, h, w, _CORES) if _rasterizer() is not None else None
        if compiled is not None:  # pycocotools' rleFrPoly, merge and rleToString in C, on threads
            left = [k for k, rle in enumerate(compiled) if rle is None]  # two equal consecutive points
            for k, rle in zip(left, _pycocotools_polygons([parts[k] for k in left], h, w)):
                compiled[k] = rle
        elif _plain_polygons(parts):
            compiled = _pycocotools_polygons(parts, h, w)
        else:
            continue
        for i, rle in zip(members, compiled):
            out[i] = rle


def _plain_polygons(objects: list) -> bool:
    """Whether every object is a non-empty list of polygons of an even number >= 6 of ints and floats."""
    flat = list(chain.from_iterable(objects))
    lengths = list(map(len, flat)) if set(map(type, flat)) <= {list, tuple} else [0]
    return bool(all(objects) and min(lengths, default=0) >= 6 and not any(n % 2 for n in lengths)
                and set(map(type, chain.from_iterable(flat))) <= {int, float})


def _pycocotools_polygons(parts: list, h: int, w: int) -> list:
    """pycocotools' RLE of each object (a list of polygons): one ``frPyObjects`` call, parts merged."""
    if not parts:
        return []
    rles = mask_utils.frPyObjects(list(chain.from_iterable(parts)), h, w)
    out, start = [], 0
    for part in parts:
        out.append(rles[start] if len(part) == 1 else mask_utils.merge(rles[start:start + len(part)]))
        start += len(part)
    return out


def compressed_areas(rles: list | PackedRles, threads: int = 2) -> np.ndarray | None:
    """``float64[N]``: the pixel count of each compressed RLE dict, by the compiled kernels on up to ``threads``
    threads; ``None`` where they were not built or a record is not a compressed RLE dict they take (a ``size`` of
    two integers >= 0, ``counts`` a string pycocotools decodes the ordinary way)."""
    module = _compiled()
    if module is None or type(rles) not in (list, PackedRles):
        return None
    raw = module.areas(rles if type(rles) is list else rles.columns, threads if len(rles) > 10000 else 1)
    return None if raw is None else np.frombuffer(raw, dtype=np.float64).copy()


def rle_areas(rles: list | PackedRles) -> np.ndarray:
    """``float64[N]``: the pixel count of each compressed RLE (pycocotools' ``area``)."""
    if not len(rles):
        return np.zeros(0)
    compiled = compressed_areas(rles)
    if compiled is not None:
        return compiled
    return np.concatenate([mask_utils.area(rles[i:i + _AREA_CHUNK]) for i in range(0, len(rles), _AREA_CHUNK)]
                          ).astype(np.float64)


def mask_iou_pairs(det_rles: list | PackedRles, gt_rles: list, gt_crowd: np.ndarray, pair_det: np.ndarray,
                   pair_gt: np.ndarray, pair_image: np.ndarray, threads: int = 1) -> np.ndarray:
    """Mask IoU of every (detection, ground truth) pair, ``float64[P]``; ``pair_image`` ``int[P]`` is their image.

    With the compiled kernels, one call for all pairs, taken in the order of ``det_rles`` (the order their strings
    lie in memory when it is the records' own order) on ``threads`` threads. Otherwise one ``pycocotools.mask.iou``
    call per image, over the image's paired detections and ground truths (a pair of another category in the same
    image costs pycocotools' box test, and a mask comparison where the boxes overlap). RLEs are compressed; a crowd
    ground truth divides by the detection's area only (pycocotools' crowd rule).
    """
    out = np.empty(len(pair_det))
    if not len(pair_det):
        return out
    if _compiled() is not None and type(det_rles) in (list, PackedRles) and type(gt_rles) is list:
        by_det = np.argsort(pair_det, kind="stable")
        sorted_out = np.empty(len(pair_det))
        packed = det_rles.columns if type(det_rles) is PackedRles else det_rles
        if _compiled().ious(packed, gt_rles, np.ascontiguousarray(gt_crowd, dtype=bool),
                            np.ascontiguousarray(pair_det[by_det], np.int64),
                            np.ascontiguousarray(pair_gt[by_det], np.int64), sorted_out, threads):
            out[by_det] = sorted_out
            return out
    order = np.lexsort((pair_det, pair_image))  # pairs by image, then detection
    image, det, gt = pair_image[order], pair_det[order], pair_gt[order]
    num_d, num_g = int(det.max()) + 1, int(gt.max()) + 1
    det_keys, det_pos = np.unique(image * num_d + det, return_inverse=True)  # (image, detection) pairs in order
    gt_keys, gt_pos = np.unique(image * num_g + gt, return_inverse=True)
    images = image[np.r_[0, np.flatnonzero(np.diff(image)) + 1]]
    pair_start = np.searchsorted(image, images)
    det_start, gt_start = np.searchsorted(det_keys, images * num_d), np.searchsorted(gt_keys, images * num_g)
    bounds = [np.r_[x, n].tolist() for x, n in ((pair_start, len(image)), (det_start, len(det_keys)),
                                                (gt_start, len(gt_keys)))]
    dets, gts = (det_keys % num_d).tolist(), (gt_keys % num_g).tolist()
    crowd = np.ascontiguousarray(gt_crowd, dtype=np.uint8)
    gt_index = gt_keys % num_g
    for j in range(len(images)):
        p0, p1 = bounds[0][j], bounds[0][j + 1]
        d0, d1 = bounds[1][j], bounds[1][j + 1]
        g0, g1 = bounds[2][j], bounds[2][j + 1]
        iou = mask_utils.iou([det_rles[i] for i in dets[d0:d1]], [gt_rles[i] for i in gts[g0:g1]],
                             crowd[gt_index[g0:g1]])
        iou = np.asarray(iou, dtype=np.float64).reshape(d1 - d0, g1 - g0)
        out[order[p0:p1]] = iou[det_pos[p0:p1] - d0, gt_pos[p0:p1] - g0]
    return out
