"""Tasks of the one training engine: what each kind of learning problem supplies (data, model, losses,
evaluation, prediction); ``convzoo.train`` owns everything else. See :mod:`convzoo.tasks.base` for the contract.

    task = create_task("mask_rcnn_r50_fpn", "shapes", detection=DetectionOptions(small=True))
"""

from __future__ import annotations

from convzoo.nas.task import SearchOptions, SearchTask
from convzoo.registry import model_kind
from convzoo.tasks.base import Reducer, Task, TaskData, unwrap_model
from convzoo.tasks.classification import ClassificationOptions, ClassificationTask
from convzoo.tasks.detection import DetectionTask
from convzoo.tasks.detection_build import DetectionOptions
from convzoo.tasks.segmentation import SegmentationOptions, SegmentationTask
from convzoo.tasks.text import TextClassificationTask, TextOptions

TASKS: dict[str, type[Task]] = {"classification": ClassificationTask, "detection": DetectionTask,
                                "segmentation": SegmentationTask, "text": TextClassificationTask, "search": SearchTask}
# the task that trains each kind of registered model
TASK_OF_KIND = {"classifier": "classification", "detector": "detection", "segmenter": "segmentation",
                "text_classifier": "text", "supernet": "search"}


def model_task(model: str) -> str:
    """The task that trains the registered ``model`` (``spec:`` strings are classifiers)."""
    kind = model_kind(model)
    if kind not in TASK_OF_KIND:
        raise ValueError(f"--model {model} is a {kind}; no task trains {kind}s yet (tasks: "
                         f"{', '.join(f'{t} for {k}s' for k, t in TASK_OF_KIND.items())})")
    return TASK_OF_KIND[kind]


def create_task(model: str, data: str, *, classification: ClassificationOptions | None = None,
                detection: DetectionOptions | None = None, segmentation: SegmentationOptions | None = None,
                text: TextOptions | None = None, search: SearchOptions | None = None, seed: int = 0,
                image_size: int | None = None, pretrained: str | None = None, pretrained_source: str = "auto") -> Task:
    """The task for ``model`` on ``data`` with the options of that task."""
    common = {"image_size": image_size, "pretrained": pretrained, "pretrained_source": pretrained_source}
    if model_task(model) == "detection":
        return DetectionTask(model, data, detection, seed=seed, **common)
    if model_task(model) == "segmentation":
        return SegmentationTask(model, data, segmentation, seed=seed, **common)
    if model_task(model) == "text":
        return TextClassificationTask(model, data, text, **common)
    if model_task(model) == "search":
        return SearchTask(model, data, search, seed=seed, **common)
    return ClassificationTask(model, data, classification, **common)


__all__ = ["TASKS", "ClassificationOptions", "ClassificationTask", "DetectionOptions", "DetectionTask", "Reducer",
           "SearchOptions", "SearchTask", "SegmentationOptions", "SegmentationTask", "Task", "TaskData",
           "TextClassificationTask", "TextOptions", "create_task", "model_task", "unwrap_model"]
