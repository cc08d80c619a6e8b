"""Object detection (Fast, Faster, Mask and Keypoint R-CNN) as a task of the engine.

The detector in training mode returns its dict of named losses (``loss_objectness``, ``loss_rpn_box_reg``,
``loss_classifier``, ``loss_box_reg``, ``loss_mask``, ``loss_keypoint``), which is exactly what the engine
optimizes; evaluation streams each batch's detections into a :class:`convzoo.evaluation.DetectionMetric` over the data
set's COCO ground truth (its records of every process gathered through the reducer), which gives COCO AP (bbox, segm,
keypoints as the model has them), and the VOC mAP at IoU 0.5 of the same results; prediction draws the detections
and writes COCO results JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from convzoo.data.detection import TransformedDataset, coco_ground_truth, collate_detection, detection_augmentation
from convzoo.data.detection_files import read_rgb
from convzoo.evaluation import DetectionMetric, results_from_predictions, voc_mean_ap
from convzoo.tasks.base import ONE_PROCESS, Reducer, Task, TaskData, load_pretrained, unwrap_model
from convzoo.tasks.detection_build import (
    DetectionOptions,
    WithProposals,
    backbone_state,
    build_detector,
    default_backbone,
    iou_types,
    load_detection_data,
    model_options,
    read_proposals,
)
from convzoo.weights import first_fitting_source


def given_proposals(targets: list[dict]) -> list[torch.Tensor] | None:
    """Fast R-CNN's external proposals, carried in the targets as ``proposals`` Tensor[P, 4] (xyxy), if any."""
    return [t["proposals"] for t in targets] if targets and all("proposals" in t for t in targets) else None


class DetectionTask(Task):
    """Detection of ``data`` (``shapes``, ``coco:ANN:IMAGES``, ``voc:DIR``) by the registered detector ``model``."""

    name = "detection"
    score = "bbox:AP"
    # torchvision's detection references and Detectron's schedules: SGD 0.02 (batch 16, here 4 on a CPU), decay
    # 1e-4, clipped gradients, a short warmup
    defaults = {"batch_size": 4, "epochs": 12, "optimizer": "sgd", "lr": 0.02, "weight_decay": 1e-4,
                "grad_clip": 10.0, "warmup": 0.4, "nesterov": False}
    find_unused_parameters = True

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """Losses and AP, AP50 of each IoU type and the VOC mAP (not every COCO statistic)."""
        return {k: v for k, v in metrics.items() if k.rpartition(":")[2] in ("AP", "AP50", "mAP") or
                k.rpartition(":")[2].startswith("loss")}

    def __init__(self, model: str, data: str, options: DetectionOptions | None = None, *, seed: int = 0,
                 image_size: int | None = None, pretrained: str | None = None, pretrained_source: str = "auto"
                 ) -> None:
        self.model_name, self.data_spec = model, data
        self.options = options or DetectionOptions()
        self.seed, self.image_size = seed, image_size
        self.pretrained, self.pretrained_source = pretrained, pretrained_source
        self._ground_truth: dict[int, dict] = {}
        self._metrics: dict[tuple, DetectionMetric] = {}
        self._proposals = read_proposals(self.options.proposals) if self.options.proposals else None

    # data -------------------------------------------------------------------------------------------------------
    def split(self, name: str, data: str | None = None) -> Dataset | None:
        """The data set of split ``name`` ("train", "dev", "test"); None where the data has no such split."""
        spec = data or self.data_spec
        if name == "test" and not spec.startswith("shapes"):
            return None
        size = self.options.train_size if name == "train" else self.options.val_size
        if name != "train" and size == 0 and not spec.startswith("shapes"):
            size = self.options.train_size  # val_size 0: evaluate on the training images
        return load_detection_data(spec, name, size, self.image_size, self.seed)

    def load_data(self, data: str | None = None) -> TaskData:
        train, dev, test = (self.split(name, data) for name in ("train", "dev", "test"))
        if len(train) == 0:
            raise ValueError(f"--data {data or self.data_spec} has no training images")
        info = {"model_options": model_options(self.model_name, self.options, train),
                "class_names": list(train.classes), "keypoint_names": list(getattr(train, "keypoint_names", [])),
                "category_ids": list(getattr(train, "category_ids", None) or range(len(train.classes))),
                "iou_types": list(iou_types(self.model_name))}
        notes = []
        if self.options.label_ids == "category":  # the model's label is the category id (torchvision's COCO)
            names = dict(zip(info["category_ids"], info["class_names"]))
            size = max(info["category_ids"]) + 1
            info["class_names"] = [names.get(i, f"unused-{i}") for i in range(size)]
            info["category_ids"] = list(range(size))
            info["model_options"].update(num_classes=size, class_names=info["class_names"])
            train = Relabeled(train, [int(c) for c in getattr(train, "category_ids", range(size))])
        if self._proposals:  # Fast R-CNN: boxes from outside, not flipped with the image, so no flip augmentation
            train = WithProposals(train, self._proposals)
        elif self.options.hflip:
            keypoint_flip, hflip = getattr(train, "keypoint_flip", None), self.options.hflip
            if info["model_options"].get("num_keypoints") and keypoint_flip is None:
                notes.append("horizontal flips are off: the data set's keypoints have no mirrored order "
                             "(keypoint_flip), so a flipped image would teach the wrong keypoint names")
                hflip = 0.0
            if hflip:
                train = TransformedDataset(train, detection_augmentation(hflip, keypoint_flip=keypoint_flip))
        return TaskData(train, dev, test, info, notes)

    # model ------------------------------------------------------------------------------------------------------
    def build_model(self, info: dict, initialize: bool = True) -> nn.Module:
        options = info["model_options"]
        backbone = None
        if initialize and self.options.backbone_weights:
            name = options.get("backbone") or default_backbone(options["name"])
            backbone = first_fitting_source(self.pretrained_source, lambda source: backbone_state(
                name, self.options.backbone_weights, source))
        model = build_detector(options, backbone)
        if initialize and self.pretrained:  # layers that follow the label set stay fresh when their shapes differ
            load_pretrained(model, self.pretrained, self.pretrained_source)
        return model

    # steps ------------------------------------------------------------------------------------------------------
    def collate(self, samples):
        return collate_detection(samples)

    def to_device(self, batch, device: torch.device, channels_last: bool = False):
        images, targets = batch
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
                   for t in targets]
        return images, targets

    def train_step(self, model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        images, targets = batch
        losses = model(images, targets, proposals=given_proposals(targets))
        return losses, {"count": torch.tensor(len(images), device=images[0].device)}

    # evaluation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def detect(self, model: nn.Module, dataset: Dataset, device: torch.device, indices: Sequence[int] | None = None,
               batch_size: int = 4, on_batch: Callable[[list[dict], list[dict]], None] | None = None
               ) -> tuple[list[dict], list[int]]:
        """Detections (CPU tensors) and image ids of the samples ``indices`` (all) of ``dataset``, in order; with
        ``on_batch``, each batch's detections and targets (with their ``image_id``) go to ``on_batch(detections,
        targets)`` instead, and nothing is kept."""
        was_training = model.training
        model.eval()
        if self._proposals:
            dataset = WithProposals(dataset, self._proposals)
        indices = list(range(len(dataset))) if indices is None else list(indices)
        detections, image_ids, done = [], [], 0
        loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, collate_fn=collate_detection)
        for images, targets in loader:
            proposals = given_proposals(targets)
            proposals = [p.to(device) for p in proposals] if proposals is not None else None
            outputs = model([image.to(device) for image in images], proposals=proposals)
            outputs = [{k: v.cpu() for k, v in output.items()} for output in outputs]
            ids = [int(t.get("image_id", indices[done + i])) for i, t in enumerate(targets)]
            done += len(ids)
            if on_batch is not None:
                on_batch(outputs, [{**t, "image_id": i} for t, i in zip(targets, ids)])
            else:
                detections += outputs
                image_ids += ids
        model.train(was_training)
        return detections, image_ids

    def ground_truth(self, dataset: Dataset, info: dict) -> dict:
        """The COCO ground truth of ``dataset`` (computed once per data set)."""
        key = id(dataset)
        if key not in self._ground_truth:
            self._ground_truth[key] = (dataset.ground_truth() if hasattr(dataset, "ground_truth") else
                                       coco_ground_truth(dataset, info["class_names"], info["keypoint_names"],
                                                         info["category_ids"]))
        return self._ground_truth[key]

    def metric(self, dataset: Dataset, info: dict, reducer: Reducer = ONE_PROCESS) -> DetectionMetric:
        """The streaming COCO metric of ``dataset`` (one per data set and reducer, reset by :meth:`evaluate`): its
        ground truth, the run's IoU types and category ids; under several processes it gathers every process's
        records with ``reducer.gather`` (``all_gather_object`` under torchrun) before computing. A label with no
        category in the ground truth (the unused ids of COCO's 1..90) can match nothing and is dropped, as
        pycocotools ignores results outside ``params.catIds``."""
        key = (id(dataset), reducer.rank, reducer.world_size)
        if key not in self._metrics:
            names = info.get("keypoint_names", [])  # OKS sigma 0.05 for every keypoint (no COCO sigmas here)
            self._metrics[key] = DetectionMetric(
                iou_type=tuple(info.get("iou_types", ["bbox"])), ground_truth=self.ground_truth(dataset, info),
                category_ids=info.get("category_ids") or None, kpt_sigmas=np.full(len(names), 0.05) if names else None,
                reduce=reducer.gather if reducer.world_size > 1 else None)
        return self._metrics[key]

    def evaluate(self, model: nn.Module, dataset: Dataset, device: torch.device, reducer: Reducer = ONE_PROCESS,
                 out: Path | None = None, split: str = "test", info: dict | None = None) -> dict[str, float]:
        """``bbox:AP``, ``bbox:AP50``, ... (``segm:``, ``keypoints:`` as the model has them) and ``voc:mAP``;
        with ``out``, the COCO results ``detections_{split}.json``."""
        info = info or {}
        ground_truth = self.ground_truth(dataset, info)
        metric = self.metric(dataset, info, reducer)
        metric.reset()
        self.detect(unwrap_model(model), dataset, device, reducer.shard(dataset), on_batch=metric.update)
        metric.compute()
        metrics = {f"{iou_type}:{name}": value for iou_type, evaluation in metric.evaluations.items()
                   for name, value in evaluation.stats.items()}
        results = metric.results
        metric.reset()
        metrics["voc:mAP"] = voc_mean_ap(ground_truth, results)
        metrics["count"] = float(len(dataset))
        if out is not None and reducer.rank == 0:
            (Path(out) / f"detections_{split}.json").write_text(json.dumps(results))
        return metrics

    # prediction -------------------------------------------------------------------------------------------------
    def predict_files(self, model: nn.Module, info: dict, paths: Sequence[str], device: torch.device,
                      out: Path | None = None, draw_thresh: float = 0.5, annotations: str | None = None,
                      **_options) -> dict:
        """Draw the detections on each image into ``out/<stem>.png`` and write ``out/detections.json`` (COCO
        results whose ``image_id`` is the image's id: from ``annotations`` (a COCO file, by file name), else the
        file stem when it is a number (COCO and VOC names), else the position); print a line per image."""
        from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks, save_image

        out = Path(out or "predictions")
        out.mkdir(parents=True, exist_ok=True)
        names = info.get("class_names") or [str(i) for i in range(info["model_options"]["num_classes"])]
        ids = image_ids_of(paths, annotations)
        images = [_read_image(path) for path in paths]
        samples = [(image, {"image_id": image_id}) for image, image_id in zip(images, ids)]
        detections, _ = self.detect(unwrap_model(model), samples, device, batch_size=1)
        for path, image, detection in zip(paths, images, detections):
            keep = detection["scores"] >= draw_thresh
            picture = (image * 255).to(torch.uint8)
            if "masks" in detection and keep.any():
                picture = draw_segmentation_masks(picture, detection["masks"][keep, 0] >= 0.5, alpha=0.45)
            labels = [f"{names[int(c)]} {s:.2f}" for c, s in zip(detection["labels"][keep], detection["scores"][keep])]
            if keep.any():
                picture = draw_bounding_boxes(picture, detection["boxes"][keep], labels=labels, colors="yellow")
            if "keypoints" in detection and keep.any():
                picture = draw_keypoints(picture, detection["keypoints"][keep, :, :2], colors="red", radius=2)
            drawn = out / f"{Path(path).stem}.png"
            save_image(picture.float() / 255, drawn)
            found = ", ".join(labels) if labels else "nothing"
            print(f"{path}: {int(keep.sum())} detections >= {draw_thresh} ({found}) -> {drawn}")
        results = results_from_predictions(ids, detections, info.get("category_ids"))
        files = dict(zip(ids, map(str, paths)))
        for result in results:
            result["file_name"] = files[result["image_id"]]
        (out / "detections.json").write_text(json.dumps(results))
        print(f"{len(results)} detections of {len(paths)} images (all scores >= the model's score threshold) -> "
              f"{out / 'detections.json'}")
        return {"images": len(paths), "detections": len(results), "out": str(out)}


class Relabeled(Dataset):
    """A detection data set whose target labels become ``mapping[label]`` (contiguous labels -> category ids);
    everything else (ground truth, classes, keypoint names) is the wrapped data set's."""

    def __init__(self, dataset: Dataset, mapping: Sequence[int]) -> None:
        self.dataset, self.mapping = dataset, torch.tensor(list(mapping), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        return image, {**target, "labels": self.mapping[target["labels"]]}

    def __getattr__(self, name: str):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _read_image(path: str) -> torch.Tensor:
    try:
        return read_rgb(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file {path}") from None
    except (OSError, ValueError) as error:  # truncated, corrupt or not an image (PIL raises OSError subclasses)
        raise ValueError(f"cannot decode image {path}: {error}") from None


def image_ids_of(paths: Sequence[str], annotations: str | None = None) -> list[int]:
    """The COCO image id of each file: looked up by file name in ``annotations`` (a COCO JSON), else the file's
    stem when it is a number (``000000000139.jpg`` -> 139), else its position in ``paths``."""
    by_name = {}
    if annotations:
        coco = json.loads(Path(annotations).read_text())
        by_name = {Path(image["file_name"]).name: int(image["id"]) for image in coco.get("images", [])}
    ids = []
    for index, path in enumerate(paths):
        name = Path(path)
        if by_name:
            if name.name not in by_name:
                raise ValueError(f"--annotations {annotations} has no image named {name.name}")
            ids.append(by_name[name.name])
        else:
            ids.append(int(name.stem) if name.stem.isdigit() else index)
    if len(set(ids)) != len(ids):
        raise ValueError("two images got the same image id; pass --annotations COCO.json to name their ids")
    return ids
