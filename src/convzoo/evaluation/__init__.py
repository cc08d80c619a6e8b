"""Detection evaluation: COCO AP/AR (bbox, segm, keypoints) equal to pycocotools, and PASCAL VOC AP.

In memory: ``evaluate_coco(gt_dict, result_dicts, iou_type="bbox").stats`` (a dict by name, pycocotools' order);
a detector's outputs become result dicts with ``results_from_predictions(image_ids, outputs)``.
From files: ``evaluate_coco(read_json(gt_path), read_json(dets_path))``, or, faster for box results (with
msgspec installed), ``gt = parse_ground_truth(read_json(gt_path)); evaluate_coco(gt, read_detections(path, gt))``.
VOC: ``evaluate_voc(read_voc_folder("Annotations"), result_dicts, use_07_metric=True).mean_ap``, or
``voc_mean_ap(gt_dict, result_dicts)``. Boxes are continuous ``(x1, y1, x2, y2)`` pixels everywhere; a VOC XML box
``(xmin, ymin, xmax, ymax)`` reads as ``(xmin - 1, ymin - 1, xmax, ymax)``.
Training loops: ``DetectionMetric`` (``update(predictions, targets)``, ``compute()``, ``reset()``).
Segmentation: ``segmentation_scores(predictions, targets, num_classes)`` (mIoU from one confusion matrix).
pycocotools' API: ``COCO``, ``COCOeval``, ``Params`` (same signatures and outputs); ``init_as_pycocotools()`` puts
them in place of ``pycocotools.coco`` and ``pycocotools.cocoeval``, quirks included.
"""

from convzoo.evaluation.adapters import encode_mask, results_from_predictions
from convzoo.evaluation.coco import (
    CocoDetections,
    CocoGroundTruth,
    parse_detections,
    parse_ground_truth,
)
from convzoo.evaluation.cocoeval import CocoResult, evaluate_coco, summary_stats
from convzoo.evaluation.compat import init_as_pycocotools
from convzoo.evaluation.masks import PackedRles
from convzoo.evaluation.metric import DetectionMetric
from convzoo.evaluation.pycoco import COCO, PycocotoolsCOCO
from convzoo.evaluation.pycocoeval import COCOeval, Params, PycocotoolsCOCOeval
from convzoo.evaluation.reading import read_detections, read_json
from convzoo.evaluation.voc import (
    VocResult,
    evaluate_voc,
    read_voc_folder,
    read_voc_xml,
    voc_ap,
    voc_class_ap,
    voc_mean_ap,
)

__all__ = ["COCO", "COCOeval", "CocoDetections", "CocoGroundTruth", "CocoResult", "DetectionMetric", "PackedRles",
           "Params", "PycocotoolsCOCO", "PycocotoolsCOCOeval", "VocResult", "encode_mask", "evaluate_coco",
           "evaluate_voc", "init_as_pycocotools", "parse_detections", "parse_ground_truth", "read_detections",
           "read_json", "read_voc_folder", "read_voc_xml", "results_from_predictions", "summary_stats", "voc_ap",
           "voc_class_ap", "voc_mean_ap", "confusion_matrix", "scores_from_confusion", "segmentation_scores"]

SEGMENTATION = ("confusion_matrix", "scores_from_confusion", "segmentation_scores")


def __getattr__(name: str):
    """The segmentation scores on first use: they need torch, which ``convzoo eval-detections`` never imports."""
    if name in SEGMENTATION:
        from convzoo.evaluation import segmentation

        return getattr(segmentation, name)
    raise AttributeError(f"module 'convzoo.evaluation' has no attribute {name!r}")
