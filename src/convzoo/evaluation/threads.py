"""COCO evaluation on several threads where the compiled core (``_cocoeval.c``, which runs its categories on threads
itself) was not built: the categories split into contiguous groups, each evaluated on its own thread, the tables
joined.

Everything :func:`~convzoo.evaluation.cocoeval.evaluate_coco` computes for a category (matching, the ranking by
score, the accumulation) depends only on that category's ground truth and detections, so evaluating groups of
categories apart and laying their ``precision``, ``recall`` and ``scores`` side by side gives the same tables, and
the same statistics, bit for bit (tested). numpy releases the interpreter lock in its sorts, searches and array
loops, which are most of the work, so the groups run mostly in parallel. Pooled categories (``use_categories=False``)
and ``keep_matches`` are evaluated on one thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from convzoo.evaluation.coco import CocoDetections, CocoGroundTruth
from convzoo.evaluation.cocoeval import CocoResult, evaluate_coco, summary_stats


def category_groups(gt: CocoGroundTruth, dets: CocoDetections, wanted: list, parts: int) -> list[list]:
    """``wanted`` (category ids, in ``gt``'s order) cut into at most ``parts`` contiguous groups of about equal
    numbers of detections plus ground truths (the work of each)."""
    position = {c: k for k, c in enumerate(gt.category_ids)}
    work = np.bincount(dets.category, minlength=len(gt.category_ids)) + np.bincount(
        gt.category, minlength=len(gt.category_ids))
    load = np.cumsum([work[position[c]] for c in wanted])
    if not len(load) or load[-1] == 0:
        return [wanted] if wanted else []
    cuts = np.searchsorted(load, load[-1] * np.arange(1, parts) / parts, side="right")
    bounds = [0, *sorted(set(cuts.tolist()) - {0, len(wanted)}), len(wanted)]
    return [wanted[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def evaluate_threaded(gt: CocoGroundTruth, dets: CocoDetections, iou_type: str, threads: int,
                      category_ids: list | None = None, **options) -> CocoResult:
    """:func:`evaluate_coco` of ``gt`` and ``dets`` (parsed) on up to ``threads`` threads; ``options`` are
    ``evaluate_coco``'s."""
    for key in ("max_dets", "image_ids"):  # read by every group: iterables become lists
        if options.get(key) is not None:
            options[key] = list(options[key])
    if options.get("area_ranges") is not None and not isinstance(options["area_ranges"], dict):
        options["area_ranges"] = list(options["area_ranges"])
    category_ids = None if category_ids is None else list(category_ids)
    given = None if category_ids is None else set(category_ids)
    wanted = [c for c in gt.category_ids if given is None or c in given]
    if given is not None and len(given) != len(wanted):
        return evaluate_coco(gt, dets, iou_type, category_ids=category_ids, **options)  # its error names the id
    groups = category_groups(gt, dets, wanted, threads)
    if len(groups) < 2 or not options.get("use_categories", True) or options.get("keep_matches"):
        return evaluate_coco(gt, dets, iou_type, category_ids=category_ids, **options)
    with ThreadPoolExecutor(len(groups)) as pool:
        parts = list(pool.map(lambda group: evaluate_coco(gt, dets, iou_type, category_ids=group, **options),
                              groups))
    first = parts[0]
    precision = np.concatenate([p.precision for p in parts], axis=2)
    recall = np.concatenate([p.recall for p in parts], axis=1)
    scores = np.concatenate([p.scores for p in parts], axis=2)
    stats = summary_stats(precision, recall, iou_type, first.iou_thresholds, list(first.area_ranges),
                          first.max_dets, options.get("pycocotools_quirks", False))
    counts = {key: sum(p.counts[key] for p in parts) for key in first.counts}
    counts["images"] = first.counts["images"]
    return CocoResult(iou_type, stats, precision, recall, [c for p in parts for c in p.category_ids],
                      [n for p in parts for n in p.category_names], first.area_ranges, first.max_dets, counts,
                      scores, first.iou_thresholds, first.rec_thresholds)
