"""COCO average precision and recall (bbox, segm, keypoints), numerically identical to pycocotools' ``COCOeval``.

The protocol (Lin et al., "Microsoft COCO", 2014; pycocotools ``cocoeval.py``): per (image, category) keep the
``max_dets[-1]`` highest-scoring detections, match them greedily to ground truth at each IoU threshold 0.50:0.05:0.95
and each area range, then per category sort all detections by score, integrate precision at the 101 recall
thresholds 0:0.01:1 using the monotone precision envelope, and average. ``-1`` marks settings without ground truth.

Quirks reproduced on purpose: stable sorts on ``-score`` (ties keep image order, then file order); ground truth
areas come from the ``area`` field; crowd regions match any number of detections with IoU = intersection / detection
area; unmatched detections outside an area range are ignored for that range; a match to a ground truth whose id is 0
counts as unmatched (pycocotools stores matches as ids and tests them for truth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from convzoo.evaluation import compiled
from convzoo.evaluation.accumulate import accumulate
from convzoo.evaluation.coco import (
    CocoDetections,
    CocoGroundTruth,
    parse_detections,
    parse_ground_truth,
    start_mask_areas,
)
from convzoo.evaluation.masks import mask_iou_pairs
from convzoo.evaluation.matching import box_iou_pairs, group_pairs, match_detections, oks_pairs

# pycocotools' Params: linspace, not arange (arange drifts above the true values).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0**2, 1e5**2), "small": (0**2, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}
KEYPOINT_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
                            0.89, 0.89]) / 10.0  # COCO's 17 person keypoints, nose first
# (name, AP or AR, IoU threshold or None for the mean, area range, index into max_dets); pycocotools' summarize().
DETECTION_STATS = [("AP", 1, None, "all", 2), ("AP50", 1, 0.5, "all", 2), ("AP75", 1, 0.75, "all", 2),
                   ("APs", 1, None, "small", 2), ("APm", 1, None, "medium", 2), ("APl", 1, None, "large", 2),
                   ("AR1", 0, None, "all", 0), ("AR10", 0, None, "all", 1), ("AR100", 0, None, "all", 2),
                   ("ARs", 0, None, "small", 2), ("ARm", 0, None, "medium", 2), ("ARl", 0, None, "large", 2)]
KEYPOINT_STATS = [("AP", 1, None, "all"), ("AP50", 1, 0.5, "all"), ("AP75", 1, 0.75, "all"), ("APm", 1, None, "medium"),
                  ("APl", 1, None, "large"), ("AR", 0, None, "all"), ("AR50", 0, 0.5, "all"),
                  ("AR75", 0, 0.75, "all"), ("ARm", 0, None, "medium"), ("ARl", 0, None, "large")]


@dataclass
class CocoMatches:
    """What the matching decided, kept by ``evaluate_coco(..., keep_matches=True)`` for pycocotools' per-image
    output (``COCOeval.evalImgs`` and ``ious``).

    Detections are the rows ``det_index`` of the parsed detections, in (group, -score, file) order and cut at the
    largest ``max_dets`` per group; ground truths the rows ``gt_index`` in (group, category, file) order. A group is
    ``category * num_images + image`` (``category`` 0 for every row when categories are pooled). ``matched_gt`` is
    ``int64[T, A, D]``, a position in ``gt_index`` or ``-1``; ``pairs`` are :func:`group_pairs`' ``(pair_det,
    pair_gt, similarity)``.
    """

    det_index: np.ndarray
    det_group: np.ndarray
    gt_index: np.ndarray
    gt_group: np.ndarray
    gt_ignore: np.ndarray  # bool[A, G]: crowd, no keypoints, or area out of range
    det_outside: np.ndarray  # bool[A, D]: the detection's area is out of range
    matched_gt: np.ndarray
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]
    num_images: int


@dataclass
class CocoResult:
    """The outcome of :func:`evaluate_coco`.

    ``stats`` maps the summary names (``AP``, ``AP50``, ... in pycocotools' order) to values, ``-1`` where nothing
    was measurable; ``precision`` and ``scores`` are ``float64[T, R, K, A, M]`` and ``recall`` ``float64[T, K, A, M]``
    as in ``COCOeval.eval``. ``counts`` says how many records took part and how many detections were dropped beyond
    ``max_dets`` per (image, category).
    """

    iou_type: str
    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list
    category_names: list[str]
    area_ranges: dict[str, tuple[float, float]]
    max_dets: list[int]
    counts: dict[str, int] = field(default_factory=dict)
    scores: np.ndarray | None = None
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS)
    rec_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS)
    matches: CocoMatches | None = None

    @property
    def stats_list(self) -> list[float]:
        """The statistics in pycocotools' ``COCOeval.stats`` order."""
        return list(self.stats.values())

    def per_category_ap(self) -> dict:
        """AP@[.5:.95] of each category (the first area range, ``all``, and the largest ``max_dets``); ``-1``
        without ground truth."""
        p = self.precision[:, :, :, 0, -1]  # [T, R, K]
        return {c: float(p[:, :, k][p[:, :, k] > -1].mean()) if (p[:, :, k] > -1).any() else -1.0
                for k, c in enumerate(self.category_ids)}


def evaluate_coco(gt: dict | CocoGroundTruth, dets: list | CocoDetections, iou_type: str = "bbox", *,
                  image_ids: list | None = None, category_ids: list | None = None, max_dets: list[int] | None = None,
                  kpt_sigmas: np.ndarray | None = None, use_categories: bool = True,
                  iou_thresholds: np.ndarray | None = None, rec_thresholds: np.ndarray | None = None,
                  area_ranges: dict[str, tuple[float, float]] | list | None = None, pycocotools_quirks: bool = False,
                  keep_matches: bool = False, threads: int = 1) -> CocoResult:
    """COCO evaluation of detections against ground truth, equal to pycocotools' ``COCOeval`` (to the last bit on
    the reference fixtures and on randomized sets).

    Args:
        gt: a COCO ground-truth dict (``images``, ``annotations``, ``categories``) or its parsed form.
        dets: COCO result dicts ``{"image_id", "category_id", "score", "bbox": [x, y, w, h]}`` (or ``segmentation``
            as polygons/RLE, or ``keypoints`` as ``[x1, y1, v1, ...]``), or their parsed form.
        iou_type: ``"bbox"``, ``"segm"`` or ``"keypoints"``.
        image_ids, category_ids: evaluate only these (default: all images and categories of ``gt``).
        max_dets: detections kept per image and category, any number of values (default ``[1, 10, 100]``; ``[20]``
            for keypoints).
        kpt_sigmas: per-keypoint OKS sigmas (default: COCO's 17 person sigmas).
        use_categories: ``False`` pools all categories (class-agnostic, e.g. for proposal recall).
        iou_thresholds, rec_thresholds: pycocotools' ``iouThrs`` (default 0.50:0.05:0.95) and ``recThrs``
            (default 0:0.01:1); recall thresholds in any order.
        area_ranges: ``{label: (low, high)}`` or ``[(label, (low, high)), ...]`` (pycocotools' ``areaRngLbl`` and
            ``areaRng``; default ``all``, ``small``, ``medium``, ``large``, no ``small`` for keypoints).
        pycocotools_quirks: reproduce pycocotools 2.0.11 where it differs (see :func:`summary_stats`; keypoints
            with ``use_categories=False`` never match; the precision read-out stops at the first unreachable recall
            threshold in the given order). Default: convzoo's answers.
        keep_matches: keep the matching in ``result.matches`` (for :class:`convzoo.evaluation.COCOeval`).
        threads: evaluate the categories on this many threads (the C core's own threads; without it, groups of
            categories in :mod:`convzoo.evaluation.threads`); the same numbers.
    """
    started = None
    if iou_type == "segm" and not isinstance(dets, CocoDetections) and not isinstance(gt, CocoGroundTruth):
        started = start_mask_areas(dets)  # the results' mask areas beside the ground truth's polygons
    gt = gt if isinstance(gt, CocoGroundTruth) else parse_ground_truth(gt, iou_type)
    dets = dets if isinstance(dets, CocoDetections) else parse_detections(dets, gt, iou_type, started)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if threads > 1 and compiled.core() is None:  # the C core runs its categories on threads itself
        from convzoo.evaluation.threads import evaluate_threaded

        return evaluate_threaded(gt, dets, iou_type, threads, image_ids=image_ids, category_ids=category_ids,
                                 max_dets=max_dets, kpt_sigmas=kpt_sigmas, use_categories=use_categories,
                                 iou_thresholds=iou_thresholds, rec_thresholds=rec_thresholds,
                                 area_ranges=area_ranges, pycocotools_quirks=pycocotools_quirks,
                                 keep_matches=keep_matches)
    keypoints = iou_type == "keypoints"
    max_dets = sorted(int(m) for m in (max_dets if max_dets is not None else [20] if keypoints else [1, 10, 100]))
    if not max_dets:
        raise ValueError("max_dets needs at least one value")
    iou_thrs = IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    rec_thrs = RECALL_THRESHOLDS if rec_thresholds is None else np.asarray(rec_thresholds, np.float64).reshape(-1)
    for name, values in (("iou_thresholds", iou_thrs), ("rec_thresholds", rec_thrs)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} must be finite numbers, got {values.tolist()}")
    if area_ranges is None:
        area_ranges = {k: v for k, v in AREA_RANGES.items() if not (keypoints and k == "small")}
    ranges = list(area_ranges.items()) if isinstance(area_ranges, dict) else [(k, v) for k, v in area_ranges]
    area_lo, area_hi = (np.array([r[i] for _, r in ranges], dtype=np.float64).reshape(-1, 1) for i in (0, 1))
    wanted_images, wanted_cats = _wanted(gt.image_ids, image_ids, "image"), _wanted(gt.category_ids, category_ids,
                                                                                  "category")
    gt_keep = wanted_images[gt.image] & wanted_cats[gt.category]
    det_keep = wanted_images[dets.image] & wanted_cats[dets.category]
    num_images = len(gt.image_ids)
    num_cats = len(gt.category_ids) if use_categories else 1
    gt_cat = gt.category if use_categories else np.zeros_like(gt.category)
    det_cat = dets.category if use_categories else np.zeros_like(dets.category)

    # Ground truth in (group, category, file) order; detections in (group, -score, category, file) order.
    g_idx = np.flatnonzero(gt_keep)
    g_idx = g_idx[np.lexsort((gt.category[g_idx], gt_cat[g_idx] * num_images + gt.image[g_idx]))]
    module = compiled.core()
    if module is not None and use_categories:
        d_idx, d_group, rank, beyond = compiled.order_detections(module, dets.image, dets.category, dets.score,
                                                                 det_keep, num_images, num_cats, max_dets[-1])
        dense = None  # the C core sorts each category by score itself
    else:
        d_idx, d_group, rank, dense, beyond = _order_numpy(dets, det_keep, det_cat, num_images, use_categories,
                                                           max_dets[-1], module is None)
    g_group = gt_cat[g_idx] * num_images + gt.image[g_idx]
    g_ignore = gt.ignore[g_idx][None] | (gt.area[g_idx] < area_lo) | (gt.area[g_idx] > area_hi)  # [A, G]
    npig = np.zeros((num_cats, len(ranges)), dtype=np.int64)  # non-ignored ground truths per category and area
    np.add.at(npig, gt_cat[g_idx], (~g_ignore).T.astype(np.int64))
    pair_det = pair_gt = sim = core_sim = None
    if module is None or keep_matches or iou_type != "bbox":  # the C core computes box IoUs itself
        pair_det, pair_gt = group_pairs(d_group, g_group)
        if pycocotools_quirks and keypoints and not use_categories:
            # pycocotools' computeOks looks up the pooled category -1 and finds no ground truth: nothing matches.
            never = np.full(len(pair_det), -np.inf)  # the C core reads every pair of a group
            pair_det, pair_gt = pair_det[:0], pair_gt[:0]
        sim = core_sim = _similarity(gt, dets, iou_type, g_idx, d_idx, pair_det, pair_gt, kpt_sigmas, threads)
        if pycocotools_quirks and keypoints and not use_categories:
            core_sim = never
    d_outside = (dets.area[d_idx] < area_lo) | (dets.area[d_idx] > area_hi) if module is None or keep_matches else None
    chosen = np.flatnonzero(wanted_cats) if use_categories else np.zeros(1, dtype=np.int64)
    if module is not None:
        precision, scores, recall, matched_gt = compiled.evaluate_tables(
            module, d_idx, d_group, rank, dets.score, dets.area, dets.boxes, g_group, gt.iscrowd[g_idx], g_ignore,
            gt.ids[g_idx], None if gt.boxes is None else gt.boxes[g_idx], core_sim, iou_thrs, rec_thrs, max_dets,
            area_lo, area_hi, npig, chosen, num_images, pycocotools_quirks, keep_matches, threads)
    else:
        precision, recall, scores, matched_gt = _numpy_tables(
            sim, pair_det, pair_gt, g_group, gt.iscrowd[g_idx], g_ignore, gt.ids[g_idx], d_idx, dense, det_cat, rank,
            d_outside, npig, iou_thrs, rec_thrs, max_dets, dets.score, pycocotools_quirks, keep_matches)
        precision, recall, scores = precision[:, :, chosen], recall[:, chosen], scores[:, :, chosen]
    stats = summary_stats(precision, recall, iou_type, iou_thrs, [k for k, _ in ranges], max_dets,
                          pycocotools_quirks)
    names = [gt.category_names[k] for k in chosen] if use_categories else ["all"]
    cats = [gt.category_ids[k] for k in chosen] if use_categories else [-1]
    counts = {"images": int(wanted_images.sum()), "ground_truths": len(g_idx), "detections": len(d_idx),
              "detections_beyond_max_dets": beyond}
    matches = CocoMatches(d_idx, d_group, g_idx, g_group, g_ignore, d_outside, matched_gt,
                          (pair_det, pair_gt, sim), num_images) if keep_matches else None
    return CocoResult(iou_type, stats, precision, recall, cats, names, dict(ranges), max_dets, counts, scores,
                      iou_thrs, rec_thrs, matches)


def summary_stats(precision: np.ndarray, recall: np.ndarray, iou_type: str, iou_thresholds: np.ndarray,
                  area_labels: list[str], max_dets: list[int], pycocotools_quirks: bool = False) -> dict[str, float]:
    """The 12 (10 for keypoints) summary numbers of pycocotools' ``summarize`` from ``precision`` and ``recall``.

    Each is the mean of the measured cells (``> -1``), ``-1`` if none, or if its IoU threshold (0.5, 0.75) or its
    area label is not among those evaluated. convzoo reads AP and the area rows at the largest ``max_dets`` and the
    three AR rows at ``max_dets[0]``, ``[1]``, ``[2]`` (the last one where there are fewer). pycocotools 2.0.11
    (``pycocotools_quirks``) reads AP at ``maxDets == 100`` (``-1`` when 100 is not among them) and the other rows
    at ``maxDets[2]`` (not the largest when there are more than 3), the keypoint rows at 20, and needs at least
    three ``max_dets`` for boxes and masks (``IndexError``).
    """
    return {name: value for name, value, _ in summary_rows(precision, recall, iou_type, iou_thresholds, area_labels,
                                                            max_dets, pycocotools_quirks)}


def summary_rows(precision: np.ndarray, recall: np.ndarray, iou_type: str, iou_thresholds: np.ndarray,
                 area_labels: list[str], max_dets: list[int], pycocotools_quirks: bool = False) -> list[tuple]:
    """:func:`summary_stats` as ``(name, value, max_dets it was read at)`` rows, in pycocotools' order."""
    keypoints = iou_type == "keypoints"
    table = KEYPOINT_STATS if keypoints else [(n, ap, t, a) for n, ap, t, a, _ in DETECTION_STATS]
    positions = [len(max_dets) - 1] * len(table) if keypoints else [row[-1] for row in DETECTION_STATS]
    if pycocotools_quirks:
        at = [20] * len(table) if keypoints else [100 if row[0] == "AP" else max_dets[i]
                                                  for row, i in zip(table, positions)]
    else:  # AR1, AR10, AR100 at their own max_dets; everything else at the largest
        at = [max_dets[min(i, len(max_dets) - 1)] if row[0][:2] == "AR" and row[0][2:].isdigit() else max_dets[-1]
              for row, i in zip(table, positions)]
    return [(name, _summarize(precision if ap else recall, thr, area, iou_thresholds, area_labels, max_dets, m), m)
            for (name, ap, thr, area), m in zip(table, at)]


def _wanted(table: list, ids: list | None, what: str) -> np.ndarray:
    """``bool[len(table)]``: which of the ground truth's ids to evaluate (all when ``ids`` is None)."""
    if ids is None:
        return np.ones(len(table), dtype=bool)
    lookup = {v: i for i, v in enumerate(table)}
    unknown = [i for i in ids if i not in lookup]
    if unknown:
        raise ValueError(f"{len(unknown)} {what} ids to evaluate are not in the ground truth, e.g. {unknown[0]!r}")
    wanted = np.zeros(len(table), dtype=bool)
    wanted[[lookup[i] for i in ids]] = True
    return wanted


def _order_numpy(dets, det_keep, det_cat, num_images, use_categories, max_det, need_dense) -> tuple:
    """``(d_idx, d_group, rank, dense, beyond)``: the detections with ``det_keep`` in (group, -score, category,
    file) order, cut at ``max_det`` per group (``beyond`` of them); ``dense`` ranks equal scores equal (for the
    numpy accumulation's sort, with ``need_dense``)."""
    d_idx = np.flatnonzero(det_keep)
    det_group_all = det_cat * num_images + dets.image
    # One sort by score serves both orders: ``ordinal`` (ties in file order) and ``dense`` (ties equal) are integer
    # keys that combine with the group or the category into one single-key sort, cheaper than a lexsort.
    by_score = np.argsort(-dets.score[d_idx], kind="stable")
    ordinal, dense = np.empty(len(d_idx), dtype=np.int64), np.zeros(len(d_idx), dtype=np.int64)
    ordinal[by_score] = np.arange(len(d_idx))
    if need_dense:
        sorted_scores = dets.score[d_idx][by_score]
        dense[by_score] = np.cumsum(np.r_[0, sorted_scores[1:] != sorted_scores[:-1]])
        del sorted_scores
    if use_categories:
        by_group = np.argsort(det_group_all[d_idx] * max(len(d_idx), 1) + ordinal)  # unique keys: any sort will do
    else:  # pooled categories: score ties in category order, then file order
        by_group = np.lexsort((dets.category[d_idx], -dets.score[d_idx], det_group_all[d_idx]))
    d_idx, dense = d_idx[by_group], dense[by_group]
    d_group = det_group_all[d_idx]
    del by_score, ordinal, by_group, det_group_all  # 8 bytes a detection each: memory
    rank = np.arange(len(d_idx)) - np.searchsorted(d_group, d_group)  # position within its group
    beyond = int(np.count_nonzero(rank >= max_det))
    kept = rank < max_det
    return d_idx[kept], d_group[kept], rank[kept], dense[kept], beyond


def _numpy_tables(sim, pair_det, pair_gt, g_group, g_crowd, g_ignore, g_ids, d_idx, dense, det_cat, rank, d_outside,
                  npig, iou_thrs, rec_thrs, max_dets, score, quirks, keep_matches) -> tuple:
    """``(precision, recall, scores, matched_gt or None)`` by the numpy forms of the matching and the accumulation
    (where the C core was not built; the same tables)."""
    matched_gt = None
    if keep_matches:  # [T, A, D] each
        matched, matched_ignored, matched_gt = match_detections(
            sim, pair_det, pair_gt, g_group, g_crowd, g_ignore, g_ids, len(d_idx), iou_thrs, return_gt=True)
        cands = np.arange(len(d_idx))
    else:  # [T, A, C]: only the candidates' columns
        cands, matched, matched_ignored = match_detections(
            sim, pair_det, pair_gt, g_group, g_crowd, g_ignore, g_ids, len(d_idx), iou_thrs, compact=True)
    # Per category: score, then image, then position within the image (pycocotools' two stable sorts); d_idx is
    # already in (group, -score, position within the group) order, so a stable sort by (category, -score) suffices.
    order = np.argsort(det_cat[d_idx] * (int(dense.max(initial=0)) + 1) + dense, kind="stable")
    # in place, [T, A, C] bool each: true positives, then matched to anything (= tp | matched_ignored)
    tp = np.logical_and(matched, ~matched_ignored, out=matched)
    busy = np.logical_or(matched_ignored, tp, out=matched_ignored)
    precision, recall, scores = accumulate(tp, busy, cands, d_outside, order, det_cat[d_idx][order], rank[order],
                                           npig, max_dets, rec_thrs, score[d_idx][order], quirks)
    return precision, recall, scores, matched_gt


def _similarity(gt, dets, iou_type, g_idx, d_idx, pair_det, pair_gt, kpt_sigmas, threads=1) -> np.ndarray:
    """Similarity of each pair: box IoU, mask IoU or OKS (``float64[P]``)."""
    gi, di = g_idx[pair_gt], d_idx[pair_det]
    if iou_type == "bbox":
        return box_iou_pairs(dets.boxes[di], gt.boxes[gi], gt.iscrowd[gi])
    if iou_type == "segm":  # the detections in file order: their strings lie in memory in that order
        try:
            return mask_iou_pairs(dets.segmentations, [gt.segmentations[j] for j in g_idx], gt.iscrowd[g_idx], di,
                                  pair_gt, dets.image[di], threads)
        except ValueError as error:  # the compiled kernels name a mask by its position: name the record
            found = re.search(r"RLE counts of (detection|ground truth) (\d+)", str(error))
            if found is None:
                raise
            record = (f"detections[{found[2]}]" if found[1] == "detection" else
                      f"annotations[{int(g_idx[int(found[2])])}]")
            raise ValueError(f"{record}: its RLE counts do not add up to its height x width") from None
    sigmas = KEYPOINT_SIGMAS if kpt_sigmas is None else np.asarray(kpt_sigmas, dtype=np.float64)
    if len(gi) and gt.keypoints.shape[1] != len(sigmas):
        raise ValueError(f"{len(sigmas)} OKS sigmas given for {gt.keypoints.shape[1]} keypoints")
    if not len(gi):
        return np.zeros(0)
    return oks_pairs(dets.keypoints[di], gt.keypoints[gi], gt.boxes[gi], gt.area[gi], sigmas)


def _summarize(values: np.ndarray, iou: float | None, area: str, iou_thresholds: np.ndarray, area_labels: list[str],
               max_dets: list[int], at: int) -> float:
    """One summary number: the mean of the measured cells (``> -1``), ``-1`` if none (pycocotools' _summarize)."""
    if iou is not None:
        values = values[np.flatnonzero(iou == iou_thresholds)]
    a = [i for i, label in enumerate(area_labels) if label == area]
    m = [i for i, d in enumerate(max_dets) if d == at]
    values = values[..., a, :][..., m]
    return float(np.mean(values[values > -1])) if (values > -1).any() else -1.0
