"""pycocotools' ``accumulate``: precision, recall and scores from the matched detections, many categories at once.

Along each category's detections ranked by score, pycocotools counts tp = matched and not ignored, fp = unmatched
and not ignored (ignored: matched to an ignored gt, or unmatched and outside the area range), and reads the
precision envelope and the score at the first detection reaching each recall threshold. Only matched detections
("candidates") change tp or differ between thresholds, and the envelope only peaks at true positives, so everything
is evaluated at the candidates: fp there is the number of counted detections inside the area range so far minus the
candidates among them. A threshold <= 0 is reached at the first detection, whatever it is.

The categories' candidates lie side by side in one axis (``J``): running sums restart at each category's start,
the first index reaching a recall count is one ``searchsorted`` over all (threshold, area, category) rows made
monotone by offsets, and the envelope is one ``maximum.reduceat`` over the pieces between consecutive thresholds.
Categories are taken in chunks that keep the ``[T, A, J]`` arrays near ``CHUNK`` elements (bounded memory).
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 20  # elements of one [T, A, J] work array (about 8 MB of float64)


def accumulate(tp, busy, columns, outside, order, category, rank, npig, max_dets, rec_thrs, score, quirks) -> tuple:
    """Precision and scores ``float64[T, R, K, A, M]``, recall ``float64[T, K, A, M]``, ``-1`` where no gt.

    ``tp`` (a true positive) and ``busy`` (matched to anything) are ``bool[T, A, C]``, the columns of the detections
    ``columns`` (``int[C]``, ascending; every other detection is matched to nothing), ``outside`` (the detection's
    area is out of range) ``bool[A, D]``; ``order`` sorts detections by category, then score (stable); ``category``,
    ``rank`` (position within its image and category) and ``score`` are given in that order. ``npig`` is
    ``int[K, A]``, the non-ignored ground truths. ``quirks``: pycocotools stops reading the precision at the first
    recall threshold (in the given order) it cannot reach.
    """
    num_t, num_a = tp.shape[:2]
    num_k, num_r = npig.shape[0], len(rec_thrs)
    precision = -np.ones((num_t, num_r, num_k, num_a, len(max_dets)))
    scores = -np.ones((num_t, num_r, num_k, num_a, len(max_dets)))
    recall = -np.ones((num_t, num_k, num_a, len(max_dets)))
    by_value = np.argsort(rec_thrs, kind="stable")  # the envelope is read with the thresholds in ascending order
    thrs = rec_thrs[by_value]
    bounds = np.searchsorted(category, np.arange(num_k + 1))  # each category is one contiguous, score-sorted slice
    where = np.empty(len(order), dtype=np.int32 if len(order) < 2**31 else np.int64)
    where[order] = np.arange(len(order), dtype=where.dtype)  # each detection's position in the sorted order
    useful = np.flatnonzero(busy.any(axis=(0, 1)))  # columns matched at some threshold and area
    by_position = useful[np.argsort(where[columns[useful]])]
    cand = where[columns[by_position]]  # candidate positions in the sorted order, ascending
    tp_c = tp[:, :, by_position]  # [T, A, C]
    busy_c = busy[:, :, by_position] & ~outside[None, :, order[cand]]  # matched and inside: not a false positive
    inside = np.ascontiguousarray(~outside[:, order])  # [A, D]; numpy's running sums are slow on strided input
    valid = npig > 0  # [K, A]
    for m, max_det in enumerate(max_dets):
        kept = rank < max_det  # the first max_det detections of each image and category
        counted = np.zeros((num_a, len(order) + 1), dtype=np.int32)  # counted[:, i]: inside and kept before i
        np.cumsum(inside & kept, axis=1, dtype=np.int32, out=counted[:, 1:])
        sel = np.flatnonzero(kept[cand])
        pos = cand[sel]  # [J] kept candidates, ascending: grouped by category
        seg = np.searchsorted(pos, bounds)  # [K + 1] each category's slice of J
        q = np.zeros((num_t, num_a, num_k, num_r))
        s, reached = np.zeros(q.shape), np.zeros(q.shape, dtype=bool)
        rec = np.zeros((num_t, num_a, num_k))
        per_cat = max(num_t * num_a, 1)
        k0 = 0
        while k0 < num_k:  # chunks of categories, each about CHUNK elements (at least one category)
            k1 = max(int(np.searchsorted(seg, seg[k0] + CHUNK // per_cat, side="right")) - 1, k0 + 1)
            k1 = min(k1, num_k)
            if seg[k1] > seg[k0]:
                _chunk(k0, k1, seg, pos, sel, tp_c, busy_c, counted, bounds, npig, thrs, score, q, s, reached, rec)
            k0 = k1
        first_kept = np.searchsorted(np.flatnonzero(kept), bounds[:-1])  # first kept detection of each category
        kept_pos = np.flatnonzero(kept)
        has_kept = first_kept < len(kept_pos)
        has_kept[has_kept] &= kept_pos[first_kept[has_kept]] < bounds[1:][has_kept]
        at_start = thrs <= 0  # reached by the first detection, counted or not
        if at_start.any() and has_kept.any():
            cats = np.flatnonzero(has_kept)
            reached[:, :, cats[:, None], np.flatnonzero(at_start)] = True
            s[:, :, cats[:, None], np.flatnonzero(at_start)] = score[kept_pos[first_kept[cats]]][:, None]
        q, s, reached = (_unsort(x, by_value) for x in (q, s, reached))  # back to the given order
        if quirks:  # pycocotools stops reading at the first threshold it cannot reach
            reached = np.logical_and.accumulate(reached, axis=-1)
            q, s = np.where(reached, q, 0.0), np.where(reached, s, 0.0)
        cells = valid[None, None]  # [1, 1, K, A]
        precision[..., m] = np.where(cells, q.transpose(0, 3, 2, 1), -1.0)
        scores[..., m] = np.where(cells, s.transpose(0, 3, 2, 1), -1.0)
        recall[..., m] = np.where(valid[None], rec.transpose(0, 2, 1), -1.0)
    return precision, recall, scores


def _chunk(k0, k1, seg, pos, sel, tp_c, busy_c, counted, bounds, npig, thrs, score, q, s, reached, rec) -> None:
    """Fill ``q``, ``s``, ``reached`` ``[T, A, K, R]`` and ``rec`` ``[T, A, K]`` for categories ``k0 .. k1 - 1``."""
    num_t, num_a = tp_c.shape[:2]
    j0, j1 = int(seg[k0]), int(seg[k1])
    lengths = np.diff(seg[k0:k1 + 1])  # [K'] candidates of each category
    cats = np.flatnonzero(lengths) + k0  # categories with candidates, in order
    n_k = lengths[cats - k0]
    cat_of_j = np.repeat(np.arange(len(cats)), n_k)  # [J'] local category of each candidate
    start_of_j = np.repeat(seg[cats] - j0, n_k)  # [J'] its category's first position in the chunk
    cols = sel[j0:j1]
    tp_j = np.ascontiguousarray(tp_c[:, :, cols])  # [T, A, J']
    tp_sum = _segment_cumsum(tp_j, start_of_j)
    busy_sum = _segment_cumsum(np.ascontiguousarray(busy_c[:, :, cols]), start_of_j)
    p = pos[j0:j1]
    fp_sum = (counted[:, p + 1] - counted[:, bounds[cats[cat_of_j]]])[None] - busy_sum
    pr = np.where(tp_j, tp_sum / (fp_sum + tp_sum + np.spacing(1)), 0.0)
    total = npig[cats].T  # [A, K'']
    last = np.cumsum(n_k) - 1  # each category's last candidate
    with np.errstate(divide="ignore", invalid="ignore"):
        rec[:, :, cats] = tp_sum[:, :, last] / total
    n_row = np.tile(n_k, num_t * num_a)  # [rows] segment length of each (t, a, k) row
    first = _first_reaching(tp_sum.reshape(-1), n_row, np.broadcast_to(total, (num_t, *total.shape)).reshape(-1),
                            thrs)  # [rows, R], index within the row's segment (n: not reached)
    seg_start = (np.arange(num_t * num_a)[:, None] * (j1 - j0) + (seg[cats] - j0)[None]).reshape(-1)  # [rows]
    env = _interpolated_precision(pr.reshape(-1), seg_start, n_row, first)
    hit = first < n_row[:, None]
    at = np.minimum(first, n_row[:, None] - 1) + np.tile(seg[cats] - j0, num_t * num_a)[:, None]  # in the chunk
    shape = (num_t, num_a, len(cats), len(thrs))
    q[:, :, cats] = env.reshape(shape)
    reached[:, :, cats] = hit.reshape(shape)
    s[:, :, cats] = np.where(hit, score[p[at]], 0.0).reshape(shape)


def _segment_cumsum(values: np.ndarray, start_of_j: np.ndarray) -> np.ndarray:
    """Running sums along the last axis that restart at each segment (``start_of_j[j]``: the segment's first j)."""
    out = np.zeros((*values.shape[:-1], values.shape[-1] + 1), dtype=np.int32)
    np.cumsum(values, axis=-1, dtype=np.int32, out=out[..., 1:])
    return out[..., 1:] - out[..., start_of_j]


def _unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values[..., j]`` belongs to position ``order[j]``: put it there."""
    out = np.empty_like(values)
    out[..., order] = values
    return out


def _first_reaching(tp_sum: np.ndarray, n_row: np.ndarray, total: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each row, the first index where ``tp_sum / total`` reaches each threshold, ``int64[rows, R]``.

    ``tp_sum`` is the rows' running counts laid end to end (row ``i`` has ``n_row[i]`` entries, each in
    ``0 .. n_row[i]``), ``total`` ``[rows]`` the ground truths. ``n_row[i]`` means not reached. Recall ``c / total``
    is monotone in the integer count ``c``, so each threshold becomes the least count whose float quotient reaches it,
    and one ``searchsorted`` over the rows offset by ``n_row + 1`` each answers all rows.
    """
    n = n_row[:, None]
    total = total.reshape(-1, 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.clip(np.floor(thresholds * total) - 1, 0, n + 1)  # [rows, R], at most a count or two short
        for _ in range(4):
            need += (need / total < thresholds) & (need <= n)
    need = np.minimum(need, n + 1).astype(np.int64)
    value_offset = np.cumsum(n_row + 1) - (n_row + 1)  # [rows] makes the concatenated counts non-decreasing
    index_offset = np.cumsum(n_row) - n_row
    keys = tp_sum + np.repeat(value_offset, n_row)
    return np.searchsorted(keys, need + value_offset[:, None]) - index_offset[:, None]


def _interpolated_precision(pr: np.ndarray, seg_start: np.ndarray, n_row: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``max(pr[row][first[row, r]:])``, or 0 where ``first[row, r] == n_row[row]``: the precision envelope read at
    each recall threshold (pycocotools' backward ``pr[i-1] = max(pr[i-1], pr[i])`` loop, then ``q = pr[inds]``).

    ``pr`` is flat; row ``i`` is ``pr[seg_start[i]:seg_start[i] + n_row[i]]`` and the rows lie end to end in order.
    ``first`` is ``int[rows, R]``, non-decreasing along ``R``. Only the R pieces between consecutive thresholds are
    reduced (one ``reduceat``, each row's pieces led by one from its start so that no piece runs into the next row),
    then their suffix maxima taken, instead of a running maximum over every entry.
    """
    n = n_row[:, None]
    starts = np.concatenate([seg_start[:, None], np.minimum(first, n - 1) + seg_start[:, None]], axis=1)
    pieces = np.maximum.reduceat(pr, starts.reshape(-1)).reshape(len(n_row), -1)[:, 1:]  # max [s_r, s_r+1)
    envelope = np.maximum.accumulate(pieces[:, ::-1], axis=1)[:, ::-1]
    return np.where(first < n, envelope, 0.0)
