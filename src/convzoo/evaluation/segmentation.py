"""Semantic segmentation scores from one confusion matrix accumulated over the whole data set.

    cm = sum(confusion_matrix(pred, target, num_classes) for pred, target in batches)   # streaming, any order
    scores = scores_from_confusion(cm)          # {"mIoU", "IoU", "pixel_accuracy", "mean_accuracy", "fwIoU", ...}
    scores = segmentation_scores(predictions, targets, num_classes)   # the same in one call

The definitions are those of Long et al. 2015 (FCN), section 5, with ``n_ij`` the pixels of class ``i`` predicted
as ``j`` and ``t_i = sum_j n_ij``: pixel accuracy ``sum_i n_ii / sum_i t_i``, mean accuracy
``(1/K) sum_i n_ii / t_i``, mean IoU ``(1/K) sum_i n_ii / (t_i + sum_j n_ji - n_ii)`` and frequency-weighted IoU
``(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)``.

Conventions (stated, and tested against torchmetrics where it agrees):

- **One matrix for the data set.** IoU is intersection over union of the pixels of *all* images, as PASCAL VOC's
  devkit, mmsegmentation and torchvision's references compute it; not the mean of per-image IoUs (torchmetrics'
  ``MeanIoU`` averages per image, its issue #2558), which weighs a small image as much as a large one.
- **Ignored pixels.** A pixel whose target *or* prediction is ``ignore_index`` is removed before counting: its row
  and column are not in the matrix, as the fix of torchmetrics #312 strips them (dropping only the class's score
  from the mean, as before that fix, still counts its pixels in the other classes' unions). With
  ``ignore_index >= num_classes`` (VOC's 255) predictions never take it, so only the target decides.
- **Absent classes.** A class with no pixel in the target and none predicted has union 0: its IoU and accuracy
  are NaN and the means leave it out (``nanmean``, as torchmetrics and mmsegmentation); a class predicted but not in
  the target has IoU 0 and counts. A mean over no class at all is NaN.
"""

from __future__ import annotations

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255
                     ) -> torch.Tensor:
    """Tensor[K, K] int64 counts ``cm[t, p]`` (rows target, columns prediction) of the pixels of ``pred`` and
    ``target`` (int tensors of the same shape, any shape: ``(N, H, W)`` label maps). Pixels whose target or
    prediction equals ``ignore_index`` are left out; any other value outside ``[0, K)`` is an error."""
    if pred.shape != target.shape:
        raise ValueError(f"predictions and targets must have the same shape, got {list(pred.shape)} and "
                         f"{list(target.shape)}")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = (target != ignore_index) & (pred != ignore_index)
        pred, target = pred[keep], target[keep]
    for name, values in (("target", target), ("prediction", pred)):
        if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)][0]
            raise ValueError(f"{name} label {int(bad)} is outside the classes 0..{num_classes - 1}"
                             + (f" and not the ignore index {ignore_index}" if ignore_index is not None else ""))
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def scores_from_confusion(cm: torch.Tensor) -> dict:
    """The scores of a Tensor[K, K] confusion matrix (rows target, columns prediction; summed over batches and
    processes): ``mIoU``, ``IoU`` (list of K floats, NaN for an absent class), ``pixel_accuracy``,
    ``mean_accuracy``, ``accuracy`` (per class, list), ``fwIoU`` and ``pixels`` (the counted pixels)."""
    cm = cm.double()
    true_positive = cm.diag()
    target_pixels, predicted_pixels = cm.sum(1), cm.sum(0)  # t_i, sum_j n_ji
    union = target_pixels + predicted_pixels - true_positive
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), nan)
    accuracy = torch.where(target_pixels > 0, true_positive / target_pixels.clamp(min=1), nan)
    total = cm.sum()
    frequency = target_pixels / total if total > 0 else torch.zeros_like(target_pixels)
    present = target_pixels > 0  # fwIoU: weighted by the target's frequency, so only target classes count
    return {"mIoU": _nanmean(iou), "IoU": iou.tolist(),
            "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else float("nan"),
            "mean_accuracy": _nanmean(accuracy), "accuracy": accuracy.tolist(),
            "fwIoU": float((frequency[present] * iou[present]).sum()) if total > 0 else float("nan"),
            "pixels": int(total)}


def segmentation_scores(predictions, targets, num_classes: int, ignore_index: int | None = 255) -> dict:
    """:func:`scores_from_confusion` of the whole data set: ``predictions`` and ``targets`` are label maps
    (Tensor[N, H, W] or Tensor[H, W]) or sequences of them (images of different sizes), paired in order."""
    if torch.is_tensor(predictions) != torch.is_tensor(targets):
        raise ValueError("predictions and targets must both be tensors or both be sequences of label maps")
    if torch.is_tensor(predictions):
        predictions, targets = [predictions], [targets]
    predictions, targets = list(predictions), list(targets)
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions and {len(targets)} targets")
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for pred, target in zip(predictions, targets):
        cm += confusion_matrix(torch.as_tensor(pred), torch.as_tensor(target), num_classes, ignore_index).cpu()
    return scores_from_confusion(cm)


def _nanmean(values: torch.Tensor) -> float:
    kept = values[~values.isnan()]
    return float(kept.mean()) if kept.numel() else float("nan")
