"""Detection-to-ground-truth similarities and pycocotools' greedy matching, vectorized over groups and thresholds.

A *group* is one (image, category) pair. Within a group, detections are in decreasing score order and ground truths
in file order. Similarities are computed for all (detection, ground truth) pairs of a group at once; the greedy
matching then walks the detections of every group in lockstep (step ``p`` handles the ``p``-th candidate of each
group), for all IoU thresholds and area ranges together.
"""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a 1-d array, without the ``numpy.ma`` import (30 ms) that numpy 2's ``unique``
    triggers on its first plain call."""
    values = np.sort(values, kind="stable")
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def group_pairs(det_group: np.ndarray, gt_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (detection, ground truth) index pairs that share a group, detection-major.

    ``det_group`` and ``gt_group`` are ``int64[D]``/``int64[G]`` group keys, each sorted ascending. Returns
    ``(pair_det, pair_gt)``, ``int64[P]`` each: for every detection in order, the ground truths of its group in order.
    """
    start = np.searchsorted(gt_group, det_group, side="left")
    count = np.searchsorted(gt_group, det_group, side="right") - start  # [D] ground truths in each det's group
    pair_det = np.repeat(np.arange(len(det_group)), count)
    offset = np.arange(len(pair_det)) - np.repeat(np.cumsum(count) - count, count)  # position within the group
    return pair_det, np.repeat(start, count) + offset


def box_iou_pairs(det_boxes: np.ndarray, gt_boxes: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """IoU of paired ``(x, y, w, h)`` boxes, ``float64[P, 4]`` each, in the exact float64 arithmetic of pycocotools'
    ``bbIou`` (maskApi.c). For a crowd ground truth the union is the detection's area alone (COCO's crowd rule).
    """
    dx, dy, dw, dh = det_boxes.T
    gx, gy, gw, gh = gt_boxes.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    det_area = dw * dh
    union = np.where(gt_crowd, det_area, det_area + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def oks_pairs(det_kpts: np.ndarray, gt_kpts: np.ndarray, gt_boxes: np.ndarray, gt_area: np.ndarray,
              sigmas: np.ndarray) -> np.ndarray:
    """Object keypoint similarity of paired keypoint sets (COCO keypoint evaluation, pycocotools ``computeOks``).

    ``det_kpts``/``gt_kpts`` are ``float64[P, K, 3]`` ``(x, y, v)``; ``gt_boxes`` ``(x, y, w, h)`` and ``gt_area``
    belong to the ground truth. OKS = mean over labelled keypoints of exp(-d^2 / (2 s^2 (2 sigma)^2)) with
    s^2 = area; a ground truth without labelled keypoints measures the distance to twice its box instead.
    Pairs are grouped by their number of labelled keypoints so the sum runs over the same compressed vector as
    pycocotools' (identical rounding).
    """
    variances = (sigmas * 2) ** 2
    visible = gt_kpts[..., 2] > 0  # [P, K]
    labelled = visible.sum(1)
    xd, yd = det_kpts[..., 0], det_kpts[..., 1]
    x0, y0 = gt_boxes[:, :1] - gt_boxes[:, 2:3], gt_boxes[:, 1:2] - gt_boxes[:, 3:4]
    x1, y1 = gt_boxes[:, :1] + gt_boxes[:, 2:3] * 2, gt_boxes[:, 1:2] + gt_boxes[:, 3:4] * 2
    outside_x = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
    outside_y = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
    dx = np.where(labelled[:, None] > 0, xd - gt_kpts[..., 0], outside_x)
    dy = np.where(labelled[:, None] > 0, yd - gt_kpts[..., 1], outside_y)
    e = (dx**2 + dy**2) / variances / (gt_area[:, None] + np.spacing(1)) / 2  # [P, K]
    out = np.empty(len(e))
    for n in np.unique(labelled).tolist():
        rows = np.flatnonzero(labelled == n)
        chosen = np.exp(-e[rows][visible[rows]].reshape(len(rows), n)) if n else np.exp(-e[rows])
        out[rows] = chosen.sum(1) / chosen.shape[1]
    return out


def greedy_match(sim: np.ndarray, cand_group: np.ndarray, gt_crowd: np.ndarray,
                 gt_ignore: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' ``evaluateImg`` matching for many groups at once.

    ``sim`` is ``float64[C, H]``: one row per candidate detection (groups contiguous, each in decreasing score order),
    one column per ground-truth slot of its group (``-1`` for padding). ``cand_group`` is ``int64[C]`` (ascending),
    ``gt_crowd`` ``bool[B, H]`` and ``gt_ignore`` ``bool[B, A, H]`` per group (``B`` groups, ``A`` area ranges).

    Rule, for each threshold t and area range: a detection takes, among the ground truths not yet taken (crowds can
    be taken again) with similarity >= t, the one with the highest similarity, preferring any regular ground truth
    over an ignored one; ties go to the later ground truth (pycocotools scans them in order and keeps ``>=``).
    Returns ``(hit bool[C, T, A], slot int32[C, T, A], slot_ignored bool[C, T, A])``.
    """
    num_groups, areas, width = gt_ignore.shape
    thr = np.minimum(thresholds, 1 - 1e-10)[None, :, None, None]  # pycocotools caps t below 1
    starts = np.searchsorted(cand_group, np.arange(num_groups))
    counts = np.diff(np.r_[starts, len(cand_group)])
    order = np.argsort(-counts, kind="stable")  # busiest groups first: step p touches a prefix
    starts, counts = starts[order], counts[order]
    crowd, ignore = gt_crowd[order][:, None, None, :], gt_ignore[order][:, None, :, :]  # [B, 1, 1|A, H]
    taken = np.zeros((num_groups, len(thresholds), areas, width), dtype=bool)
    hit = np.zeros((len(sim), len(thresholds), areas), dtype=bool)
    slot = np.zeros(hit.shape, dtype=np.int32)  # a position among the group's H slots (int32: half the memory)
    for p in range(int(counts.max(initial=0))):
        n = int(np.count_nonzero(counts > p))
        row = sim[starts[:n] + p][:, None, None, :]  # [n, 1, 1, H]
        ok = (row >= thr) & (~taken[:n] | crowd[:n])  # [n, T, A, H]
        regular = ok & ~ignore[:n]
        allowed = np.where(regular.any(-1, keepdims=True), regular, ok)
        best = width - 1 - np.argmax(np.where(allowed, row, -np.inf)[..., ::-1], axis=-1)  # last maximum, [n, T, A]
        found = allowed.any(-1)
        g, t, a = np.nonzero(found)
        taken[g, t, a, best[g, t, a]] = True
        hit[starts[:n] + p] = found
        slot[starts[:n] + p] = best
    slot_ignored = np.take_along_axis(np.broadcast_to(gt_ignore[cand_group][:, None], (*hit.shape, width)),
                                      slot[..., None], axis=-1)[..., 0] & hit
    return hit, slot, slot_ignored


def match_detections(sim: np.ndarray, pair_det: np.ndarray, pair_gt: np.ndarray, g_group: np.ndarray,
                     g_crowd: np.ndarray, g_ignore: np.ndarray, g_ids: np.ndarray, num_dets: int,
                     thresholds: np.ndarray, return_gt: bool = False, compact: bool = False
                     ) -> tuple[np.ndarray, ...]:
    """Greedy matching of every detection at every threshold and area range.

    ``sim``, ``pair_det``, ``pair_gt``: the pairs of :func:`group_pairs` and their similarity; ``g_group`` ``int[G]``,
    ``g_crowd`` ``bool[G]``, ``g_ignore`` ``bool[A, G]`` (per area range), ``g_ids`` ``int[G]`` describe the ground
    truth. Returns ``matched`` (to a ground truth whose id is not 0, as pycocotools reads it) and ``matched_ignored``
    (to an ignored one), ``bool[T, A, num_dets]`` each. Pairs below the lowest threshold can never match, so only the
    remaining candidate pairs enter :func:`greedy_match`, in groups bucketed by their number of ground truths.
    With ``return_gt``, a third array ``int64[T, A, num_dets]`` gives the matched ground truth's index (``-1``: none).
    ``compact``: instead, ``(cands, matched, matched_ignored)`` with ``int64[C]`` the candidate detections (in a pair
    at or above the lowest threshold, ascending) and ``bool[T, A, C]`` their columns (every other detection matches
    nothing): ``C`` is a fraction of ``num_dets``, and so is the memory.
    """
    keep = sim >= min(thresholds.min(initial=1.0), 1 - 1e-10)
    pair_det, pair_gt, sim = pair_det[keep], pair_gt[keep], sim[keep]
    cands, cand_row = np.unique(pair_det, return_inverse=True)  # candidate detections in (group, score) order
    shape = (len(thresholds), g_ignore.shape[0], len(cands) if compact else num_dets)
    matched, matched_ignored = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    matched_gt = np.full(shape, -1, dtype=np.int64) if return_gt else None
    out = (cands, matched, matched_ignored) if compact else (matched, matched_ignored, matched_gt) if return_gt else (
        matched, matched_ignored)
    if not len(sim):
        return out
    gts = sorted_unique(pair_gt)  # ground truths that some detection could match, in (group, file) order
    group_of_gt = np.unique(g_group[gts], return_inverse=True)[1]
    first = np.searchsorted(group_of_gt, np.arange(group_of_gt.max() + 1))
    slot_of_gt = np.empty(pair_gt.max() + 1, dtype=np.int64)
    slot_of_gt[gts] = np.arange(len(gts)) - first[group_of_gt]  # position of the gt within its group's slots
    width_of_group = np.diff(np.r_[first, len(gts)])
    cand_group = group_of_gt[np.searchsorted(gts, pair_gt)][np.r_[0, np.flatnonzero(np.diff(cand_row)) + 1]]
    bucket_of_group = np.ceil(np.log2(np.maximum(width_of_group, 1))).astype(np.int64)  # widths 1, 2, 3-4, 5-8, ...
    for bucket in sorted_unique(bucket_of_group).tolist():
        groups = np.flatnonzero(bucket_of_group == bucket)
        width = int(width_of_group[groups].max())
        local = np.full(group_of_gt.max() + 1, -1)
        local[groups] = np.arange(len(groups))
        rows = np.flatnonzero(local[cand_group] >= 0)
        row_of_cand = np.full(len(cands), -1)
        row_of_cand[rows] = np.arange(len(rows))
        in_bucket = row_of_cand[cand_row] >= 0
        table = np.full((len(rows), width), -1.0)  # [C, H] similarity of each candidate to each gt slot
        table[row_of_cand[cand_row[in_bucket]], slot_of_gt[pair_gt[in_bucket]]] = sim[in_bucket]
        slots = np.full((len(groups), width), -1, dtype=np.int32 if len(g_group) < 2**31 else np.int64)  # [B, H]
        pos = np.flatnonzero(np.isin(group_of_gt, groups))
        slots[local[group_of_gt[pos]], slot_of_gt[gts[pos]]] = gts[pos]
        crowd = np.where(slots >= 0, g_crowd[slots], False)
        ignore = np.where(slots[:, None] >= 0, g_ignore[:, slots].transpose(1, 0, 2), True)  # [B, A, H]
        hit, slot, slot_ignored = greedy_match(table, local[cand_group[rows]], crowd, ignore, thresholds)
        gt_of_match = slots[local[cand_group[rows]]][np.arange(len(rows))[:, None, None], slot]  # [C, T, A]
        det = rows if compact else cands[rows]  # the candidates' columns
        # pycocotools stores the matched gt id and tests it for truth: a match to id 0 reads as no match.
        matched[:, :, det] = (hit & (g_ids[gt_of_match] != 0)).transpose(1, 2, 0)
        matched_ignored[:, :, det] = slot_ignored.transpose(1, 2, 0)
        if return_gt:
            matched_gt[:, :, det] = np.where(hit, gt_of_match, -1).transpose(1, 2, 0)
    return out
