"""The one adapter layer: results from detector outputs, the mask encoder, the VOC reader's convention, voc_mean_ap."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from convzoo.evaluation import (
    encode_mask,
    evaluate_voc,
    read_voc_folder,
    read_voc_xml,
    results_from_predictions,
    voc_class_ap,
    voc_mean_ap,
)

XML = ("<annotation><filename>a.jpg</filename><size><width>20</width><height>10</height></size>"
       "<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax>"
       "<ymax>5</ymax></bndbox></object></annotation>")


def test_encode_mask_round_trip_from_tensor_and_array():
    mask = torch.zeros(7, 5, dtype=torch.bool)
    mask[2:5, 1:4] = True
    rle = encode_mask(mask)
    assert rle["size"] == [7, 5] and isinstance(rle["counts"], str)
    json.dumps(rle)
    np.testing.assert_array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}),
                                  mask.numpy())
    assert encode_mask(mask.numpy().astype(np.float32)) == rle
    with pytest.raises(ValueError, match="expects a mask"):
        encode_mask(np.zeros((1, 7, 5)))


def test_results_from_predictions_are_plain_python():
    outputs = [{"boxes": torch.tensor([[1.0, 2.0, 4.0, 6.0]]), "scores": torch.tensor([0.5]),
                "labels": torch.tensor([2]), "keypoints": torch.ones(1, 2, 3)},
               {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64),
                "keypoints": torch.zeros(0, 2, 3)}]
    results = results_from_predictions(torch.tensor([7, 9]), outputs, category_ids=torch.tensor([0, 11, 12]))
    assert results == [{"image_id": 7, "category_id": 12, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5,
                        "keypoints": [1.0] * 6}]
    assert type(results[0]["image_id"]) is int and type(results[0]["category_id"]) is int
    json.dumps(results)
    with pytest.raises(ValueError, match="2 image ids for 1 predictions"):
        results_from_predictions([1, 2], outputs[:1])


def test_voc_xml_reads_as_continuous_boxes(tmp_path):
    (tmp_path / "a.xml").write_text(XML)
    record = read_voc_xml(tmp_path / "a.xml")
    # 1-based inclusive pixels 1..10 x 2..5 are the continuous box [0, 10] x [1, 5]: 10 x 4 pixels.
    assert record["objects"] == [{"name": "cat", "bbox": [0.0, 1.0, 10.0, 5.0], "difficult": 1}]
    gt = read_voc_folder(tmp_path, ["cat"])
    assert gt["annotations"][0]["bbox"] == [0.0, 1.0, 10.0, 4.0] and gt["annotations"][0]["area"] == 40.0
    assert (record["width"], record["height"]) == (20, 10)


def test_continuous_coordinates_equal_the_devkit_on_its_own_numbers(shared_data):
    # The devkit's +1 widths on the XML's numbers are the continuous widths of the shifted boxes, exactly.
    root = shared_data / "voc2012-sample100"
    gt = read_voc_folder(root / "Annotations")
    raw_gt = json.loads(json.dumps(gt))
    for a in raw_gt["annotations"]:
        a["bbox"] = [a["bbox"][0] + 1, a["bbox"][1] + 1, a["bbox"][2] - 1, a["bbox"][3] - 1]
    raw, continuous = [], []
    for path in sorted((root / "detections_xyxy").glob("*.txt")):
        for line in path.read_text().splitlines():
            label, score, x1, y1, x2, y2 = line.split()
            x1, y1, x2, y2 = map(float, (x1, y1, x2, y2))
            record = {"image_id": path.stem, "category_id": int(label) + 1, "score": float(score)}
            raw.append({**record, "bbox": [x1, y1, x2 - x1, y2 - y1]})
            continuous.append({**record, "bbox": [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1]})
    devkit = evaluate_voc(raw_gt, raw, plus_one=True)
    ours = evaluate_voc(gt, continuous)
    assert ours.ap == devkit.ap
    assert voc_mean_ap(gt, continuous) == ours.mean_ap == pytest.approx(0.6139, abs=0.01)


def test_voc_mean_ap_is_the_mean_of_voc_class_ap():
    rng = np.random.default_rng(0)
    images = [{"id": i, "width": 50, "height": 50} for i in range(6)]
    boxes = rng.uniform(0, 30, (30, 2))
    gt = {"images": images, "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)],
          "annotations": [{"id": i + 1, "image_id": i % 6, "category_id": 1 + i % 2, "bbox": [*boxes[i], 10, 12],
                           "area": 120.0, "iscrowd": int(i % 7 == 0)} for i in range(30)]}
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.uniform()),
                "bbox": list(np.array(a["bbox"]) + rng.normal(0, 2, 4))} for a in gt["annotations"]]
    aps = []
    for c in (1, 2):  # category 3 has no ground truth and does not count
        g = [a for a in gt["annotations"] if a["category_id"] == c]
        d = [r for r in results if r["category_id"] == c]
        xyxy = lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]  # noqa: E731
        aps.append(voc_class_ap(np.array([a["image_id"] for a in g]), np.array([xyxy(a["bbox"]) for a in g]),
                                np.array([bool(a["iscrowd"]) for a in g]), np.array([r["image_id"] for r in d]),
                                np.array([xyxy(r["bbox"]) for r in d]), np.array([r["score"] for r in d]))[0])
    assert voc_mean_ap(gt, results) == pytest.approx(np.mean(aps), abs=1e-15)
    assert np.isnan(voc_mean_ap({**gt, "annotations": []}, []))
