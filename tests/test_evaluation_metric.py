"""DetectionMetric: streamed batches equal one batch evaluation (and pycocotools), options, the reduce hook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from test_evaluation_coco import random_set
from test_evaluation_pycocotools import REFERENCE, run

from convzoo.evaluation import DetectionMetric, evaluate_coco

SRC = Path(__file__).resolve().parents[1] / "src"


def torchvision_dicts(gt: dict, dets: list, masks: bool = False) -> tuple[list, list]:
    """The COCO set as torchvision's per-image prediction and target dicts (xyxy tensors), image by image."""
    predictions, targets = [], []
    for image in gt["images"]:
        size = (image["height"], image["width"])
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        found = [d for d in dets if d["image_id"] == image["id"]]
        xyxy = lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]  # noqa: E731
        target = {"boxes": torch.tensor([xyxy(a["bbox"]) for a in anns], dtype=torch.float64).reshape(-1, 4),
                  "labels": torch.tensor([a["category_id"] for a in anns], dtype=torch.int64),
                  "iscrowd": torch.tensor([a["iscrowd"] for a in anns]),
                  "area": torch.tensor([a["area"] for a in anns], dtype=torch.float64)}
        prediction = {"boxes": torch.tensor([xyxy(d["bbox"]) for d in found], dtype=torch.float64).reshape(-1, 4),
                      "scores": torch.tensor([d["score"] for d in found], dtype=torch.float64),
                      "labels": torch.tensor([d["category_id"] for d in found], dtype=torch.int64)}
        if masks:
            decode = lambda rles, size=size: torch.from_numpy(  # noqa: E731
                np.stack([mask_utils.decode(r) for r in rles]) if rles else np.zeros((0, *size), np.uint8))
            target["masks"] = decode([mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], *size))
                                      if isinstance(a["segmentation"], list) else
                                      mask_utils.frPyObjects(a["segmentation"], *size) if isinstance(
                                          a["segmentation"]["counts"], list) else a["segmentation"] for a in anns])
            prediction["masks"] = decode([mask_utils.merge(mask_utils.frPyObjects(
                [[x, y, x + w, y, x + w, y + h, x, y + h]], *size)) for x, y, w, h in (d["bbox"] for d in found)])
        predictions.append(prediction)
        targets.append(target)
    return predictions, targets


def streamed(metric: DetectionMetric, predictions: list, targets: list, batch: int = 3) -> dict:
    for i in range(0, len(predictions), batch):
        metric.update(predictions[i:i + batch], targets[i:i + batch])
    return metric.compute()


def test_streamed_equals_batch_and_pycocotools():
    gt, dets = random_set(5)
    predictions, targets = torchvision_dicts(gt, dets)
    metric = DetectionMetric(class_metrics=True)
    out = streamed(metric, predictions, targets)
    batch = evaluate_coco(*metric.coco(), "bbox")
    assert out["map"] == batch.stats["AP"] and out["mar_100"] == batch.stats["AR100"]
    assert out["map_per_class"] == batch.per_category_ap()
    reference, _ = run(REFERENCE, *metric.coco(), "bbox")
    assert [out[k] for k in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10",
                             "mar_100", "mar_small", "mar_medium", "mar_large")] == reference.stats.tolist()
    assert all(type(v) is float for k, v in out.items() if not k.endswith("per_class"))
    metric.reset()
    assert metric.records == [] and metric.compute()["map"] == -1


def test_box_formats_micro_average_and_options():
    gt, dets = random_set(6)
    predictions, targets = torchvision_dicts(gt, dets)
    xyxy = streamed(DetectionMetric(), predictions, targets)
    to_cxcywh = lambda b: torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1)  # noqa: E731
    moved = [dict(p, boxes=to_cxcywh(p["boxes"])) for p in predictions]
    moved_targets = [dict(t, boxes=to_cxcywh(t["boxes"])) for t in targets]
    assert streamed(DetectionMetric(box_format="cxcywh"), moved, moved_targets) == pytest.approx(xyxy, abs=1e-12)
    micro = streamed(DetectionMetric(average="micro"), predictions, targets)
    metric = DetectionMetric()
    streamed(metric, predictions, targets)
    assert micro["map"] == evaluate_coco(*metric.coco(), use_categories=False).stats["AP"]
    options = {"iou_thresholds": [0.5, 0.6], "rec_thresholds": np.linspace(0.1, 1, 10),
               "max_detection_thresholds": [2, 20]}
    out = streamed(DetectionMetric(**options), predictions, targets)
    batch = evaluate_coco(*metric.coco(), iou_thresholds=[0.5, 0.6], rec_thresholds=np.linspace(0.1, 1, 10),
                          max_dets=[2, 20])
    assert out["map"] == batch.stats["AP"] and out["mar_2"] == batch.stats["AR1"] and "mar_20" in out
    with pytest.raises(ValueError, match="box_format"):
        DetectionMetric(box_format="yxyx")
    with pytest.raises(ValueError, match="need"):
        DetectionMetric(iou_type="segm").update(predictions[:1], targets[:1])


def test_segm_and_both_types():
    gt, dets = random_set(1, segm=True)
    boxes = random_set(1)[1]  # the same detections with their boxes (masks are those boxes' rectangles)
    predictions, targets = torchvision_dicts(gt, boxes, masks=True)
    out = streamed(DetectionMetric(iou_type=("bbox", "segm")), predictions, targets)
    metric = DetectionMetric(iou_type="segm")
    segm = streamed(metric, predictions, targets)
    assert segm["map"] == out["segm_map"]
    coco_gt, results = metric.coco()
    reference, _ = run(REFERENCE, coco_gt, [{k: v for k, v in r.items() if k != "bbox"} for r in results], "segm")
    assert segm["map"] == reference.stats[0] and segm["mar_100"] == reference.stats[8]


def test_reduce_hook_gathers_every_process():
    gt, dets = random_set(7)
    predictions, targets = torchvision_dicts(gt, dets)
    alone = streamed(DetectionMetric(), predictions, targets)
    ranks = [DetectionMetric(), DetectionMetric()]
    for rank, metric in enumerate(ranks):
        metric.update(predictions[rank::2], targets[rank::2])
    gathered = [*ranks[0].records, *ranks[1].records]
    ranks[0].reduce = lambda records: gathered
    by_rank = [predictions[i] for i in [*range(0, 12, 2), *range(1, 12, 2)]]
    again = streamed(DetectionMetric(), by_rank, [targets[i] for i in [*range(0, 12, 2), *range(1, 12, 2)]])
    assert ranks[0].compute() == again
    assert again.keys() == alone.keys()  # (the values differ a little: image order breaks score ties)
    assert DetectionMetric.gather_torch(ranks[1].records) is ranks[1].records  # no process group: itself


def test_given_ground_truth_equals_evaluate_coco_on_the_results():
    """With the data set's ground truth (the trainer's way), targets give only image ids; labels map to category
    ids, results of a category the ground truth lacks are dropped, and compute() is evaluate_coco exactly."""
    gt, dets = random_set(9, keypoints=3)
    for d in dets:  # a keypoint detector's results have boxes too: the keypoints' extent
        x, y = np.array(d["keypoints"][0::3]), np.array(d["keypoints"][1::3])
        d["bbox"] = [float(x.min()), float(y.min()), float(np.ptp(x)), float(np.ptp(y))]
    dets.insert(0, {**dets[0], "category_id": 99})  # a category the ground truth lacks
    ids = sorted({c["id"] for c in gt["categories"]} | {d["category_id"] for d in dets})  # label -> category id
    predictions = []
    for image in gt["images"]:
        found = [d for d in dets if d["image_id"] == image["id"]]
        predictions.append({
            "boxes": torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in found)],
                                  dtype=torch.float64).reshape(-1, 4),
            "scores": torch.tensor([d["score"] for d in found], dtype=torch.float64),
            "labels": torch.tensor([ids.index(d["category_id"]) for d in found]),
            "keypoints": torch.tensor([d["keypoints"] for d in found], dtype=torch.float64).reshape(len(found), 3, 3)})
    targets = [{"image_id": torch.tensor(image["id"])} for image in gt["images"]]
    sigmas = np.array([0.05, 0.07, 0.1])
    metric = DetectionMetric(iou_type=("bbox", "keypoints"), ground_truth=gt, category_ids=ids, kpt_sigmas=sigmas)
    out = streamed(metric, predictions, targets, batch=5)
    known = [d for d in dets if d["category_id"] in {c["id"] for c in gt["categories"]}]
    assert len(known) < len(dets) and len(metric.results) == len(known)
    for iou_type, kwargs in (("bbox", {}), ("keypoints", {"kpt_sigmas": sigmas})):
        expected = evaluate_coco(gt, known, iou_type, **kwargs).stats
        assert metric.evaluations[iou_type].stats == expected and out[f"{iou_type}_map"] == expected["AP"]
    assert out["keypoints_map_small"] == -1 and "keypoints_mar_20" in out
    with pytest.raises(ValueError, match="image_id"):
        metric.update(predictions[:1], [{"boxes": []}])
    with pytest.raises(ValueError, match="not an image"):
        metric.update(predictions[:1], [{"image_id": 12345}])


def test_evaluation_does_not_import_torch(tmp_path):
    gt = {"images": [{"id": 1, "width": 9, "height": 9}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2],
                                                     "score": 1.0}]))
    code = ("import sys, convzoo.evaluation, convzoo.cli\n"
            f"assert convzoo.cli.main(['eval-detections', '--gt', {str(tmp_path / 'gt.json')!r}, "
            f"'--dets', {str(tmp_path / 'dets.json')!r}, '--json']) == 0\n"
            "m = convzoo.evaluation.DetectionMetric(); m.update([{'boxes': [[0, 0, 2, 2]], 'scores': [1.0], "
            "'labels': [1]}], [{'boxes': [[0, 0, 2, 2]], 'labels': [1]}])\n"
            "assert abs(m.compute()['map'] - 1) < 1e-9\nassert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC), "PATH": ""}, timeout=120)
