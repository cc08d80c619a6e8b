"""PASCAL VOC average precision: the VOC2007 11-point AP and the VOC2010+ all-point AP, difficult objects ignored.

Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010, section 4.2: detections of a class
are ranked by score; each is a true positive when its IoU with a ground-truth box of the same image is at least 0.5
and that box was not already taken (the best-overlapping box only: if it is taken, the detection is a false
positive); a detection whose best box is ``difficult`` counts neither way, and difficult boxes are not counted in
the recall. AP is then

- VOC2007 (the lecture's definition): the mean over recall r in {0, 0.1, ..., 1} of max(precision at recall >= r);
- VOC2010+: the area under the monotone precision envelope, summed where recall changes.

Coordinates, one convention throughout convzoo: boxes are continuous ``(x1, y1, x2, y2)`` absolute pixels, and a VOC
XML box ``(xmin, ymin, xmax, ymax)`` (1-based, inclusive pixels) is read as ``(xmin - 1, ymin - 1, xmax, ymax)``. The
devkit's ``x2 - x1 + 1`` widths on the XML's numbers are then exactly ``x2 - x1`` (``plus_one=False``, the default);
``plus_one=True`` is there for detections written in the devkit's own inclusive coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from convzoo.evaluation.coco import parse_detections, parse_ground_truth

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


@dataclass
class VocResult:
    """Per-class AP (``nan`` for a class without non-difficult ground truth) and their mean over the other classes."""

    ap: dict[str, float]
    mean_ap: float
    num_positives: dict[str, int]

    @property
    def stats(self) -> dict[str, float]:
        return {"mAP": self.mean_ap, **{f"AP_{name}": value for name, value in self.ap.items()}}


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from the recall and precision after each ranked detection (``float[D]`` each, recall non-decreasing).

    ``use_07_metric``: the VOC2007 11-point interpolation at recall 0, 0.1, ..., 1, with the thresholds of the
    devkit's ``0:0.1:1`` (``np.arange``, so the fourth one is 0.30000000000000004); otherwise VOC2010+'s area under
    the precision envelope.
    """
    recall, precision = np.asarray(recall, dtype=np.float64), np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.arange(0.0, 1.1, 0.1)]
        return float(np.sum(points) / 11.0)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the envelope: best precision at this recall or beyond
    step = np.flatnonzero(mrec[1:] != mrec[:-1])  # where recall changes
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def box_iou_voc(box: np.ndarray, boxes: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """IoU of one ``(x1, y1, x2, y2)`` box with ``float[N, 4]`` boxes: continuous coordinates, or the devkit's
    inclusive pixels (``+ 1`` on every width and height) when ``plus_one``."""
    one = 1.0 if plus_one else 0.0
    iw = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + one, 0.0)
    ih = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + one, 0.0)
    inter = iw * ih
    area = (box[2] - box[0] + one) * (box[3] - box[1] + one)
    areas = (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)
    return inter / (area + areas - inter)


def voc_class_ap(gt_image: np.ndarray, gt_boxes: np.ndarray, gt_difficult: np.ndarray, det_image: np.ndarray,
                 det_boxes: np.ndarray, det_scores: np.ndarray, iou_threshold: float = 0.5,
                 use_07_metric: bool = False, plus_one: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """AP of one class. Ground truth: ``gt_image int[G]``, ``gt_boxes float[G, 4]`` ``(x1, y1, x2, y2)``,
    ``gt_difficult bool[G]``; detections likewise with ``det_scores float[D]``. Returns ``(ap, recall, precision)``,
    ``ap`` is ``nan`` without non-difficult ground truth. Ties in score keep the input order (stable sort).
    """
    num_positives = int(np.count_nonzero(~gt_difficult))
    order = np.argsort(-det_scores, kind="stable")
    by_image = {int(i): np.flatnonzero(gt_image == i) for i in np.unique(gt_image)}
    taken = np.zeros(len(gt_image), dtype=bool)
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, d in enumerate(order.tolist()):
        candidates = by_image.get(int(det_image[d]))
        if candidates is None:
            fp[rank] = 1
            continue
        iou = box_iou_voc(det_boxes[d], gt_boxes[candidates], plus_one)
        best = candidates[int(np.argmax(iou))]
        if iou.max() < iou_threshold:
            fp[rank] = 1
        elif not gt_difficult[best]:
            tp[rank], fp[rank] = (0, 1) if taken[best] else (1, 0)
            taken[best] = True
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / max(num_positives, 1)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(recall, precision, use_07_metric) if num_positives else float("nan")
    return ap, recall, precision


def evaluate_voc(gt: dict, dets: list, iou_threshold: float = 0.5, use_07_metric: bool = False,
                 plus_one: bool = False) -> VocResult:
    """VOC AP of every category of a COCO-style ground-truth dict (see :func:`read_voc_folder`), detections as COCO
    result dicts (``bbox`` as ``[x, y, w, h]``, continuous coordinates). Annotations with ``difficult`` or
    ``iscrowd`` set are ignored (neither a hit nor a miss), as the devkit ignores difficult objects."""
    truth = parse_ground_truth(gt, "bbox")
    found = parse_detections(dets, truth, "bbox")
    difficult = np.array([bool(a.get("difficult", 0)) for a in gt["annotations"]], dtype=bool) | truth.iscrowd
    gt_xyxy = np.concatenate([truth.boxes[:, :2], truth.boxes[:, :2] + truth.boxes[:, 2:]], axis=1)
    det_xyxy = np.concatenate([found.boxes[:, :2], found.boxes[:, :2] + found.boxes[:, 2:]], axis=1)
    ap, positives = {}, {}
    for k, name in enumerate(truth.category_names):
        g, d = truth.category == k, found.category == k
        ap[name] = voc_class_ap(truth.image[g], gt_xyxy[g], difficult[g], found.image[d], det_xyxy[d],
                                found.score[d], iou_threshold, use_07_metric, plus_one)[0]
        positives[name] = int(np.count_nonzero(~difficult[g]))
    measured = [v for v in ap.values() if not np.isnan(v)]
    return VocResult(ap, float(np.mean(measured)) if measured else float("nan"), positives)


def voc_mean_ap(ground_truth: dict, results: list, use_07_metric: bool = False) -> float:
    """The VOC mAP at IoU 0.5 of COCO results against a COCO ground-truth dict: the mean of the per-category AP over
    the categories with (non-difficult, non-crowd) ground truth, continuous coordinates, crowd regions counted as
    difficult; ``nan`` when no category has ground truth. :func:`evaluate_voc` gives the per-category values."""
    return evaluate_voc(ground_truth, results, 0.5, use_07_metric=use_07_metric, plus_one=False).mean_ap


def read_voc_xml(path: str | Path) -> dict:
    """One VOC annotation file: ``{"filename", "width", "height", "objects": [{"name", "bbox", "difficult"}]}``.

    ``bbox`` is continuous ``(x1, y1, x2, y2)`` = ``(xmin - 1, ymin - 1, xmax, ymax)`` of the XML's 1-based
    inclusive pixels (the module's convention); ``difficult`` is 0 or 1.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not VOC XML: {error}") from None
    size = root.find("size")
    objects = []
    for i, obj in enumerate(root.findall("object")):
        box = obj.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            name = obj.find("name").text.strip()
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{path}: object {i} lacks a name or a numeric bndbox") from None
        if not (xmax >= xmin and ymax >= ymin):
            raise ValueError(f"{path}: object {i} ({name}) has xmax < xmin or ymax < ymin: "
                             f"{[xmin, ymin, xmax, ymax]}")
        difficult = (obj.findtext("difficult") or "0").strip()
        if difficult not in ("0", "1"):
            raise ValueError(f"{path}: object {i} ({name}) has <difficult>{difficult}</difficult>, expected 0 or 1")
        objects.append({"name": name, "bbox": [xmin - 1, ymin - 1, xmax, ymax], "difficult": int(difficult)})
    width = int(float(size.findtext("width", 0))) if size is not None else 0
    height = int(float(size.findtext("height", 0))) if size is not None else 0
    return {"filename": root.findtext("filename", path.stem), "width": width, "height": height, "objects": objects}


def read_voc_folder(folder: str | Path, class_names: list[str] | None = None) -> dict:
    """All ``*.xml`` of a VOC ``Annotations`` folder as a COCO ground-truth dict.

    Image ids are the file stems (``"2007_000027"``); category ids are 1-based positions in ``class_names`` (default:
    the 20 VOC classes when every name is one of them, else the sorted names found); boxes are
    :func:`read_voc_xml`'s continuous boxes as ``[x, y, w, h]`` (``w = xmax - xmin + 1`` of the XML's numbers); each
    annotation keeps ``difficult``.
    """
    files = sorted(Path(folder).glob("*.xml"))
    if not files:
        raise ValueError(f"no VOC .xml annotation files in {folder}")
    parsed = {f.stem: read_voc_xml(f) for f in files}
    names = {o["name"] for p in parsed.values() for o in p["objects"]}
    if class_names is None:
        class_names = list(VOC_CLASSES) if names <= set(VOC_CLASSES) else sorted(names)
    unknown = names - set(class_names)
    if unknown:
        raise ValueError(f"{folder}: classes {sorted(unknown)} are not among the class names")
    category = {name: i + 1 for i, name in enumerate(class_names)}
    images, annotations = [], []
    for stem, p in parsed.items():
        images.append({"id": stem, "file_name": p["filename"], "width": p["width"], "height": p["height"]})
        for o in p["objects"]:
            x1, y1, x2, y2 = o["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": stem, "category_id": category[o["name"]],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                                "difficult": o["difficult"]})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]}
