"""``COCOeval`` and ``Params``: pycocotools' evaluation API over convzoo's vectorized evaluator.

``COCOeval(cocoGt, cocoDt, iouType)`` then ``evaluate()``, ``accumulate()``, ``summarize()`` fill the attributes
pycocotools users read: ``params`` (every field: ``imgIds``, ``catIds``, ``iouThrs``, ``recThrs``, ``maxDets`` of
any length, ``areaRng``, ``areaRngLbl``, ``useCats``, ``kpt_oks_sigmas``), ``eval`` (``precision``, ``recall``,
``scores``, ``counts``), ``evalImgs``, ``ious`` and ``stats``, equal to pycocotools 2.0.11 to the last bit.
``evalImgs`` and ``ious`` are built from the matching when first read.

pycocotools' quirks, reproduced by :class:`PycocotoolsCOCOeval` (what ``init_as_pycocotools`` installs) and
answered better by :class:`COCOeval` (see also :func:`convzoo.evaluation.cocoeval.summary_stats`):

- ``summarize`` reads AP at ``maxDets == 100`` (``-1`` when 100 is not among them), the other rows at
  ``maxDets[2]``, and fails with ``IndexError`` for fewer than 3 ``maxDets``; convzoo reads AP, AP50, AP75 and the
  area rows at the largest ``maxDets`` and AR1/AR10/AR100 at the first three (the last one where there are fewer).
- keypoints with ``useCats=0`` never match (``computeOks`` looks for the category ``-1``); convzoo pools them.
- ``accumulate`` rewrites ``params.catIds`` to ``[-1]`` when ``useCats=0``; convzoo leaves ``params`` alone.
- the precision read-out stops at the first unreachable recall threshold in the given order (only unsorted
  ``recThrs`` can tell); convzoo reads every threshold.
- ``evaluate`` writes ``ignore`` into the ground truth's annotations and replaces segmentations
  by RLEs; convzoo leaves the annotations alone.
"""

from __future__ import annotations

import copy
import datetime
import time
from dataclasses import replace

import numpy as np

from convzoo.evaluation.coco import parse_detections, parse_ground_truth, to_rle
from convzoo.evaluation.cocoeval import DETECTION_STATS, KEYPOINT_SIGMAS, KEYPOINT_STATS, evaluate_coco, summary_rows
from convzoo.evaluation.reading import box_columns


class Params:
    """pycocotools' evaluation parameters, with its defaults for ``bbox``/``segm`` and for ``keypoints``."""

    def __init__(self, iouType: str = "segm") -> None:  # noqa: N803
        if iouType in ("segm", "bbox"):
            self.setDetParams()
        elif iouType == "keypoints":
            self.setKpParams()
        else:
            raise ValueError(f"iouType must be segm, bbox or keypoints, got {iouType!r}")
        self.iouType = iouType
        self.useSegm = None  # deprecated in pycocotools: 1 means segm, 0 bbox

    def _common(self) -> None:
        self.imgIds, self.catIds = [], []
        self.iouThrs = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
        self.recThrs = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
        self.useCats = 1

    def setDetParams(self) -> None:  # noqa: N802
        self._common()
        self.maxDets = [1, 10, 100]
        self.areaRng = [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]]
        self.areaRngLbl = ["all", "small", "medium", "large"]

    def setKpParams(self) -> None:  # noqa: N802
        self._common()
        self.maxDets = [20]
        self.areaRng = [[0**2, 1e5**2], [32**2, 96**2], [96**2, 1e5**2]]
        self.areaRngLbl = ["all", "medium", "large"]
        self.kpt_oks_sigmas = KEYPOINT_SIGMAS.copy()


class COCOeval:
    """pycocotools' ``COCOeval`` over :func:`convzoo.evaluation.evaluate_coco`; convzoo's answers to its quirks."""

    quirks = False

    def __init__(self, cocoGt=None, cocoDt=None, iouType: str = "segm") -> None:  # noqa: N803
        if not iouType:
            print("iouType not specified. use default iouType segm")
            iouType = "segm"  # noqa: N806
        self.cocoGt, self.cocoDt = cocoGt, cocoDt
        self.params = Params(iouType)
        self._paramsEval = {}
        self.eval: dict = {}
        self.stats: np.ndarray | list = []
        self._result = self._parsed = self._eval_imgs = self._ious = None
        if cocoGt is not None:
            self.params.imgIds = sorted(cocoGt.getImgIds())
            self.params.catIds = sorted(cocoGt.getCatIds())

    def evaluate(self) -> None:
        """Match detections to ground truth for every image, category, area range and IoU threshold."""
        tic = time.time()
        print("Running per image evaluation...")
        p = self.params
        if p.useSegm is not None:
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
            print(f"useSegm (deprecated) is not None. Running {p.iouType} evaluation")
        print(f"Evaluate annotation type *{p.iouType}*")
        p.imgIds = list(np.unique(p.imgIds))
        if p.useCats:
            p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self._parsed = self._parse(p)
        if self.quirks:
            self._mutate_ground_truth(p)
        self._result = self._run(p)
        self._eval_imgs = self._ious = None
        self._paramsEval = copy.deepcopy(p)
        print(f"DONE (t={time.time() - tic:0.2f}s).")

    def _parse(self, p: Params) -> tuple:
        gt = parse_ground_truth(self.cocoGt.dataset, p.iouType)
        pending = getattr(self.cocoDt, "pending_boxes", None)
        if pending is not None and p.iouType == "bbox":  # box results still as columns (loadRes from a file)
            image_ids, category_ids, score, boxes = pending
            known = np.isin(image_ids, gt.image_ids) & np.isin(category_ids, gt.category_ids)
            dets = box_columns(image_ids[known], category_ids[known], score[known], boxes[known], gt)
            if dets is not None:  # else the dicts: parse_detections names the record it refuses
                return gt, dets, np.flatnonzero(known) + 1
        known_images, known_cats = set(gt.image_ids), set(gt.category_ids)
        anns = [a for a in self.cocoDt.dataset.get("annotations", [])
                if a["image_id"] in known_images and a["category_id"] in known_cats]  # others are never looked at
        dets = parse_detections(anns, gt, p.iouType)
        if all("area" in a for a in anns):  # the area loadRes measured (a mask's, not its box's)
            dets = replace(dets, area=np.array([a["area"] for a in anns], dtype=np.float64).reshape(-1))
        return gt, dets, np.array([a.get("id", i + 1) for i, a in enumerate(anns)], dtype=np.int64)

    def _run(self, p: Params):
        gt, dets, _ = self._parsed
        known_images, known_cats = set(gt.image_ids), set(gt.category_ids)
        images = [i for i in p.imgIds if i in known_images]
        cats = [c for c in p.catIds if c in known_cats]
        sigmas = getattr(p, "kpt_oks_sigmas", None) if p.iouType == "keypoints" else None
        return evaluate_coco(gt, dets, p.iouType, image_ids=images, category_ids=cats, max_dets=p.maxDets,
                             kpt_sigmas=sigmas, use_categories=bool(p.useCats), iou_thresholds=p.iouThrs,
                             rec_thresholds=p.recThrs, area_ranges=list(zip(p.areaRngLbl, p.areaRng)),
                             pycocotools_quirks=self.quirks, keep_matches=True)

    def _mutate_ground_truth(self, p: Params) -> None:
        """What pycocotools' ``_prepare`` writes into the ground truth (and, for masks, the detections)."""
        anns = self.cocoGt.dataset.get("annotations", [])
        for ann in anns:
            ann["ignore"] = int(bool(ann.get("iscrowd", 0)))
            if p.iouType == "keypoints":
                ann["ignore"] = int(ann["num_keypoints"] == 0 or bool(ann["ignore"]))
        if p.iouType == "segm":
            for coco in (self.cocoGt, self.cocoDt):
                for ann in coco.dataset.get("annotations", []):
                    image = self.cocoGt.imgs[ann["image_id"]]
                    ann["segmentation"] = to_rle(ann["segmentation"], image["height"], image["width"])

    def accumulate(self, p: Params | None = None) -> None:
        """Precision, recall and scores over all images, per IoU threshold, recall threshold, category, area range
        and maxDets, into ``eval``."""
        print("Accumulating evaluation results...")
        tic = time.time()
        if self._result is None:
            raise RuntimeError("Please run evaluate() first")
        p = self.params if p is None else p
        cat_ids = p.catIds if p.useCats else [-1]
        if self.quirks:
            p.catIds = cat_ids
        result = self._result
        pe = self._paramsEval
        same = all(np.array_equal(getattr(p, f), getattr(pe, f)) for f in ("recThrs", "maxDets", "iouThrs",
                                                                           "areaRng", "imgIds", "useCats"))
        if not same or (p.useCats and list(p.catIds) != list(pe.catIds)):
            result = self._run(p)
        shape = (len(p.iouThrs), len(p.recThrs), len(cat_ids), len(p.areaRng), len(p.maxDets))
        precision, scores = -np.ones(shape), -np.ones(shape)
        recall = -np.ones((shape[0], *shape[2:]))
        where = {c: k for k, c in enumerate(cat_ids)}
        k = [where[c] for c in result.category_ids]  # categories without ground truth keep -1
        precision[:, :, k], scores[:, :, k], recall[:, k] = result.precision, result.scores, result.recall
        self.eval = {"params": p, "counts": list(shape), "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                     "precision": precision, "recall": recall, "scores": scores}
        print(f"DONE (t={time.time() - tic:0.2f}s).")

    def summarize(self) -> None:
        """Print the 12 summary lines (10 for keypoints) and store them in ``stats``."""
        if not self.eval:
            raise RuntimeError("Please run accumulate() first")
        p = self.params
        rows = summary_rows(self.eval["precision"], self.eval["recall"], p.iouType, np.asarray(p.iouThrs),
                            p.areaRngLbl, p.maxDets, self.quirks)
        for name, value, max_det in rows:
            print(_line(name, value, max_det, p))
        self.stats = np.array([value for _, value, _ in rows])

    def __str__(self) -> str:
        if not self.eval:
            return f"{type(self).__name__}(iouType={self.params.iouType!r}, not accumulated)"
        rows = summary_rows(self.eval["precision"], self.eval["recall"], self.params.iouType,
                            np.asarray(self.params.iouThrs), self.params.areaRngLbl, self.params.maxDets, self.quirks)
        return "\n".join(_line(name, value, max_det, self.params) for name, value, max_det in rows)

    def computeIoU(self, imgId, catId):  # noqa: N802, N803
        """The IoU matrix of one image and category (after :meth:`evaluate`), as ``ious[imgId, catId]``."""
        return self.ious[imgId, catId]

    computeOks = computeIoU  # noqa: N815 (pycocotools' name for keypoints)

    def evaluateImg(self, imgId, catId, aRng, maxDet):  # noqa: N802, N803
        """One ``evalImgs`` entry (after :meth:`evaluate`): for an evaluated area range and the largest maxDets."""
        p = self._paramsEval
        ranges = [list(r) for r in p.areaRng]
        if list(aRng) not in ranges or maxDet != p.maxDets[-1]:
            raise ValueError(f"evaluateImg answers for the evaluated area ranges {ranges} and maxDet "
                             f"{p.maxDets[-1]}, got {aRng} and {maxDet}")
        cat_ids = list(p.catIds) if p.useCats else [-1]
        k, a, i = cat_ids.index(catId), ranges.index(list(aRng)), list(p.imgIds).index(imgId)
        return self.evalImgs[(k * len(ranges) + a) * len(p.imgIds) + i]

    @property
    def evalImgs(self) -> list:  # noqa: N802
        """Per category, area range and image (that order, flattened): pycocotools' ``evaluateImg`` dict or None."""
        if self._eval_imgs is None and self._result is not None:
            from convzoo.evaluation.pycocoimgs import eval_imgs

            self._eval_imgs = eval_imgs(self._result, self._parsed, self._paramsEval)
        return self._eval_imgs if self._eval_imgs is not None else []

    @property
    def ious(self) -> dict:
        """``{(imgId, catId): float64[D, G]}`` (detections by score, cut at the largest maxDets; ground truth in
        file order), ``[]`` where either side is empty, as pycocotools' ``computeIoU``/``computeOks``."""
        if self._ious is None and self._result is not None:
            from convzoo.evaluation.pycocoimgs import iou_table

            self._ious = iou_table(self._result, self._parsed, self._paramsEval)
        return self._ious if self._ious is not None else {}


class PycocotoolsCOCOeval(COCOeval):
    """:class:`COCOeval` with pycocotools 2.0.11's quirks, as ``init_as_pycocotools`` installs it."""

    quirks = True


def _line(name: str, value: float, max_det: int, p: Params) -> str:
    """One summary line in pycocotools' words."""
    table = {row[0]: row for row in (KEYPOINT_STATS if p.iouType == "keypoints" else DETECTION_STATS)}
    _, ap, iou, area = table[name][:4]
    title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
    iou_text = f"{p.iouThrs[0]:0.2f}:{p.iouThrs[-1]:0.2f}" if iou is None else f"{iou:0.2f}"
    return f" {title:<18} {kind} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_det:>3d} ] = {value:0.3f}"
