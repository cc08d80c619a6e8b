"""Image (and signal) classification as a task of the engine: ``--data digits|mnist:DIR|cifar10:DIR|...`` and any
registered classifier or ``spec:`` string.

The loss is :func:`convzoo.models.aux.classification_loss` (label smoothing; auxiliary heads of GoogLeNet and
Inception-v3 with their weights), so no model needs a special case. Training tallies the correct predictions of
the main logits; evaluation returns the plain cross-entropy (no smoothing) and the accuracy from one confusion
matrix, summed over processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from convzoo.data import DataSplits, collate_batch, load_data
from convzoo.data.clips import clip_input
from convzoo.data.datasets import select_subset
from convzoo.data.imagefolder import BadImageError, read_image
from convzoo.data.transforms import preprocessor
from convzoo.data.voxels import volume_input
from convzoo.layers import BATCH_NORM_TYPES, freeze_bn
from convzoo.models.aux import classification_loss, main_logits
from convzoo.models.video import VIDEO_TABLE, temporal_kernel
from convzoo.options import ClassificationOptions
from convzoo.registry import create_model
from convzoo.tasks.base import ONE_PROCESS, Reducer, Task, TaskData, load_pretrained, unwrap_model


def create_classifier(name: str, num_classes: int, input_size: Sequence[int], width: int | None = None,
                      **options) -> nn.Module:
    """``create_model(name, **options)`` for inputs of ``input_size`` (C, *spatial): the course's ``spec:`` strings
    get the spatial size, other models the number of spatial axes when it is not 2 (1D models for MNIST-1D);
    ``width`` (``--width``) goes to the video ResNets."""
    kwargs = {**options, "num_classes": num_classes, "in_chans": input_size[0]}
    if width is not None:
        if name not in VIDEO_TABLE:
            raise ValueError(f"--width {width}: only the video ResNets ({', '.join(VIDEO_TABLE)}) take a width, "
                             f"not {name}")
        kwargs["width"] = width
    if name.startswith("spec:") or name == "spec":
        kwargs["input_size"] = tuple(input_size[1:])
    elif len(input_size) != 3:
        kwargs["ndim"] = len(input_size) - 1
    return create_model(name, **kwargs)


def classifier_of(model: nn.Module) -> nn.Module:
    """The final classification layer (``get_classifier()`` of convzoo models)."""
    if not hasattr(model, "get_classifier"):
        raise ValueError(f"{type(model).__name__} has no get_classifier(): --freeze-backbone needs a convzoo "
                         "classifier")
    return model.get_classifier()


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Stop gradients to every parameter but the classifier's (transfer learning: train only the new head)."""
    head = {id(p) for p in classifier_of(model).parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head)
    return model


class ClassificationTask(Task):
    """Classification of ``data`` (a ``--data`` spec) by the registered classifier ``model``."""

    name = "classification"
    score = "accuracy"
    defaults = {"batch_size": 32}

    def __init__(self, model: str, data: str, options: ClassificationOptions | None = None, *,
                 image_size: int | None = None, pretrained: str | None = None, pretrained_source: str = "auto"
                 ) -> None:
        self.model_name, self.data_spec = model, data
        self.options = options or ClassificationOptions()
        self.image_size, self.pretrained, self.pretrained_source = image_size, pretrained, pretrained_source

    def load_data(self, data: str | None = None) -> TaskData:
        splits = load_data(data or self.data_spec, self.options.augment, self.image_size, self.options.skip_bad_images,
                           self.options.frames)
        splits = self._selected(splits)
        info = {"num_classes": splits.num_classes, "input_size": list(splits.input_size),
                "class_names": list(splits.class_names), "preprocess": splits.preprocess, "data": splits.name}
        notes = [f"skipped {splits.bad_images} image files that cannot be decoded"] if splits.bad_images else []
        model_options = dict(self.options.model_options or {})
        if self.options.genotype:  # the genotype itself goes into config.json: the run needs no file to predict
            from convzoo.models.nasnet_genotype import load_genotype

            model_options["genotype"] = load_genotype(self.options.genotype).to_data()
        if model_options:
            info["model_options"] = model_options
        return TaskData(splits.train, splits.dev, splits.test, info, notes)

    def _selected(self, splits: DataSplits) -> DataSplits:
        """``--classes``, ``--train-fraction`` and ``--eval-fraction`` applied to the splits."""
        options = self.options
        if options.classes is None and options.train_fraction == 1.0 and options.eval_fraction == 1.0:
            return splits
        classes = options.classes
        if classes is not None and max(classes) >= splits.num_classes:
            raise ValueError(f"--classes {classes}: {splits.name} has classes 0..{splits.num_classes - 1}")
        train, dev, test = (None if d is None else select_subset(d, classes, f) for d, f in (
            (splits.train, options.train_fraction), (splits.dev, options.eval_fraction),
            (splits.test, options.eval_fraction)))
        names = list(splits.class_names)
        if classes is not None:
            names = [names[c] for c in classes] if names else [str(c) for c in classes]
        return dataclasses.replace(splits, train=train, dev=dev, test=test, class_names=names,
                                   num_classes=len(classes) if classes is not None else splits.num_classes)

    def build_model(self, info: dict, initialize: bool = True) -> nn.Module:
        model = create_classifier(self.model_name, info["num_classes"], info["input_size"], self.options.width,
                                  **info.get("model_options", {}))
        if info.get("preprocess", {}).get("kind") == "clip" and info["input_size"][1] < temporal_kernel(model):
            raise ValueError(f"--frames {info['input_size'][1]}: clips shorter than {self.model_name}'s temporal "
                             f"kernel of {temporal_kernel(model)} frames; give at least that many")
        if initialize and self.pretrained:
            load_pretrained(model, self.pretrained, self.pretrained_source)
        if self.options.freeze_bn:
            freeze_bn(model)
        if self.options.freeze_backbone:
            freeze_backbone(model)
        return model

    def collate(self, samples):
        return collate_batch(samples)

    def to_device(self, batch, device: torch.device, channels_last: bool = False):
        images, labels = batch
        images = images.to(device, non_blocking=True)
        if channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(device, non_blocking=True)

    def train_step(self, model: nn.Module, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        images, labels = batch
        output = model(images)
        loss = classification_loss(output, labels, self.options.label_smoothing, self.options.aux_weight)
        with torch.no_grad():
            correct = (main_logits(output).argmax(1) == labels).sum()
        return {"loss": loss}, {"correct": correct, "count": torch.tensor(labels.shape[0], device=labels.device)}

    def train_metrics(self, tallies: dict[str, float]) -> dict[str, float]:
        return {"accuracy": tallies.get("correct", 0.0) / max(tallies.get("count", 0.0), 1.0)}

    def set_train_mode(self, model: nn.Module) -> None:
        """With a frozen backbone its BatchNorm layers stay in eval mode (the pretrained running statistics)."""
        model.train()
        if self.options.freeze_backbone:
            inner = unwrap_model(model)
            head = set(classifier_of(inner).modules())
            for module in inner.modules():
                if isinstance(module, BATCH_NORM_TYPES) and module not in head:
                    module.eval()

    @torch.no_grad()
    def confusion(self, model: nn.Module, dataset: Dataset, device: torch.device, num_classes: int,
                  reducer: Reducer = ONE_PROCESS, batch_size: int = 256) -> tuple[float, torch.Tensor]:
        """(sum of per-sample cross-entropy, Tensor[K, K] int64 confusion matrix: rows true, columns predicted)
        over this process's shard of ``dataset``, both summed over processes."""
        was_training = model.training
        model.eval()
        loss = torch.zeros((), dtype=torch.float64, device=device)
        matrix = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=reducer.shard(dataset), collate_fn=collate_batch)
        for batch in loader:
            images, labels = self.to_device(batch, device)
            logits = main_logits(model(images)).float()
            loss += F.cross_entropy(logits, labels, reduction="sum").double()
            matrix += torch.bincount(labels * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
        model.train(was_training)
        matrix = reducer.sum(matrix).cpu().reshape(num_classes, num_classes)
        return reducer.sum(loss).item(), matrix

    def evaluate(self, model: nn.Module, dataset: Dataset, device: torch.device, reducer: Reducer = ONE_PROCESS,
                 out: Path | None = None, split: str = "test", info: dict | None = None) -> dict[str, float]:
        """``loss`` (plain cross-entropy, mean) and ``accuracy``; with ``out``, ``confusion_{split}.png``."""
        num_classes = (info or {}).get("num_classes") or _num_classes(model)
        loss, matrix = self.confusion(model, dataset, device, num_classes, reducer)
        count = max(int(matrix.sum()), 1)
        metrics = {"loss": loss / count, "accuracy": matrix.diag().sum().item() / count, "count": float(count)}
        if out is not None and reducer.rank == 0:
            from convzoo.train.logging import plot_confusion_matrix

            names = (info or {}).get("class_names") or []
            plot_confusion_matrix(matrix, names, Path(out) / f"confusion_{split}.png", title=split)
        return metrics

    def predict_files(self, model: nn.Module, info: dict, paths: Sequence[str], device: torch.device,
                      out: Path | None = None, top: int = 1, **_options) -> dict:
        """Print ``FILE: class (probability), ...`` for the ``top`` classes of each image file (a grid file of a
        voxels run, a clip file or folder of frames of a moving-mnist run)."""
        if top < 1:
            raise ValueError(f"--top must be at least 1, got {top}")
        kind = info["preprocess"].get("kind")
        if kind in ("volume", "clip"):
            frames = temporal_kernel(model)
            inputs = [volume_input(Path(p), info["preprocess"]) if kind == "volume" else
                      clip_input(Path(p), info["preprocess"], frames) for p in paths]
        else:
            inputs = self._image_inputs(info, paths)
        model.eval()
        with torch.no_grad():  # one batch, or one input at a time where clips differ in length
            batches = [torch.stack(inputs)] if len({x.shape for x in inputs}) == 1 else [x[None] for x in inputs]
            probabilities = torch.cat([main_logits(model(x.to(device))).float().softmax(1).cpu() for x in batches])
        names = info.get("class_names") or [str(i) for i in range(info["num_classes"])]
        results = {}
        for path, row in zip(paths, probabilities):
            values, indices = row.topk(min(top, len(row)))
            results[path] = [(names[i], v) for v, i in zip(values.tolist(), indices.tolist())]
            print(f"{path}: " + ", ".join(f"{name} ({p:.4f})" for name, p in results[path]))
        return results

    def _image_inputs(self, info: dict, paths: Sequence[str]) -> list[torch.Tensor]:
        if len(info["input_size"]) != 3:
            raise ValueError(f"predict reads image files; this run's inputs are not images "
                             f"(input size {info['input_size']})")
        prepare = preprocessor(info["preprocess"])
        mode = "L" if info["input_size"][0] == 1 else "RGB"
        images = []
        for path in paths:
            try:
                images.append(prepare(read_image(Path(path), mode)))
            except BadImageError:
                raise BadImageError(f"cannot decode image {path}: not an image file Pillow can read") from None
        return images


def _num_classes(model: nn.Module) -> int:
    classifier = unwrap_model(model).get_classifier()
    return classifier.out_features if hasattr(classifier, "out_features") else classifier.out_channels
