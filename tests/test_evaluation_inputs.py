"""Malformed input stops with a message naming the record; the eval-detections command end to end."""

from __future__ import annotations

import json

import pytest

from convzoo.cli import main
from convzoo.evaluation import evaluate_coco, read_json


def tiny_gt() -> dict:
    return {"images": [{"id": 1, "height": 50, "width": 60}, {"id": 2, "height": 50, "width": 60}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 30, 10], "area": 300,
                             "iscrowd": 0}]}


def tiny_dets() -> list:
    return [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 2, "category_id": 2, "bbox": [0, 0, 30, 12], "score": 0.8},
            {"image_id": 2, "category_id": 1, "bbox": [5, 5, 5, 5], "score": 0.7}]


def test_tiny_case_by_hand():
    # cat: one exact match. dog: IoU 300/360 = 0.833 -> a hit up to threshold 0.80 (7 of 10 thresholds).
    # The false positive cat box in image 2 scores below the cat hit, so cat AP is 1 at every threshold.
    result = evaluate_coco(tiny_gt(), tiny_dets())
    assert result.per_category_ap() == pytest.approx({1: 1.0, 2: 0.7})
    assert result.stats["AP"] == pytest.approx(0.85) and result.stats["AP50"] == pytest.approx(1.0)  # tp / (tp + eps)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d[1].pop("score"), r"detections\[1\] .* has no field 'score'"),
    (lambda d: d[2].update(image_id=7), r"detections\[2\] .*image_id 7 is not in the ground truth"),
    (lambda d: d[0].update(category_id=5), r"detections\[0\] .*category_id 5 is not in the ground truth"),
    (lambda d: d[1].update(bbox=[1, 2, float("nan"), 4]), r"detections\[1\] .*'bbox' is not finite"),
    (lambda d: d[1].update(bbox=[1, 2, -3, 4]), r"detections\[1\] .*negative bbox width or height"),
    (lambda d: d[2].update(bbox=[1, 2, 3]), r"detections\[2\] .*'bbox' must be 4 numbers"),
    (lambda d: d[0].update(score="high"), r"detections\[0\] .*'score' must be a number"),
    (lambda d: d.append(["not", "a", "dict"]), r"detections\[3\] .* has no field 'image_id'"),
])
def test_bad_detections_name_the_record(change, message):
    dets = tiny_dets()
    change(dets)
    with pytest.raises(ValueError, match=message):
        evaluate_coco(tiny_gt(), dets)


@pytest.mark.parametrize(("change", "message"), [
    (lambda g: g.pop("categories"), "ground truth has no 'categories' list"),
    (lambda g: g["annotations"][1].pop("area"), r"annotations\[1\] .* has no field 'area'"),
    (lambda g: g["annotations"][0].update(area=-1), r"annotations\[0\] .*negative area"),
    (lambda g: g["annotations"][0].update(image_id=9), r"annotations\[0\] .*image_id 9 is not in the ground truth"),
    (lambda g: g["annotations"][1].update(id=1), r"annotations\[1\] .*duplicate id 1"),
    (lambda g: g["images"][1].update(id=1), r"images\[1\] .*duplicate id 1"),
    (lambda g: g["annotations"][1].update(bbox=[0, 0, float("inf"), 1]), r"annotations\[1\] .*'bbox' is not finite"),
])
def test_bad_ground_truth_names_the_record(change, message):
    gt = tiny_gt()
    change(gt)
    with pytest.raises(ValueError, match=message):
        evaluate_coco(gt, tiny_dets())


def test_segm_needs_image_sizes_and_keypoints_need_their_fields():
    gt = tiny_gt()
    gt["images"][0].pop("height")
    for ann in gt["annotations"]:
        ann["segmentation"] = [[0, 0, 10, 0, 10, 10]]
    with pytest.raises(ValueError, match=r"images\[0\] .* has no field 'height'"):
        evaluate_coco(gt, [], "segm")
    with pytest.raises(ValueError, match=r"annotations\[0\] .* has no field 'keypoints'"):
        evaluate_coco(tiny_gt(), [], "keypoints")


def test_cli_table_json_and_errors(tmp_path, capsys):
    (tmp_path / "gt.json").write_text(json.dumps(tiny_gt()))
    (tmp_path / "dets.json").write_text(json.dumps(tiny_dets()))
    assert main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--dets", str(tmp_path / "dets.json")]) == 0
    table = capsys.readouterr().out
    assert "AP     Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.850" in table
    assert main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--dets", str(tmp_path / "dets.json"),
                 "--json", "--protocol", "voc07"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["AP_cat"] == 1.0 and out["stats"]["mAP"] == 1.0
    (tmp_path / "bad.json").write_text("[{")
    assert main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--dets", str(tmp_path / "bad.json")]) == 2
    assert "bad.json is not JSON" in capsys.readouterr().err
    outputs = []
    for threads in ("1", "3", "0"):  # the same numbers on any number of threads
        assert main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--dets", str(tmp_path / "dets.json"),
                     "--json", "--threads", threads]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2]
    with pytest.raises(SystemExit):
        main(["eval-detections", "--gt", str(tmp_path / "gt.json"), "--dets", str(tmp_path / "dets.json"),
              "--threads", "-1"])
    assert "expected a number of threads" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is not JSON"):
        read_json(tmp_path / "bad.json")


def test_cli_voc_folder(shared_data, tmp_path, capsys):
    root = shared_data / "voc2012-sample100"
    dets = []
    for path in sorted((root / "detections_xyxy").glob("*.txt")):
        for line in path.read_text().splitlines():
            label, score, x1, y1, x2, y2 = line.split()
            x1, y1, x2, y2 = float(x1) - 1, float(y1) - 1, float(x2), float(y2)  # to continuous coordinates
            dets.append({"image_id": path.stem, "category_id": int(label) + 1, "score": float(score),
                         "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    args = ["eval-detections", "--gt", str(root / "Annotations"), "--dets", str(tmp_path / "dets.json"), "--json"]
    assert main([*args, "--protocol", "voc"]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["mAP"] == pytest.approx(0.6139, abs=0.01)
    assert main(args) == 0  # COCO protocol on VOC ground truth
    assert 0 < json.loads(capsys.readouterr().out)["stats"]["AP50"] <= 1


def test_results_from_predictions_round_trip():
    import torch

    from convzoo.evaluation import results_from_predictions

    gt = tiny_gt()
    masks = torch.zeros(2, 1, 50, 60)
    masks[0, 0, 10:30, 10:30] = 0.9
    outputs = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0]]), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([0]), "masks": masks[:1]},
               {"boxes": torch.tensor([[0.0, 0.0, 30.0, 10.0]]), "scores": torch.tensor([0.8]),
                "labels": torch.tensor([1]), "masks": masks[1:]}]
    results = results_from_predictions([1, 2], outputs, category_ids=[1, 2])
    assert results[0]["bbox"] == [10.0, 10.0, 20.0, 20.0] and results[1]["category_id"] == 2
    assert evaluate_coco(gt, results).stats["AP"] == pytest.approx(1.0)
    assert results[0]["segmentation"]["size"] == [50, 60]


def test_cli_coco_parameters(tmp_path, capsys):
    (tmp_path / "gt.json").write_text(json.dumps(tiny_gt()))
    (tmp_path / "dets.json").write_text(json.dumps(tiny_dets()))
    base = ["eval-detections", "--gt", str(tmp_path / "gt.json"), "--dets", str(tmp_path / "dets.json")]
    assert main([*base, "--iou-thrs", "0.5:0.7:0.1", "--area-rng", "all=0:1e10,small=0:400",
                 "--max-dets", "1,5,50", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["stats"]
    expected = evaluate_coco(tiny_gt(), tiny_dets(), iou_thresholds=[0.5, 0.6, 0.7], max_dets=[1, 5, 50],
                             area_ranges={"all": (0, 1e10), "small": (0, 400)}).stats
    assert stats == expected and stats["AP75"] == -1 and stats["APm"] == -1  # 0.75 and medium were not asked for
    assert main([*base, "--iou-thrs", "0.5,0.6", "--max-dets", "1,5,50"]) == 0
    assert "IoU=0.50:0.60 | area=   all | maxDets= 50 ]" in capsys.readouterr().out
    for option, value in (("--iou-thrs", "0:1.2"), ("--iou-thrs", "1.5"), ("--area-rng", "all=5:1"),
                          ("--max-dets", "0,10")):
        with pytest.raises(SystemExit):
            main([*base, option, value])
        assert "error" in capsys.readouterr().err
    assert main([*base, "--protocol", "voc", "--max-dets", "10"]) == 2
    assert "belong to the COCO protocol" in capsys.readouterr().err
