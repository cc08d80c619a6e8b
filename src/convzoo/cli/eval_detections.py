"""COCO AP/AR (the numbers pycocotools prints) or PASCAL VOC AP of detections, without torch.

examples:
  convzoo eval-detections --gt instances_val.json --dets detections.json
  convzoo eval-detections --gt instances_val.json --dets keypoints.json --iou-type keypoints --json
  convzoo eval-detections --gt VOC2012/Annotations --dets detections.json --protocol voc07
  convzoo eval-detections --gt instances_val.json --dets detections.json --iou-thrs 0.5,0.75 --max-dets 1,10,300

GT is a COCO ground-truth JSON file or a folder of VOC XML annotations (image ids are then the file stems,
category ids the 1-based positions of the classes: the 20 VOC classes, or the lines of --class-names; a VOC box
xmin..xmax, 1-based inclusive, is the continuous box [xmin - 1, xmax], the convention detections must follow). DETS is a
JSON list of COCO result dicts {"image_id", "category_id", "score", "bbox": [x, y, w, h]}, with "segmentation" or
"keypoints" for those IoU types. Prints the statistics as a table, or as one JSON object with --json.
--iou-thrs, --area-rng and --max-dets are pycocotools' iouThrs, areaRng/areaRngLbl and maxDets; a statistic whose
IoU (0.50, 0.75) or area label (small, medium, large) is not among them reads -1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _iou(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected an IoU in (0, 1], got {text!r}")
    return value


def _iou_thresholds(text: str):
    """``0.5,0.75`` or ``start:stop:step`` (both ends included, as pycocotools' linspace) -> IoU thresholds."""
    import numpy as np

    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not step > 0 or stop < start:
                raise ValueError
            values = np.linspace(start, stop, int(np.round((stop - start) / step)) + 1, endpoint=True)
        else:
            values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IoUs like 0.5,0.75 or 0.5:0.95:0.05, got {text!r}") from None
    if not len(values) or not ((values > 0) & (values <= 1)).all():
        raise argparse.ArgumentTypeError(f"IoU thresholds must lie in (0, 1], got {text!r}")
    return values


def _area_ranges(text: str) -> list[tuple[str, tuple[float, float]]]:
    """``all=0:1e10,small=0:1024`` -> ``[(label, (low, high)), ...]`` in pixels squared."""
    ranges = []
    for part in text.split(","):
        label, _, bounds = part.partition("=")
        try:
            low, high = (float(v) for v in bounds.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected label=low:high[,...], got {part!r}") from None
        if not label or not 0 <= low <= high:
            raise argparse.ArgumentTypeError(f"expected a label and 0 <= low <= high, got {part!r}")
        ranges.append((label, (low, high)))
    return ranges


def _max_dets(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,10,100, got {text!r}")
    return values


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of threads (0: one per CPU core), got {text!r}")
    return value


def available_cores() -> int:
    """The CPU cores this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    parser.add_argument("--iou-thrs", type=_iou_thresholds, default=None,
                        help="COCO protocol: IoU thresholds, 0.5,0.75 or start:stop:step (default: 0.5:0.95:0.05)")
    parser.add_argument("--area-rng", type=_area_ranges, default=None,
                        help="COCO protocol: area ranges label=low:high,... in pixels squared (default: all, small, "
                             "medium, large at 0, 32^2, 96^2, 1e5^2)")
    parser.add_argument("--max-dets", type=_max_dets, default=None,
                        help="COCO protocol: detections kept per image and category (default: 1,10,100; 20 for "
                             "keypoints)")
    parser.add_argument("--class-names", type=Path, default=None,
                        help="VOC folders: a file with one class name per line, category id = line number "
                             "(default: the 20 VOC classes)")
    parser.add_argument("--threads", type=_threads, default=0,
                        help="COCO: evaluate groups of categories on this many threads, the same numbers "
                             "(default 0: one per CPU core this process may use)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, float]:
    # numpy and the evaluator load here, not when the command line is parsed: --help answers at once
    from convzoo.evaluation import evaluate_coco, parse_ground_truth, read_detections, read_json
    from convzoo.evaluation.cocoeval import summary_rows
    from convzoo.evaluation.reading import start_reading
    from convzoo.evaluation.voc import evaluate_voc, read_voc_folder

    coco_file = args.protocol == "coco" and not args.gt.is_dir()
    started = start_reading(args.dets, args.iou_type) if coco_file else None  # read beside the ground truth
    if args.gt.is_dir():
        names = args.class_names.read_text().split() if args.class_names else None
        gt = read_voc_folder(args.gt, names)
    else:
        gt = read_json(args.gt)
    coco_options = {"iou_thresholds": getattr(args, "iou_thrs", None), "area_ranges": getattr(args, "area_rng", None),
                    "max_dets": getattr(args, "max_dets", None)}
    if args.protocol == "coco":
        try:
            gt = parse_ground_truth(gt, args.iou_type)
        except ValueError as error:  # name the file: the message names only the record
            raise ValueError(f"{args.gt}: {error}") from None
        dets = read_detections(args.dets, gt, args.iou_type, started)  # box results straight into arrays
        threads = getattr(args, "threads", 0) or available_cores()
        result = evaluate_coco(gt, dets, args.iou_type, threads=threads, **coco_options)
        metrics, counts = dict(result.stats), result.counts
        rows = summary_rows(result.precision, result.recall, args.iou_type, result.iou_thresholds,
                            list(result.area_ranges), result.max_dets)
        iou_range = f"{result.iou_thresholds[0]:0.2f}:{result.iou_thresholds[-1]:0.2f}"
        lines = [_coco_line(name, value, args.iou_type, max_det, iou_range) for name, value, max_det in rows]
    else:
        if any(v is not None for v in coco_options.values()):
            raise ValueError("--iou-thrs, --area-rng and --max-dets belong to the COCO protocol; "
                             "the VOC protocols take --iou-threshold")
        if args.iou_type != "bbox":
            raise ValueError(f"the VOC protocols evaluate boxes only, not {args.iou_type}")
        dets = read_json(args.dets)
        result = evaluate_voc(gt, dets, args.iou_threshold, use_07_metric=args.protocol == "voc07")
        metrics, counts = result.stats, {"positives": sum(result.num_positives.values()), "detections": len(dets)}
        lines = [f"{name:<24} {value:.4f}" for name, value in metrics.items()]
    if args.json:
        print(json.dumps({"protocol": args.protocol, "iou_type": args.iou_type, "stats": metrics, "counts": counts}))
    else:
        print(f"{args.protocol} {args.iou_type}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print("\n".join(lines))
    return metrics


def _coco_line(name: str, value: float, iou_type: str, max_det: int, iou_range: str) -> str:
    """One line in the words of pycocotools' printout."""
    from convzoo.evaluation.cocoeval import DETECTION_STATS, KEYPOINT_STATS

    rows = {row[0]: row for row in (KEYPOINT_STATS if iou_type == "keypoints" else DETECTION_STATS)}
    _, ap, iou, area = rows[name][:4]
    title = "Average Precision  (AP)" if ap else "Average Recall     (AR)"
    iou_text = iou_range if iou is None else f"{iou:0.2f}"
    return f"{name:<6} {title} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_det:>3d} ] = {value:0.3f}"
