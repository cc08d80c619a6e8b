"""The task layer (``convzoo.tasks``): each task's data, model, losses, evaluation and prediction from its info."""

from __future__ import annotations

import json

import torch
from PIL import Image

from convzoo.tasks import DetectionOptions, create_task, model_task

CPU = torch.device("cpu")


def test_model_task_follows_the_registry():
    assert model_task("resnet18") == "classification"
    assert model_task("spec:C-8-3-1-same,F,H-10") == "classification"
    assert model_task("mask_rcnn_r50_fpn") == "detection"


def test_classification_task_end_to_end_from_info(tmp_path, one_thread):
    task = create_task("spec:CB-8-3-1-same,M-2-2,F,H-32", "digits")
    data = task.load_data()
    assert data.info["input_size"] == [1, 8, 8] and data.info["preprocess"]["kind"] == "tensor"
    model = task.build_model(json.loads(json.dumps(data.info)))  # the info survives JSON (config.json)
    losses, tallies = task.train_step(model, task.to_device(task.collate(data.train.__getitems__(range(16))), CPU))
    assert set(losses) == {"loss"} and int(tallies["count"]) == 16
    metrics = task.evaluate(model, data.dev, CPU, out=tmp_path, split="dev", info=data.info)
    assert metrics["count"] == len(data.dev) and 0 <= metrics["accuracy"] <= 1
    assert (tmp_path / "confusion_dev.png").is_file()
    # a test image written as a PNG gets the same class from predict_files as from the test split's tensors
    Image.fromarray(data.test.images[0, 0].numpy()).save(tmp_path / "digit.png")
    top = task.predict_files(model, data.info, [str(tmp_path / "digit.png")], CPU, top=1)[str(tmp_path / "digit.png")]
    model.eval()
    expected = model(data.test[0][0][None]).argmax(1).item()
    assert top[0][0] == data.info["class_names"][expected]


def test_detection_task_losses_evaluation_and_real_image_ids(tmp_path, one_thread):
    options = DetectionOptions(backbone="resnet18", small=True, train_size=2, val_size=2, min_size=64, max_size=64)
    task = create_task("mask_rcnn_r50_fpn", "shapes", detection=options, image_size=64)
    data = task.load_data()
    model = task.build_model(data.info)
    losses, _ = task.train_step(model, task.to_device(task.collate([data.train[0], data.train[1]]), CPU))
    assert {"loss_objectness", "loss_classifier", "loss_box_reg", "loss_mask"} <= set(losses)
    metrics = task.evaluate(model, data.dev, CPU, info=data.info)
    assert {"bbox:AP", "segm:AP", "voc:mAP"} <= set(metrics)
    image = (data.test[0][0].permute(1, 2, 0) * 255).byte().numpy()
    Image.fromarray(image).save(tmp_path / "000000000139.png")
    result = task.predict_files(model, data.info, [str(tmp_path / "000000000139.png")], CPU, out=tmp_path / "pred",
                                draw_thresh=0.0)
    written = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert result["detections"] == len(written) and all(r["image_id"] == 139 for r in written)
    assert (tmp_path / "pred" / "000000000139.png").is_file()


def test_detection_evaluation_streams_the_metric_and_equals_evaluate_coco(tmp_path, one_thread):
    """The engine's detection evaluation (a DetectionMetric fed batch by batch) gives exactly the figures of
    evaluate_coco and voc_mean_ap on the results it writes, named as before (bbox:AP, ..., voc:mAP)."""
    from convzoo.evaluation import evaluate_coco, voc_mean_ap

    options = DetectionOptions(backbone="resnet18", small=True, train_size=2, val_size=3, min_size=64, max_size=64)
    task = create_task("mask_rcnn_r50_fpn", "shapes", detection=options, image_size=64)
    data = task.load_data()
    torch.manual_seed(0)
    model = task.build_model(data.info)
    model.roi_heads.score_thresh = 0.0  # random weights: keep every detection, so there is something to rank
    metrics = task.evaluate(model, data.dev, CPU, out=tmp_path, split="dev", info=data.info)
    results = json.loads((tmp_path / "detections_dev.json").read_text())
    truth = task.ground_truth(data.dev, data.info)
    assert len(results) > 0 and {r["image_id"] for r in results} <= {i["id"] for i in truth["images"]}
    expected = {f"{t}:{k}": v for t in ("bbox", "segm") for k, v in evaluate_coco(
        truth, [r for r in results if t == "bbox" or "segmentation" in r], t).stats.items()}
    expected["voc:mAP"] = voc_mean_ap(truth, results)
    assert {k: metrics[k] for k in expected} == expected and metrics["count"] == 3.0
    assert set(metrics) == {*expected, "count"}
    assert task.metric(data.dev, data.info).records == []  # reset after compute
