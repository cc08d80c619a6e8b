"""pycocotools' per-image output, ``COCOeval.evalImgs`` and ``COCOeval.ious``, rebuilt from convzoo's matching.

Both are built group by group (a group is one image and category, or one image when categories are pooled) from a
:class:`convzoo.evaluation.cocoeval.CocoMatches`: its detections are already in pycocotools' order (score, stable,
cut at the largest ``maxDets``) and its ground truths in file order, so each group is a contiguous slice.
"""

from __future__ import annotations

import numpy as np


def _groups(matches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The groups with a detection or a ground truth, and each one's detection and ground-truth slice bounds."""
    groups = np.union1d(matches.det_group, matches.gt_group)
    dets = np.stack([np.searchsorted(matches.det_group, groups), np.searchsorted(matches.det_group, groups, "right")])
    gts = np.stack([np.searchsorted(matches.gt_group, groups), np.searchsorted(matches.gt_group, groups, "right")])
    return groups, dets.T, gts.T


def _ids(result, gt, p, group: int) -> tuple:
    """(image id, category id) of a group (``-1`` when categories are pooled)."""
    category, image = divmod(int(group), result.matches.num_images)
    category_id = gt.category_ids[category] if p.useCats else -1
    return gt.image_ids[image], category_id


def eval_imgs(result, parsed: tuple, p) -> list:
    """``evalImgs``: for every category of ``p.catIds`` (``[-1]`` pooled), area range and image of ``p.imgIds``
    (flattened in that order), the dict of pycocotools' ``evaluateImg``, or None where the image has neither
    detections nor ground truth of the category.

    The dict: ``image_id``, ``category_id``, ``aRng``, ``maxDet`` (the largest), ``dtIds`` and ``dtScores`` (by
    score), ``gtIds`` (regular ground truth first, then ignored, each in file order), ``dtMatches`` ``[T, D]`` (the
    matched ground truth's id, 0 for none), ``gtMatches`` ``[T, G]`` (the id of the detection that took it, the
    last one for a crowd), ``gtIgnore`` ``[G]`` and ``dtIgnore`` ``[T, D]``.
    """
    gt, dets, det_ids = parsed
    m = result.matches
    cat_ids = list(p.catIds) if p.useCats else [-1]
    num_a, num_i, num_t = len(p.areaRng), len(p.imgIds), len(p.iouThrs)
    where_k = {c: k for k, c in enumerate(cat_ids)}
    where_i = {i: n for n, i in enumerate(p.imgIds)}
    out: list = [None] * (len(cat_ids) * num_a * num_i)
    groups, d_bounds, g_bounds = _groups(m)
    for group, (d0, d1), (g0, g1) in zip(groups.tolist(), d_bounds.tolist(), g_bounds.tolist()):
        image_id, category_id = _ids(result, gt, p, group)
        k, i = where_k[category_id], where_i[image_id]
        det_rows, gt_rows = m.det_index[d0:d1], m.gt_index[g0:g1]
        dt_ids, gt_ids = det_ids[det_rows], gt.ids[gt_rows]
        dt_scores = dets.score[det_rows].tolist()
        gt_dtype = np.int64 if g1 > g0 else np.float64  # pycocotools' np.array of 0/1 flags, or of nothing
        for a in range(num_a):
            ignore = m.gt_ignore[a, g0:g1]
            by_ignore = np.argsort(ignore, kind="stable")  # regular ground truth first, as evaluateImg sorts it
            slot = np.empty(len(by_ignore), dtype=np.int64)
            slot[by_ignore] = np.arange(len(by_ignore))
            taken = m.matched_gt[:, a, d0:d1]  # [T, D] global ground-truth positions, -1 for none
            hit = taken >= 0
            local = np.where(hit, taken - g0, 0)
            dt_matches = np.where(hit, gt_ids[local] if len(gt_ids) else 0, 0).astype(np.float64)
            dt_ignore = (hit & ignore[local] if len(gt_ids) else hit) | ((dt_matches == 0) & m.det_outside[a, d0:d1])
            gt_matches = np.zeros((num_t, g1 - g0))
            t, d = np.nonzero(hit)
            order = np.argsort(d, kind="stable")[::-1]  # the last detection wins a crowd region
            cells = t[order] * (g1 - g0) + slot[local[t[order], d[order]]]
            cells, first = np.unique(cells, return_index=True)
            gt_matches.reshape(-1)[cells] = dt_ids[d[order][first]]
            out[k * num_a * num_i + a * num_i + i] = {
                "image_id": image_id, "category_id": category_id, "aRng": p.areaRng[a], "maxDet": p.maxDets[-1],
                "dtIds": dt_ids.tolist(), "gtIds": gt_ids[by_ignore].tolist(), "dtMatches": dt_matches,
                "gtMatches": gt_matches, "dtScores": dt_scores, "gtIgnore": ignore[by_ignore].astype(gt_dtype),
                "dtIgnore": dt_ignore}
    return out


def iou_table(result, parsed: tuple, p) -> dict:
    """``ious``: ``{(imgId, catId): float64[D, G]}`` for every image of ``p.imgIds`` and category of ``p.catIds``
    (``-1`` pooled), ``[]`` where the image has no detection or no ground truth of the category."""
    gt = parsed[0]
    m = result.matches
    cat_ids = list(p.catIds) if p.useCats else [-1]
    table: dict = {(i, c): [] for i in p.imgIds for c in cat_ids}
    pair_det, _, sim = m.pairs
    if not len(pair_det):
        return table
    pair_start = np.searchsorted(pair_det, np.arange(len(m.det_index) + 1))  # detection-major pairs
    groups, d_bounds, g_bounds = _groups(m)
    for group, (d0, d1), (g0, g1) in zip(groups.tolist(), d_bounds.tolist(), g_bounds.tolist()):
        if d1 > d0 and g1 > g0:
            image_id, category_id = _ids(result, gt, p, group)
            table[image_id, category_id] = sim[pair_start[d0]:pair_start[d1]].reshape(d1 - d0, g1 - g0)
    return table
