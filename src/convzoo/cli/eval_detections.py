"""COCO AP/AR (the numbers pycocotools prints) or PASCAL VOC AP of detections, without torch.

examples:
  convzoo eval-detections --gt instances_val.json --dets detections.json
  convzoo eval-detections --gt instances_val.json --dets keypoints.json --iou-type keypoints --json
  convzoo eval-detections --gt VOC2012/Annotations --dets detections.json --protocol voc07

GT is a COCO ground-truth JSON file or a folder of VOC XML annotations (image ids are then the file stems,
category ids the 1-based positions of the classes: the 20 VOC classes, or the lines of --class-names). DETS is a
JSON list of COCO result dicts {"image_id", "category_id", "score", "bbox": [x, y, w, h]}, with "segmentation" or
"keypoints" for those IoU types. Prints the statistics as a table, or as one JSON object with --json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from convzoo.evaluation import evaluate_coco, read_json
from convzoo.evaluation.cocoeval import DETECTION_STATS, KEYPOINT_STATS
from convzoo.evaluation.voc import evaluate_voc, read_voc_folder


def _iou(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected an IoU in (0, 1], got {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval-detections", help="COCO or VOC average precision of detections",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt", required=True, type=Path, help="COCO ground-truth JSON, or a folder of VOC XML files")
    parser.add_argument("--dets", required=True, type=Path, help="JSON list of COCO result dicts")
    parser.add_argument("--iou-type", choices=("bbox", "segm", "keypoints"), default="bbox",
                        help="what the detections are: boxes, masks or keypoints (default: bbox)")
    parser.add_argument("--protocol", choices=("coco", "voc07", "voc"), default="coco",
                        help="coco: AP@[.5:.95] and the 12 statistics (10 for keypoints); voc07: 11-point AP; "
                             "voc: all-point AP (default: coco)")
    parser.add_argument("--iou-threshold", type=_iou, default=0.5,
                        help="IoU for a true positive, VOC protocols only (default: 0.5)")
    parser.add_argument("--class-names", type=Path, default=None,
                        help="VOC folders: a file with one class name per line, category id = line number "
                             "(default: the 20 VOC classes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, float]:
    if args.gt.is_dir():
        names = args.class_names.read_text().split() if args.class_names else None
        gt = read_voc_folder(args.gt, names)
    else:
        gt = read_json(args.gt)
    dets = read_json(args.dets)
    if args.protocol == "coco":
        result = evaluate_coco(gt, dets, args.iou_type)
        metrics, counts = dict(result.stats), result.counts
        lines = [_coco_line(name, value, args.iou_type) for name, value in metrics.items()]
    else:
        if args.iou_type != "bbox":
            raise ValueError(f"the VOC protocols evaluate boxes only, not {args.iou_type}")
        result = evaluate_voc(gt, dets, args.iou_threshold, use_07_metric=args.protocol == "voc07")
        metrics, counts = result.stats, {"positives": sum(result.num_positives.values()), "detections": len(dets)}
        lines = [f"{name:<24} {value:.4f}" for name, value in metrics.items()]
    if args.json:
        print(json.dumps({"protocol": args.protocol, "iou_type": args.iou_type, "stats": metrics, "counts": counts}))
    else:
        print(f"{args.protocol} {args.iou_type}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print("\n".join(lines))
    return metrics


def _coco_line(name: str, value: float, iou_type: str) -> str:
    """One line in the words of pycocotools' printout."""
    rows = {row[0]: row for row in (KEYPOINT_STATS if iou_type == "keypoints" else DETECTION_STATS)}
    _, ap, iou, area = rows[name][:4]
    max_dets = 20 if iou_type == "keypoints" else (1, 10, 100)[rows[name][4]]
    title = "Average Precision  (AP)" if ap else "Average Recall     (AR)"
    iou_text = "0.50:0.95" if iou is None else f"{iou:0.2f}"
    return f"{name:<6} {title} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] = {value:0.3f}"
