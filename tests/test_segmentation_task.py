"""The segmentation task end to end on a tiny U-Net: flags reach SegmentationOptions (shared ones by the model's
task), evaluate sums confusion matrices over shards and prints the per-class table, predict writes a palette mask
of the image's size and an overlay."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.cli import build_parser
from convzoo.cli.train import config_from_args
from convzoo.options import SegmentationOptions
from convzoo.tasks import Reducer
from convzoo.train import TrainConfig, fit
from convzoo.train.run import load_run, task_of

TINY = TrainConfig(model="unet", data="shapes-seg", image_size=16, batch_size=2, epochs=1, device="cpu", seed=3,
                   threads=1, progress=False,
                   segmentation=SegmentationOptions(base_width=4, batch_norm=True, train_size=4, val_size=3))


def _config(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_flags_reach_the_options_of_the_models_task():
    config = _config("--model", "unet", "--train-size", "4", "--aux-weight", "0.2", "--dice-weight", "0.5",
                     "--crop-size", "32", "--base-width", "8", "--output-stride", "16", "--hflip", "0")
    assert dataclasses.asdict(config.segmentation) == {**dataclasses.asdict(SegmentationOptions()), "train_size": 4,
                                                       "aux_weight": 0.2, "dice_weight": 0.5, "crop_size": 32,
                                                       "base_width": 8, "output_stride": 16, "hflip": 0.0}
    assert config.detection.train_size == 1000 and config.classification.aux_weight is None
    assert _config("--model", "resnet18", "--aux-weight", "0.2").classification.aux_weight == 0.2
    with pytest.raises(ValueError, match="--dice-weight: segmentation option.*trained by the classification task"):
        task_of(_config("--model", "resnet18", "--dice-weight", "0.5"))
    with pytest.raises(ValueError, match="--output-stride must be 8, 16 or 32, got 12"):
        SegmentationOptions(output_stride=12)
    with pytest.raises(ValueError, match="--ignore-index must be a label value in 0..255"):
        SegmentationOptions(ignore_index=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("segrun")
    fit(dataclasses.replace(TINY, out=str(root / "run")))
    return root


def test_confusion_matrices_of_two_shards_sum_to_one_process(run, one_thread):
    _, task, info, model = load_run(run / "run", "last")
    dev = task.load_data().dev
    whole, loss = task.confusion(model, dev, torch.device("cpu"), 4)
    shards = [task.confusion(model, dev, torch.device("cpu"), 4, Reducer(rank=r, world_size=2)) for r in (0, 1)]
    assert torch.equal(shards[0][0] + shards[1][0], whole) and int(whole.sum()) == 3 * 16 * 16
    assert shards[0][1] + shards[1][1] == pytest.approx(loss, rel=1e-6)  # float32 sums of other batches


def test_evaluate_prints_the_per_class_table_and_writes_json(run, capsys, one_thread):
    args = build_parser().parse_args(["evaluate", str(run / "run"), "--split", "dev", "--out", str(run / "eval")])
    metrics = args.func(args)
    out = capsys.readouterr().out
    assert "dev:mIoU=" in out and all(name in out for name in ("background", "circle", "rectangle", "triangle"))
    saved = json.loads((run / "eval" / "segmentation_dev.json").read_text())
    assert [c["name"] for c in saved["classes"]][1:] == ["circle", "rectangle", "triangle"]
    assert saved["mIoU"] == pytest.approx(metrics["dev:mIoU"]) and saved["pixels"] == 3 * 16 * 16
    assert np.asarray(saved["confusion"]).sum() == saved["pixels"]


def test_predict_writes_a_palette_mask_of_the_images_size_and_an_overlay(run, capsys, one_thread):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(run / "x.png")
    args = build_parser().parse_args(["predict", str(run / "run"), str(run / "x.png"), "--out", str(run / "pred")])
    shares = args.func(args)[str(run / "x.png")]
    assert sum(shares.values()) == pytest.approx(1.0)
    with Image.open(run / "pred" / "x_mask.png") as mask:
        assert mask.mode == "P" and mask.size == (24, 20)
    with Image.open(run / "pred" / "x_overlay.png") as overlay:
        assert overlay.size == (24, 20)
    assert "x_overlay.png" in capsys.readouterr().out


def test_backbone_weights_initialize_the_encoder_in_torchvision_names(tmp_path, one_thread):
    from torchvision.models import resnet18

    from convzoo.tasks import SegmentationTask

    classifier = resnet18(num_classes=10)  # random weights in torchvision's names, another head
    torch.save(classifier.state_dict(), tmp_path / "resnet18.pth")
    options = SegmentationOptions(encoder="resnet18", output_stride=16, backbone_weights=str(tmp_path / "resnet18.pth"))
    task = SegmentationTask("deeplabv3", "shapes-seg", options, pretrained_source="torchvision")
    info = {"model_options": {"name": "deeplabv3", "num_classes": 4, "in_chans": 3, "encoder": "resnet18",
                              "output_stride": 16}}
    model = task.build_model(info)
    assert torch.equal(model.state_dict()["backbone.layer4.1.conv2.weight"], classifier.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="--backbone-weights .*unet has no classifier encoder"):
        SegmentationTask("unet", "shapes-seg", options).build_model({"model_options": {"name": "unet",
                                                                                       "num_classes": 4}})
