"""Detection data: the generated shapes, COCO/VOC readers, augmentation consistency, COCO views, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.cli import build_parser
from convzoo.data.detection import (
    coco_ground_truth,
    detection_augmentation,
    drop_degenerate,
    flip_permutation,
)
from convzoo.data.detection_files import CocoDetection, VocDetection, read_rgb
from convzoo.data.detection_shapes import ShapesDataset, mask_to_box
from convzoo.evaluation import evaluate_coco, results_from_predictions


def test_shapes_are_deterministic_and_consistent() -> None:
    data = ShapesDataset(6, size=96, seed=3)
    image, target = data[2]
    again, same = ShapesDataset(6, size=96, seed=3)[2]
    torch.testing.assert_close(image, again)
    assert image.shape == (3, 96, 96) and 0 <= image.min() and image.max() <= 1
    for box, mask, label, points in zip(target["boxes"], target["masks"], target["labels"], target["keypoints"]):
        torch.testing.assert_close(box, mask_to_box(mask.bool()))  # the box is the mask's tight box
        if label == 1:
            assert (points[:, 2] == 0).all()  # circles have no keypoints
        else:  # corners lie on the box's border (within a pixel)
            assert (points[:, 0] >= box[0] - 1).all() and (points[:, 0] <= box[2] + 1).all()
            assert (points[:, 1] >= box[1] - 1).all() and (points[:, 1] <= box[3] + 1).all()
    assert (target["masks"].sum(0) <= 1).all()  # objects do not overlap


def test_ground_truth_fed_back_as_results_scores_ap_one() -> None:
    data = ShapesDataset(4, size=64)
    gt = coco_ground_truth(data, data.classes, data.keypoint_names)
    detections = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"])),
                   "masks": t["masks"][:, None].float()} for _, t in (data[i] for i in range(4))]
    results = results_from_predictions(range(4), detections)
    assert evaluate_coco(gt, results, "bbox").stats["AP"] == pytest.approx(1.0)
    assert evaluate_coco(gt, results, "segm").stats["AP"] == pytest.approx(1.0)


def test_horizontal_flip_keeps_boxes_masks_keypoints_together() -> None:
    image, target = ShapesDataset(1, size=64, seed=1)[0]
    flipped, moved = detection_augmentation(horizontal_flip=1.0)(image, target)
    torch.testing.assert_close(flipped, image.flip(-1))
    torch.testing.assert_close(moved["masks"], target["masks"].flip(-1))
    for box, mask in zip(moved["boxes"], moved["masks"]):
        torch.testing.assert_close(box, mask_to_box(mask.bool()))
    visible = target["keypoints"][..., 2] > 0  # v2 flips keypoints as pixel indices: x -> W - 1 - x
    torch.testing.assert_close(moved["keypoints"][..., 0][visible], 63 - target["keypoints"][..., 0][visible])


def test_flip_reorders_keypoints_by_the_flip_permutation() -> None:
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    assert flip_permutation(names) == [0, 2, 1, 4, 3]
    image = torch.rand(3, 20, 30)
    points = torch.tensor([[[10.0, 5, 2], [8, 4, 2], [12, 4, 2], [6, 6, 1], [14, 6, 2]]])
    target = {"boxes": torch.tensor([[5.0, 3, 16, 9]]), "labels": torch.tensor([1]), "keypoints": points}
    _, moved = detection_augmentation(1.0, keypoint_flip=flip_permutation(names))(image, target)
    # the new left eye is the old right eye, mirrored: x -> W - 1 - x
    assert moved["keypoints"][0].tolist() == [[19, 5, 2], [17, 4, 2], [21, 4, 2], [15, 6, 2], [23, 6, 1]]
    _, kept = detection_augmentation(0.0, keypoint_flip=flip_permutation(names))(image, target)
    assert torch.equal(kept["keypoints"], points)


def test_degenerate_boxes_are_dropped_and_counted() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 5, 9], [3, 3, 8, 3.5]])  # zero width; 0.5 px high
    target = {"boxes": boxes, "labels": torch.tensor([1, 2, 3])}
    kept, dropped = drop_degenerate(target)
    assert dropped == 2 and kept["labels"].tolist() == [1]


def test_grayscale_and_rgba_images_become_rgb(tmp_path) -> None:
    Image.fromarray(np.full((5, 7), 128, np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(np.full((5, 7, 4), 64, np.uint8), "RGBA").save(tmp_path / "rgba.png")
    for name in ("gray.png", "rgba.png"):
        assert read_rgb(tmp_path / name).shape == (3, 5, 7)


def test_coco128_reader(shared_data) -> None:
    root = shared_data / "coco128"
    data = CocoDetection(root / "annotations" / "instances_train2017.json", root / "train2017")
    crowded = {a["image_id"] for a in data.coco["annotations"] if a["iscrowd"]}
    index = next(i for i, info in enumerate(data.images) if info["id"] in crowded)
    image, target = data[index]
    expected = [a for a in data.coco["annotations"] if a["image_id"] == data.images[index]["id"] and not a["iscrowd"]]
    assert len(target["boxes"]) == len(expected) and (target["iscrowd"] == 0).all()  # crowd regions left out
    assert target["masks"].shape == (len(expected), *image.shape[-2:])
    first = expected[0]  # the mask's area is the annotation's (polygon rasterization differs by a few pixels)
    assert abs(float(target["masks"][0].sum()) - first["area"]) < 0.05 * first["area"] + 50


def test_voc_reader_difficult(shared_data) -> None:
    data = VocDetection(shared_data / "voc2012-sample100")
    gt = data.ground_truth()
    difficult = [a for a in gt["annotations"] if a["iscrowd"]]
    assert difficult, "the sample has difficult objects"
    image_id = difficult[0]["image_id"]
    _, target = data[image_id]
    all_objects = [a for a in gt["annotations"] if a["image_id"] == image_id]
    assert len(target["boxes"]) == len(all_objects) - sum(a["iscrowd"] for a in all_objects)


SMALL_SHAPES = ["--backbone", "resnet18", "--small", "--data", "shapes", "--image-size", "64", "--min-size", "64",
                "--max-size", "64", "--batch-size", "2", "--threads", "1"]


def test_cli_train_evaluate_predict(tmp_path) -> None:
    """convzoo train trains a detector (the task follows from the model); the run folder is an ordinary one, so
    resume, evaluate and predict (and their detect aliases) work on it."""
    parser = build_parser()
    run = tmp_path / "run"
    args = parser.parse_args(["train", "--model", "mask_rcnn_r50_fpn", *SMALL_SHAPES, "--train-size", "4",
                              "--val-size", "2", "--epochs", "1", "--out", str(run)])
    metrics = args.func(args)
    assert metrics["steps"] == 2 and "dev:segm:AP" in metrics and "test:bbox:AP" in metrics
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["loss_mask"])
    for name in ("config.json", "last.safetensors", "best.safetensors", "metrics.jsonl", "detections_test.json"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "config.json").read_text())
    assert saved["task"] == "detection" and saved["info"]["model_options"]["name"] == "mask_rcnn_r50_fpn"
    args = parser.parse_args(["detect", "train", "--resume", str(run), "--epochs", "2"])
    assert args.func(args)["steps"] == 4  # resumed after epoch 1
    args = parser.parse_args(["evaluate", str(run), "--split", "dev"])
    assert "dev:bbox:AP50" in args.func(args)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "a.png")
    args = parser.parse_args(["detect", "predict", str(run), str(tmp_path / "a.png"), "--out", str(tmp_path / "pred"),
                              "--draw-thresh", "0"])
    args.func(args)
    assert (tmp_path / "pred" / "a.png").is_file()
    assert isinstance(json.loads((tmp_path / "pred" / "detections.json").read_text()), list)


def test_cli_fast_rcnn_with_proposals_file(tmp_path) -> None:
    data = ShapesDataset(2, size=64, seed=0)
    # proposals: each ground-truth box and a shifted copy, as a selective-search file would list them
    proposals = {i: torch.cat([t["boxes"], t["boxes"] + 3]).tolist() for i, (_, t) in enumerate(data)}
    (tmp_path / "proposals.json").write_text(json.dumps(proposals))
    parser = build_parser()
    args = parser.parse_args(["detect", "train", "--model", "fast_rcnn_r50_c4", "--backbone", "resnet18",
                              "--data", "shapes", "--image-size", "64", "--train-size", "2", "--val-size", "2",
                              "--min-size", "64", "--max-size", "64", "--epochs", "1", "--batch-size", "2",
                              "--proposals", str(tmp_path / "proposals.json"), "--out", str(tmp_path / "run")])
    metrics = args.func(args)
    assert metrics["steps"] == 1 and "dev:bbox:AP" in metrics and "loss_objectness" not in metrics


def test_cli_keypoints_adamw_and_transfer(tmp_path) -> None:
    """Keypoint R-CNN on shapes with AdamW and an ImageNet-style backbone file; then fine-tuning the trained
    keypoint detector into a Mask R-CNN of the same classes keeps only the class-shaped layers fresh."""
    from safetensors.torch import save_file

    from convzoo.registry import create_model

    classifier = create_model("resnet18")
    save_file(classifier.state_dict(), tmp_path / "resnet18.safetensors")
    parser = build_parser()
    common = [*SMALL_SHAPES, "--train-size", "2", "--val-size", "2", "--epochs", "1", "--optimizer", "adamw",
              "--lr", "1e-3"]
    args = parser.parse_args(["train", "--model", "keypoint_rcnn_r50_fpn", *common,
                              "--backbone-weights", str(tmp_path / "resnet18.safetensors"),
                              "--out", str(tmp_path / "kp")])
    metrics = args.func(args)
    assert "dev:keypoints:AP" in metrics and np.isfinite(metrics["loss_keypoint"])
    options = json.loads((tmp_path / "kp" / "config.json").read_text())["info"]["model_options"]
    assert options["num_keypoints"] == 3 and options["widths"]["keypoint"] == 64
    args = parser.parse_args(["train", "--model", "faster_rcnn_r50_fpn", *common,
                              "--pretrained", str(tmp_path / "kp" / "last.safetensors"), "--out", str(tmp_path / "ft")])
    assert "dev:bbox:AP" in args.func(args)


def test_cli_refuses_options_of_another_task(tmp_path) -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--model", "resnet18", "--small", "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="--small: detection option.*classification task"):
        args.func(args)
    args = parser.parse_args(["train", "--model", "mask_rcnn_r50_fpn", "--label-smoothing", "0.1"])
    with pytest.raises(ValueError, match="--label-smoothing: classification option.*detection task"):
        args.func(args)


def test_cli_evaluates_a_torchvision_coco_checkpoint_without_a_run_folder(tmp_path, shared_data, capsys) -> None:
    """torchvision's COCO detectors predict category ids (91 outputs): --label-ids category keeps every head layer
    of the file and writes results with COCO's ids."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    torch.save(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), tmp_path / "tv.pth")
    coco = shared_data / "coco128"
    args = build_parser().parse_args([
        "evaluate", "--model", "faster_rcnn_r50_fpn", "--pretrained", str(tmp_path / "tv.pth"),
        "--pretrained-source", "torchvision", "--label-ids", "category", "--val-size", "2", "--min-size", "128",
        "--max-size", "160", "--data", f"coco:{coco / 'annotations/instances_train2017.json'}:{coco / 'train2017'}",
        "--out", str(tmp_path / "eval")])
    metrics = args.func(args)
    assert "dev:bbox:AP" in metrics and metrics["count"] == 2
    assert "reinitialized" not in capsys.readouterr().err  # the 91-way head of the file is kept
    ground_truth = json.loads((coco / "annotations/instances_train2017.json").read_text())
    results = json.loads((tmp_path / "eval" / "detections_dev.json").read_text())
    assert results and {r["category_id"] for r in results} <= {c["id"] for c in ground_truth["categories"]}
