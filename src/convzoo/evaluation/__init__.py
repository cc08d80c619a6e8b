"""Detection evaluation: COCO AP/AR (bbox, segm, keypoints) equal to pycocotools, and PASCAL VOC AP.

In memory: ``evaluate_coco(gt_dict, result_dicts, iou_type="bbox").stats`` (a dict by name, pycocotools' order).
From files: ``evaluate_coco(read_json(gt_path), read_json(dets_path))``.
"""

from convzoo.evaluation.coco import CocoDetections, CocoGroundTruth, parse_detections, parse_ground_truth, read_json
from convzoo.evaluation.cocoeval import CocoResult, evaluate_coco

__all__ = ["CocoDetections", "CocoGroundTruth", "CocoResult", "evaluate_coco", "parse_detections",
           "parse_ground_truth", "read_json"]
