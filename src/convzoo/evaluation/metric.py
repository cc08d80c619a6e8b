"""``DetectionMetric``: COCO mAP as a streaming metric for training loops (torchmetrics' ``MeanAveragePrecision``
interface), exactly :func:`convzoo.evaluation.evaluate_coco` on everything it was given.

``update(predictions, targets)`` takes torchvision's detection dicts for a batch of images and keeps them as plain
Python (boxes, RLE masks); ``compute()`` builds the COCO ground truth and results of every image seen (on every
process, through the ``reduce`` hook) and evaluates them once, so a streamed evaluation and a batch one are the same
computation. Tensors are read duck-typed, and torch is imported only by :meth:`DetectionMetric.gather_torch`.

With ``ground_truth`` (a data set's COCO dict, as torchvision's ``CocoEvaluator`` takes the data set's COCO api) the
targets give only each image's ``image_id``: images, annotations (crowd regions, original areas and polygons) and
categories come from that dict, and :meth:`compute` is :func:`evaluate_coco` of it and of the results, in the order
the images were seen. That is how the detection task of the training engine evaluates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convzoo.evaluation.adapters import encode_mask, results_from_predictions, to_numpy
from convzoo.evaluation.cocoeval import evaluate_coco

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
AVERAGES = ("macro", "micro")


def _xyxy(boxes, box_format: str) -> np.ndarray:
    """``float64[N, 4]`` ``(x1, y1, x2, y2)`` from boxes in ``box_format``."""
    b = to_numpy(boxes).astype(np.float64).reshape(-1, 4)
    if box_format == "xywh":
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    if box_format == "cxcywh":
        return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    return b


class DetectionMetric:
    """Streaming COCO AP/AR of a detector.

    Args:
        iou_type: ``"bbox"``, ``"segm"`` or both as a tuple (then every key is prefixed ``bbox_`` / ``segm_``).
        box_format: how ``boxes`` come: ``"xyxy"`` (torchvision), ``"xywh"`` or ``"cxcywh"``, absolute pixels.
        iou_thresholds, rec_thresholds: pycocotools' ``iouThrs`` and ``recThrs`` (default 0.5:0.05:0.95, 0:0.01:1).
        max_detection_thresholds: ``maxDets`` (default ``[1, 10, 100]``, ``[20]`` for keypoints); AR is reported
            at each.
        class_metrics: also report ``map_per_class`` and ``mar_{last}_per_class`` (``{label: value}``).
        average: ``"macro"`` (mean over classes, COCO's) or ``"micro"`` (classes pooled, as one class).
        reduce: ``reduce(local_records) -> all_records`` gathers the per-image records of every process before
            ``compute`` (e.g. :meth:`gather_torch` under DDP); default: this process only.
        mask_threshold: predicted mask probabilities at or above it are inside the mask.
        ground_truth: a COCO ground-truth dict; then ``targets[i]`` needs only ``image_id`` (one of its images), and
            results whose category it lacks are dropped (pycocotools ignores them). ``iou_type`` may then also be
            ``"keypoints"``, and every result is evaluated as written (a segm result keeps its box, so its area is
            the box's, as pycocotools' ``loadRes`` reads such a results file).
        category_ids: ``category_ids[label]`` is the category id of a predicted label (default: the label).
        kpt_sigmas: the OKS sigma of each keypoint (default COCO's 17), for ``"keypoints"``.

    After :meth:`compute`, ``evaluations`` holds the :class:`convzoo.evaluation.CocoResult` of each IoU type
    (``.stats``: ``AP``, ``AP50``, ...) and ``results`` the COCO result dicts of every image, every process's.

    ``update`` takes, per image, ``predictions[i]`` with ``boxes`` ``[N, 4]``, ``scores`` ``[N]``, ``labels`` ``[N]``
    (and ``masks`` ``[N, H, W]`` or ``[N, 1, H, W]`` for segm) and ``targets[i]`` with ``boxes``, ``labels``,
    optionally ``iscrowd``, ``area`` (default: the box's, or the mask's for segm) and ``masks``. Labels are the
    category ids; a label seen only in predictions is a category without ground truth (it does not count).
    """

    def __init__(self, *, iou_type: str | Sequence[str] = "bbox", box_format: str = "xyxy",
                 iou_thresholds: Sequence[float] | None = None, rec_thresholds: Sequence[float] | None = None,
                 max_detection_thresholds: Sequence[int] | None = None, class_metrics: bool = False,
                 average: str = "macro", reduce: Callable[[list], list] | None = None,
                 mask_threshold: float = 0.5, ground_truth: dict | None = None,
                 category_ids: Sequence[int] | None = None, kpt_sigmas: Sequence[float] | None = None) -> None:
        self.iou_types = (iou_type,) if isinstance(iou_type, str) else tuple(iou_type)
        known = ("bbox", "segm", "keypoints") if ground_truth is not None else ("bbox", "segm")
        if not self.iou_types or any(t not in known for t in self.iou_types):
            raise ValueError(f"iou_type must be among {known}, got {iou_type!r}")
        if box_format not in BOX_FORMATS:
            raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}")
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        self._given_max_dets = max_detection_thresholds is not None
        self.max_dets = sorted(int(m) for m in (max_detection_thresholds or [1, 10, 100]))
        if not self.max_dets or self.max_dets[0] < 1:
            raise ValueError(f"max_detection_thresholds must be positive integers, got {max_detection_thresholds}")
        for name, values in (("iou_thresholds", iou_thresholds), ("rec_thresholds", rec_thresholds)):
            if values is not None and not (len(values) and all(0 <= v <= 1 for v in values)):
                raise ValueError(f"{name} must be values in [0, 1], got {values}")
        self.box_format, self.class_metrics, self.average = box_format, class_metrics, average
        self.iou_thresholds = None if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64)
        self.rec_thresholds = None if rec_thresholds is None else np.asarray(rec_thresholds, dtype=np.float64)
        self.reduce, self.mask_threshold = reduce, mask_threshold
        self.ground_truth = ground_truth
        self.category_ids = None if category_ids is None else [int(c) for c in category_ids]
        self.kpt_sigmas = None if kpt_sigmas is None else np.asarray(kpt_sigmas, dtype=np.float64)
        if ground_truth is not None:
            self._image_ids = {image["id"] for image in ground_truth["images"]}
            self._known = {c["id"] for c in ground_truth["categories"]}
        self.records: list[dict] = []
        self.evaluations: dict = {}
        self.results: list[dict] = []

    def reset(self) -> None:
        """Forget every image seen."""
        self.records = []

    def update(self, predictions: Sequence[dict], targets: Sequence[dict]) -> None:
        """Add one batch: ``predictions[i]`` and ``targets[i]`` describe the same image."""
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        segm = "segm" in self.iou_types
        if self.ground_truth is not None:
            for prediction, target in zip(predictions, targets):
                self.records.append(self._given_record(prediction, target))
            return
        for prediction, target in zip(predictions, targets):
            for what, record in (("predictions", prediction), ("targets", target)):
                missing = [k for k in ("boxes", "labels", *(("scores",) if what == "predictions" else ()),
                                       *(("masks",) if segm else ())) if k not in record]
                if missing:
                    raise ValueError(f"{what} need {missing} for iou_type {self.iou_types}")
            self.records.append(self._record(prediction, target, segm))

    def _given_record(self, prediction: dict, target: dict) -> dict:
        """One image of ``ground_truth``: its id and its results (every field the prediction has, known ids)."""
        if "image_id" not in target:
            raise ValueError("targets need image_id when the metric has a ground_truth")
        image_id = int(to_numpy(target["image_id"]).reshape(-1)[0])
        if image_id not in self._image_ids:
            raise ValueError(f"image_id {image_id} is not an image of the ground truth")
        for key in ("boxes", "scores", "labels"):
            if key not in prediction:
                raise ValueError(f"predictions need {key!r}")
        results = results_from_predictions([image_id], [prediction], self.category_ids, self.mask_threshold)
        return {"image_id": image_id, "results": [r for r in results if r["category_id"] in self._known]}

    def _record(self, prediction: dict, target: dict, segm: bool) -> dict:
        """One image as plain Python: its COCO annotations and results (image and annotation ids come later)."""
        boxes = _xyxy(target["boxes"], self.box_format)
        labels = to_numpy(target["labels"]).astype(np.int64).reshape(-1).tolist()
        crowd = to_numpy(target["iscrowd"]).reshape(-1).tolist() if "iscrowd" in target else [0] * len(labels)
        masks = to_numpy(target["masks"]) if segm else None
        height, width = (int(s) for s in masks.shape[-2:]) if segm else (0, 0)
        if "area" in target:
            areas = to_numpy(target["area"]).astype(np.float64).reshape(-1).tolist()
        elif segm:
            areas = masks.reshape(len(labels), -1).astype(bool).sum(1).astype(np.float64).tolist()
        else:
            areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).tolist()
        annotations = []
        for g, (box, label) in enumerate(zip(boxes.tolist(), labels)):
            annotation = {"category_id": label, "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                          "area": areas[g], "iscrowd": int(crowd[g])}
            if segm:
                annotation["segmentation"] = encode_mask(masks[g].reshape(height, width))
            annotations.append(annotation)
        pred = {"boxes": _xyxy(prediction["boxes"], self.box_format), "scores": prediction["scores"],
                "labels": prediction["labels"], **({"masks": prediction["masks"]} if segm else {})}
        results = results_from_predictions([0], [pred], self.category_ids, self.mask_threshold)
        if self.category_ids is not None:
            for annotation in annotations:
                annotation["category_id"] = self.category_ids[annotation["category_id"]]
        return {"height": height, "width": width, "annotations": annotations, "results": results}

    def coco(self, records: list[dict] | None = None) -> tuple[dict, list[dict]]:
        """The COCO ground-truth dict and result list of ``records`` (default: this process's), images numbered
        0, 1, ... in order; what :meth:`compute` evaluates."""
        records = self.records if records is None else records
        images, annotations, results, labels = [], [], [], set()
        for image_id, record in enumerate(records):
            images.append({"id": image_id, "height": record["height"], "width": record["width"]})
            for annotation in record["annotations"]:
                annotations.append({**annotation, "id": len(annotations) + 1, "image_id": image_id})
                labels.add(annotation["category_id"])
            for result in record["results"]:
                results.append({**result, "image_id": image_id})
                labels.add(result["category_id"])
        categories = [{"id": c, "name": str(c)} for c in sorted(labels)]
        return {"images": images, "annotations": annotations, "categories": categories}, results

    def compute(self) -> dict:
        """``map``, ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``, ``mar_{m}`` for each of
        the max detection thresholds, ``mar_small``, ``mar_medium``, ``mar_large`` (``-1`` where nothing was
        measurable), and with ``class_metrics`` the per-class values; plain Python floats."""
        records = self.records if self.reduce is None else self.reduce(self.records)
        if self.ground_truth is not None:
            gt, results = self.ground_truth, [r for record in records for r in record["results"]]
        else:
            gt, results = self.coco(records)
        out: dict = {}
        self.evaluations, self.results = {}, results
        for iou_type in self.iou_types:
            if self.ground_truth is not None:  # as written, every field kept
                key = {"segm": "segmentation", "keypoints": "keypoints"}.get(iou_type)
                wanted = results if key is None else [r for r in results if key in r]
            else:
                wanted = results if iou_type == "bbox" else [{k: v for k, v in r.items() if k != "bbox"}
                                                             for r in results]
            evaluation = evaluate_coco(gt, wanted, iou_type, max_dets=None if iou_type == "keypoints" and
                                       not self._given_max_dets else self.max_dets, kpt_sigmas=self.kpt_sigmas,
                                       iou_thresholds=self.iou_thresholds, rec_thresholds=self.rec_thresholds,
                                       use_categories=self.average == "macro")
            self.evaluations[iou_type] = evaluation
            prefix = f"{iou_type}_" if len(self.iou_types) > 1 else ""
            out.update({prefix + key: value for key, value in self._named(evaluation).items()})
        return out

    def _named(self, evaluation) -> dict:
        s = evaluation.stats
        named = {"map": s["AP"], "map_50": s["AP50"], "map_75": s["AP75"], "map_small": s.get("APs", -1.0),
                 "map_medium": s["APm"], "map_large": s["APl"]}
        max_dets = list(evaluation.max_dets)
        for i, m in enumerate(max_dets):
            recall = evaluation.recall[:, :, 0, i]  # [T, K] area "all"
            named[f"mar_{m}"] = float(recall[recall > -1].mean()) if (recall > -1).any() else -1.0
        named.update({"mar_small": s.get("ARs", -1.0), "mar_medium": s["ARm"], "mar_large": s["ARl"]})
        if self.class_metrics and self.average == "macro":
            named["map_per_class"] = evaluation.per_category_ap()
            last = evaluation.recall[:, :, 0, -1]  # [T, K]
            named[f"mar_{max_dets[-1]}_per_class"] = {
                c: float(last[:, k][last[:, k] > -1].mean()) if (last[:, k] > -1).any() else -1.0
                for k, c in enumerate(evaluation.category_ids)}
        return named

    @staticmethod
    def gather_torch(records: list) -> list:
        """A ``reduce`` hook for ``torch.distributed``: every process's records, in rank order (itself when no
        process group is initialized)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return records
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, records)
        return [record for part in gathered for record in part]
