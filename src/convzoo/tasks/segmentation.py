"""Semantic segmentation (every pixel labelled: U-Net, FCN, DeepLab) as a task of the engine.

The model returns ``{"out": logits Tensor[N, K, H, W]}`` (plus ``"aux"``); the step's losses come from
:func:`convzoo.models.segmentation.segmentation_loss` (cross-entropy without the ignored pixels, optional Dice and
U-Net's weight maps, the auxiliary head's weighted loss). Evaluation sums one confusion matrix over the data set and
over processes (``reducer.sum``) and scores it with :func:`convzoo.evaluation.scores_from_confusion` (mIoU, per-class
IoU, pixel and mean accuracy, fwIoU) at the evaluation size (``--crop-size``; masks resized by nearest neighbour).
Prediction writes each image's label map as a VOC palette PNG and a colour overlay on the image.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from convzoo.data.detection_files import read_rgb
from convzoo.data.segmentation import load_segmentation_data
from convzoo.data.segmentation_files import VOC_PALETTE, write_palette_png
from convzoo.data.segmentation_transforms import (
    TransformedSegmentation,
    collate_segmentation,
    segmentation_augmentation,
    segmentation_resize,
)
from convzoo.evaluation.segmentation import confusion_matrix, scores_from_confusion
from convzoo.models.segmentation import segmentation_loss, unet_weight_map
from convzoo.models.segmentation.encoder import load_encoder_weights
from convzoo.options import SegmentationOptions
from convzoo.registry import create_model
from convzoo.tasks.base import ONE_PROCESS, Reducer, Task, TaskData, load_pretrained, unwrap_model
from convzoo.weights import first_fitting_source

# inputs are normalized by ImageNet's statistics (what pretrained encoders expect), on the device
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FILE_CROP = 256  # the default --crop-size of data read from files (shapes-seg: its image size)


class SegmentationTask(Task):
    """Segmentation of ``data`` (``shapes-seg``, ``seg:DIR``, ``coco-seg:ANN:IMAGES``) by the segmenter ``model``."""

    name = "segmentation"
    score = "mIoU"
    # Adam 1e-3 with a cosine schedule trains U-Net from scratch on CPU-sized data; batch 8 (crops of one size)
    defaults = {"batch_size": 8, "optimizer": "adamw", "weight_decay": 1e-4}

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """Losses, mIoU, pixel accuracy (not each class's IoU)."""
        return {k: v for k, v in metrics.items() if "IoU/" not in k and not k.endswith(("mean_accuracy", "fwIoU"))}

    def __init__(self, model: str, data: str, options: SegmentationOptions | None = None, *, seed: int = 0,
                 image_size: int | None = None, pretrained: str | None = None, pretrained_source: str = "auto"
                 ) -> None:
        self.model_name, self.data_spec = model, data
        self.options = options or SegmentationOptions()
        self.seed, self.image_size = seed, image_size
        self.pretrained, self.pretrained_source = pretrained, pretrained_source

    # data -------------------------------------------------------------------------------------------------------
    def load_data(self, data: str | None = None) -> TaskData:
        spec, o = data or self.data_spec, self.options
        splits = {split: load_segmentation_data(spec, split, o.train_size if split == "train" else o.val_size,
                                                self.image_size, self.seed, o.ignore_index)
                  for split in ("train", "dev", "test")}
        train = splits["train"]
        if len(train) == 0:
            raise ValueError(f"--data {spec} has no training images")
        size = o.crop_size or (None if spec.startswith("shapes-seg") else FILE_CROP)
        model_options = {"name": self.model_name, "num_classes": len(train.classes), "in_chans": 3}
        if o.base_width is not None:
            model_options["base_width"] = o.base_width
        if o.output_stride is not None:
            model_options["output_stride"] = o.output_stride
        for key in ("encoder", "dropout"):
            if getattr(o, key) is not None:
                model_options[key] = getattr(o, key)
        for flag in ("batch_norm", "aux_loss"):
            if getattr(o, flag):
                model_options[flag] = True
        info = {"model_options": model_options, "class_names": list(train.classes), "ignore_index": o.ignore_index,
                "eval_size": size, "mean": list(MEAN), "std": list(STD), "data": spec}
        evaluation = segmentation_resize(size, o.ignore_index)
        train = TransformedSegmentation(train, segmentation_augmentation(size, o.hflip))
        dev, test = (TransformedSegmentation(splits[s], evaluation) if splits[s] is not None else None
                     for s in ("dev", "test"))
        return TaskData(train, dev, test, info)

    # model ------------------------------------------------------------------------------------------------------
    def build_model(self, info: dict, initialize: bool = True) -> nn.Module:
        options = dict(info["model_options"])
        name = options.pop("name")
        model = create_model(name, **options)
        if initialize and self.options.backbone_weights:  # ImageNet weights of the encoder's classifier
            path = self.options.backbone_weights
            if not hasattr(model, "encoder_state"):
                raise ValueError(f"--backbone-weights {path}: {name} has no classifier encoder (fcn, deeplabv3, "
                                 "fcn_resnet50, fcn8s ... have one)")

            def load_encoder(source):
                report = load_encoder_weights(model, path, source=source)
                print(f"--backbone-weights {path} ({source}): {report}", file=sys.stderr)

            first_fitting_source(self.pretrained_source, load_encoder)
        if initialize and self.pretrained:  # the classifier layers of another label set stay fresh
            load_pretrained(model, self.pretrained, self.pretrained_source)
        return model

    # steps ------------------------------------------------------------------------------------------------------
    def collate(self, samples):
        return collate_segmentation(samples)

    def to_device(self, batch, device: torch.device, channels_last: bool = False):
        images, labels = batch
        images = normalize(images.to(device, non_blocking=True))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(device, non_blocking=True)

    def train_step(self, model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        images, labels = batch
        o = self.options
        weight_map = None
        if o.weight_maps:  # Ronneberger et al. eq. 2, per label map (on the CPU: distance transforms)
            weight_map = torch.stack([unet_weight_map(m, ignore_index=o.ignore_index) for m in labels.cpu()])
            weight_map = weight_map.to(labels.device)
        outputs = model(images)
        losses = segmentation_loss(outputs, labels, o.ignore_index, o.dice_weight, o.aux_weight, weight_map)
        with torch.no_grad():
            valid = labels != o.ignore_index
            correct = ((outputs["out"].argmax(1) == labels) & valid).sum()
        return losses, {"correct": correct, "pixels": valid.sum(), "count": torch.tensor(len(labels),
                                                                                      device=labels.device)}

    def train_metrics(self, tallies: dict[str, float]) -> dict[str, float]:
        return {"pixel_accuracy": tallies.get("correct", 0.0) / max(tallies.get("pixels", 0.0), 1.0)}

    # evaluation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def confusion(self, model: nn.Module, dataset: Dataset, device: torch.device, num_classes: int,
                  reducer: Reducer = ONE_PROCESS, batch_size: int = 8) -> tuple[torch.Tensor, float]:
        """(Tensor[K, K] int64 confusion matrix, rows target, columns prediction; the summed cross-entropy of the
        counted pixels) of this process's shard, both summed over processes."""
        was_training = model.training
        model.eval()
        ignore = self.options.ignore_index
        matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        loss = torch.zeros((), dtype=torch.float64, device=device)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=reducer.shard(dataset),
                            collate_fn=collate_segmentation)
        for batch in loader:
            images, labels = self.to_device(batch, device)
            logits = model(images)["out"].float()
            loss += F.cross_entropy(logits, labels, ignore_index=ignore, reduction="sum").double()
            matrix += confusion_matrix(logits.argmax(1), labels, num_classes, ignore)
        model.train(was_training)
        return reducer.sum(matrix).cpu(), reducer.sum(loss).item()

    def evaluate(self, model: nn.Module, dataset: Dataset, device: torch.device, reducer: Reducer = ONE_PROCESS,
                 out: Path | None = None, split: str = "test", info: dict | None = None) -> dict[str, float]:
        """``mIoU``, ``pixel_accuracy``, ``mean_accuracy``, ``fwIoU``, ``loss`` (cross-entropy per counted pixel)
        and ``IoU/<class>`` of the classes present; with ``out``, the per-class table ``segmentation_{split}.json``."""
        info = info or {}
        names = info.get("class_names") or [str(i) for i in range(info["model_options"]["num_classes"])]
        matrix, loss = self.confusion(unwrap_model(model), dataset, device, len(names), reducer)
        scores = scores_from_confusion(matrix)
        metrics = {"loss": loss / max(scores["pixels"], 1), "mIoU": scores["mIoU"],
                   "pixel_accuracy": scores["pixel_accuracy"], "mean_accuracy": scores["mean_accuracy"],
                   "fwIoU": scores["fwIoU"]}
        metrics.update({f"IoU/{name}": iou for name, iou in zip(names, scores["IoU"]) if not math.isnan(iou)})
        metrics["count"] = float(len(dataset))
        if out is not None and reducer.rank == 0:
            table = per_class_table(matrix, names)
            (Path(out) / f"segmentation_{split}.json").write_text(json.dumps(
                {"split": split, **{k: v for k, v in scores.items() if k not in ("IoU", "accuracy")},
                 "classes": table, "confusion": matrix.tolist()}, indent=1))
        return metrics

    def report(self, metrics: dict[str, float], info: dict) -> str:
        """The per-class IoU table of ``metrics`` (``{split}:IoU/<class>``) as ``convzoo evaluate`` prints it."""
        rows = [f"{'class':<24} {'IoU':>7}"]
        for name in info.get("class_names", []):
            value = next((v for k, v in metrics.items() if k.endswith(f"IoU/{name}")), None)
            rows.append(f"{name:<24} {'absent' if value is None else f'{value:.4f}':>7}")
        return "\n".join(rows)

    # prediction -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_files(self, model: nn.Module, info: dict, paths: Sequence[str], device: torch.device,
                      out: Path | None = None, **_options) -> dict:
        """For each image: ``out/<stem>_mask.png`` (the label map at the image's size, a VOC palette PNG) and
        ``out/<stem>_overlay.png`` (the classes in colour over the image); one line per image."""
        from torchvision.utils import draw_segmentation_masks, save_image

        out = Path(out or "predictions")
        out.mkdir(parents=True, exist_ok=True)
        names = info["class_names"]
        prepare = segmentation_resize(info.get("eval_size"), info.get("ignore_index", 255))
        model.eval()
        results = {}
        for path in paths:
            image = _read_image(path)
            height, width = image.shape[-2:]
            resized, _ = prepare(image, torch.zeros(height, width, dtype=torch.int64))
            logits = model(normalize(resized[None].to(device)))["out"].float()
            if info.get("eval_size"):  # undo the padding, then back to the image's size
                scale = info["eval_size"] / max(height, width)
                logits = logits[..., :max(round(height * scale), 1), :max(round(width * scale), 1)]
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            labels = logits.argmax(1)[0].cpu()
            write_palette_png(labels, out / f"{Path(path).stem}_mask.png")
            present = [int(c) for c in labels.unique() if int(c) != 0 or len(names) == 1]
            masks = torch.stack([labels == c for c in present]) if present else torch.zeros(0, height, width,
                                                                                             dtype=torch.bool)
            colours = [tuple(int(v) for v in VOC_PALETTE[c % 256]) for c in present]
            picture = (image * 255).to(torch.uint8)
            if present:
                picture = draw_segmentation_masks(picture, masks, alpha=0.5, colors=colours)
            save_image(picture.float() / 255, out / f"{Path(path).stem}_overlay.png")
            shares = {names[c]: float((labels == c).float().mean()) for c in labels.unique().tolist()}
            results[path] = shares
            found = ", ".join(f"{name} {share:.1%}" for name, share in sorted(shares.items(), key=lambda s: -s[1]))
            print(f"{path}: {found} -> {out / (Path(path).stem + '_mask.png')}, "
                  f"{out / (Path(path).stem + '_overlay.png')}")
        return results


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Tensor[N, 3, H, W] in [0, 1] -> standardized by ImageNet's mean and std (:data:`MEAN`, :data:`STD`)."""
    mean = torch.tensor(MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def per_class_table(matrix: torch.Tensor, names: Sequence[str]) -> list[dict]:
    """One record per class of a confusion matrix: ``name``, ``IoU``, ``accuracy`` (None where absent) and the
    ``pixels`` of the class in the targets and in the predictions."""
    scores = scores_from_confusion(matrix)
    return [{"name": name, "IoU": None if math.isnan(iou) else iou, "accuracy": None if math.isnan(acc) else acc,
             "target_pixels": int(matrix[i].sum()), "predicted_pixels": int(matrix[:, i].sum())}
            for i, (name, iou, acc) in enumerate(zip(names, scores["IoU"], scores["accuracy"]))]


def _read_image(path: str) -> torch.Tensor:
    try:
        return read_rgb(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file {path}") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot decode image {path}: {error}") from None
