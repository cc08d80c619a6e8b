"""The one adapter from detector outputs to COCO results: plain Python values, ``(x, y, w, h)`` boxes, RLE masks.

Detector outputs follow torchvision's detection models: per image a dict with ``boxes`` ``[N, 4]``
``(x1, y1, x2, y2)`` in continuous absolute pixels, ``scores`` ``[N]``, ``labels`` ``[N]``, optionally ``masks``
(``[N, 1, H, W]`` or ``[N, H, W]`` probabilities) and ``keypoints`` (``[N, K, 3]``). Tensors are read duck-typed
(anything with ``.detach()``), so this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def to_numpy(value: Any) -> np.ndarray:
    """A CPU numpy array from a numpy array, a list, a Python scalar or a torch tensor on any device."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def plain(value: Any) -> Any:
    """A Python ``int``/``float``/``str`` (or a list of them) from a tensor, a numpy value or a Python value."""
    if hasattr(value, "detach") or isinstance(value, (np.ndarray, np.generic)):
        return to_numpy(value).tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def encode_mask(mask: Any) -> dict:
    """A binary mask (array or tensor ``[H, W]``, any dtype, nonzero = inside) -> COCO compressed RLE
    ``{"size": [H, W], "counts": str}``, ready for JSON and for :func:`convzoo.evaluation.evaluate_coco`."""
    array = to_numpy(mask)
    if array.ndim != 2:
        raise ValueError(f"encode_mask expects a mask [H, W], got shape {list(array.shape)}")
    rle = mask_utils.encode(np.asfortranarray(array != 0, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def results_from_predictions(image_ids: Sequence, predictions: Sequence[dict], category_ids: Sequence | None = None,
                             mask_threshold: float = 0.5) -> list[dict]:
    """COCO result dicts ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` from detector outputs.

    ``predictions[i]`` belongs to image ``image_ids[i]`` (a list, or a tensor of ids); ``category_ids[label]`` maps a
    label to a COCO category id (default: the label itself). ``masks`` become ``"segmentation"`` (RLE of probability
    ``>= mask_threshold``), ``keypoints`` ``[N, K, 3]`` become ``"keypoints"`` ``[x1, y1, s1, ...]``. Every value is
    plain Python, so the list goes straight to ``json.dump``.
    """
    image_ids = plain(image_ids)
    category_ids = plain(category_ids) if category_ids is not None else None
    if len(image_ids) != len(predictions):
        raise ValueError(f"{len(image_ids)} image ids for {len(predictions)} predictions")
    results = []
    for image_id, pred in zip(image_ids, predictions):
        boxes = to_numpy(pred["boxes"]).astype(np.float64).reshape(-1, 4)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()
        labels = to_numpy(pred["labels"]).astype(np.int64).reshape(-1).tolist()
        scores = to_numpy(pred["scores"]).astype(np.float64).reshape(-1).tolist()
        if not len(xywh) == len(labels) == len(scores):
            raise ValueError(f"image {image_id!r}: {len(xywh)} boxes, {len(labels)} labels, {len(scores)} scores")
        masks = to_numpy(pred["masks"]) if "masks" in pred else None
        keypoints = to_numpy(pred["keypoints"]).astype(np.float64) if "keypoints" in pred else None
        for i, (box, label, score) in enumerate(zip(xywh, labels, scores)):
            result = {"image_id": image_id, "category_id": category_ids[label] if category_ids else label,
                      "bbox": box, "score": score}
            if masks is not None:
                result["segmentation"] = encode_mask(masks[i].reshape(masks.shape[-2:]) >= mask_threshold)
            if keypoints is not None:
                result["keypoints"] = keypoints[i].reshape(-1).tolist()
            results.append(result)
    return results
