"""The optional compiled core of the COCO evaluation (``_cocoeval.c``): pycocotools' matching and accumulation.

:func:`evaluate_tables` hands the ordered detections and ground truth of :func:`~convzoo.evaluation.evaluate_coco`
to the C core and returns the same ``precision``, ``recall`` and ``scores`` tables as the numpy forms in
``matching.py`` and ``accumulate.py``, bit for bit (tested on every parity case with both). ``setup.py`` builds it
where a C compiler is at hand; :func:`core` is ``None`` elsewhere, and the numpy forms do the work.
"""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _module():
    try:
        from convzoo.evaluation import _cocoeval
    except ImportError:
        return None
    return _cocoeval


def core():
    """The compiled module, or ``None`` where it was not built."""
    return _module()


def _i64(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


def _f64(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def _u8(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=bool)


def evaluate_tables(module, d_idx, d_group, rank, score, area, boxes, g_group, g_crowd, g_ignore, g_ids, g_boxes,
                    sim, iou_thrs, rec_thrs, max_dets, area_lo, area_hi, npig, columns, num_images, quirks,
                    keep_matches=False, threads=1) -> tuple:
    """``(precision, scores float64[T, R, K, A, M], recall float64[T, K, A, M], matched_gt)`` by the C core.

    Detections are the rows ``d_idx`` (``int[D]``) of ``score``, ``area`` (``float64[N]``) and ``boxes``
    (``float64[N, 4]`` ``(x, y, w, h)``), in (group, -score, file) order with ``d_group`` and ``rank`` (position
    within the group); ground truths are in (group, pycocotools') order: ``g_group``, ``g_crowd``, ``g_ignore``
    (``bool[A, G]``), ``g_ids`` and ``g_boxes`` (``float64[G, 4]``). ``sim`` (``float64[P]``, the pairs of
    :func:`~convzoo.evaluation.matching.group_pairs`) or, when ``None``, box IoUs computed by the core. ``npig`` is
    ``int[K, A]``; the tables have one column for each of the categories ``columns`` (``int[K']``, indices into
    ``K``), in that order. ``matched_gt`` (``int64[T, A, D]``, a position in the ground-truth order or ``-1``) only
    with ``keep_matches``, else ``None``. The categories are evaluated on up to ``threads`` threads.
    """
    num_t, num_r, num_m = len(iou_thrs), len(rec_thrs), len(max_dets)
    num_k, num_a = npig.shape
    slot = np.full(num_k, -1, dtype=np.int64)
    slot[columns] = np.arange(len(columns))
    precision = np.full((num_t, num_r, len(columns), num_a, num_m), -1.0)
    scores = np.full(precision.shape, -1.0)
    recall = np.full((num_t, len(columns), num_a, num_m), -1.0)
    matched_gt = np.empty((num_t, num_a, len(d_idx)) if keep_matches else 0, dtype=np.int64)
    use_sim = sim is not None
    nothing = np.zeros(0)
    module.evaluate(_i64(d_idx), _i64(d_group), _i64(rank), _f64(score), _f64(area),
                    nothing if use_sim else _f64(boxes), _i64(g_group), _u8(g_crowd), _u8(g_ignore),
                    _u8(np.asarray(g_ids) != 0), nothing if use_sim else _f64(g_boxes),
                    _f64(sim) if use_sim else nothing, _f64(iou_thrs), _f64(rec_thrs), _i64(max_dets),
                    _f64(area_lo).reshape(-1), _f64(area_hi).reshape(-1), _i64(npig), slot, max(num_images, 1),
                    num_k, len(columns), use_sim, bool(quirks), int(threads), precision, recall, scores, matched_gt)
    return precision, scores, recall, matched_gt if keep_matches else None


def order_detections(module, image, category, score, keep, num_images, num_cats, max_det) -> tuple:
    """``(d_idx, d_group, rank, beyond)``: the detections with ``keep`` in (group, -score, file) order, group =
    ``category * num_images + image``, cut at ``max_det`` per group (``beyond`` of them cut), by the C core."""
    n = len(score)
    d_idx, d_group, rank = (np.empty(n, dtype=np.int64) for _ in range(3))
    count, beyond = module.order(_i64(image), _i64(category), _f64(score), _u8(keep), num_images, num_cats,
                                 int(max_det), d_idx, d_group, rank)
    return d_idx[:count], d_group[:count], rank[:count], beyond
