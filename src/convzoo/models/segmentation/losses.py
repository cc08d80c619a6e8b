"""Segmentation losses: per-pixel cross-entropy with an ignore label, soft Dice, U-Net's weight maps.

``segmentation_loss(model(images), masks)`` reads the model's output dict (``{"out": ..., "aux": ...}``) and
returns named scalar losses, already weighted, whose sum the engine optimizes:

    losses = segmentation_loss(outputs, target, ignore_index=255, dice_weight=0.5)   # {"ce", "aux", "dice"}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                        weight_map: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

    ``logits`` Tensor[N, K, H, W], ``target`` LongTensor[N, H, W] (values in [0, K) or ``ignore_index``),
    ``weight_map`` Tensor[N, H, W] or None: each pixel's loss times its weight (U-Net's Eq. 1 with the weights of
    Eq. 2), still divided by the number of counted pixels, so an all-ones map gives the plain mean. Without a
    weight map this equals ``F.cross_entropy(logits, target, ignore_index=ignore_index)``, except that a batch
    with no counted pixel gives 0 instead of NaN (a random crop of ignored pixels must not stop training).
    """
    valid = (target != ignore_index).sum().clamp(min=1)
    if weight_map is None:
        return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum") / valid
    if weight_map.shape != target.shape:
        raise ValueError(f"weight_map must have the target's shape {list(target.shape)}, "
                         f"got {list(weight_map.shape)}")
    per_pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")  # (N, H, W), 0 ignored
    return (per_pixel * weight_map.to(per_pixel.dtype)).sum() / valid


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, smooth: float = 1.0
              ) -> torch.Tensor:
    """1 - the soft Dice coefficient averaged over the K classes, over the batch's counted pixels.

    Per class c, with p the softmax probabilities and t the one-hot target over the pixels not ``ignore_index``:
    Dice_c = (2 sum p_c t_c + smooth) / (sum p_c + sum t_c + smooth) (Milletari et al. 2016, V-Net, Eq. 1 with
    plain sums in the denominator; ``smooth`` keeps a class absent from both prediction and target at Dice 1).
    Shapes as ``pixel_cross_entropy``.
    """
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (N, 1, H, W)
    probs = logits.softmax(1) * valid  # (N, K, H, W): ignored pixels count for no class
    onehot = F.one_hot(target.masked_fill(~valid[:, 0], 0), num_classes).permute(0, 3, 1, 2) * valid  # (N, K, H, W)
    intersection = (probs * onehot).sum((0, 2, 3))  # (K,)
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1.0 - ((2.0 * intersection + smooth) / (total + smooth)).mean()


def segmentation_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, ignore_index: int = 255,
                      dice_weight: float = 0.0, aux_weight: float = 0.4,
                      weight_map: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Named scalar losses of a segmenter's ``outputs`` for ``target`` LongTensor[N, H, W].

    ``"ce"``: ``pixel_cross_entropy`` of ``outputs["out"]`` (with ``weight_map`` Tensor[N, H, W] if given);
    ``"aux"``: ``aux_weight`` x the same for ``outputs["aux"]`` when the model has an auxiliary head and
    ``aux_weight > 0`` (torchvision's reference scripts use 0.5 with FCN and DeepLabv3; PSPNet, Zhao et al. 2017,
    Sec. 3.3, 0.4); ``"dice"``: ``dice_weight`` x ``dice_loss`` of ``outputs["out"]`` when ``dice_weight > 0``.
    The logits must have the target's height and width.
    """
    for name, value in (("dice_weight", dice_weight), ("aux_weight", aux_weight)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    logits = outputs["out"]
    if logits.shape[-2:] != target.shape[-2:] or logits.shape[0] != target.shape[0]:
        raise ValueError(f"logits of shape {list(logits.shape)} do not fit the target of shape "
                         f"{list(target.shape)} (expected [N, K, H, W] and [N, H, W])")
    losses = {"ce": pixel_cross_entropy(logits, target, ignore_index, weight_map)}
    if "aux" in outputs and aux_weight > 0:
        losses["aux"] = aux_weight * pixel_cross_entropy(outputs["aux"], target, ignore_index, weight_map)
    if dice_weight > 0:
        losses["dice"] = dice_weight * dice_loss(logits, target, ignore_index)
    return losses


def unet_weight_map(mask: torch.Tensor | np.ndarray, class_weights: Sequence[float] | None = None,
                    w0: float = 10.0, sigma: float = 5.0, *, background: int = 0, ignore_index: int = 255
                    ) -> torch.Tensor:
    """U-Net's pixel weights (Ronneberger et al. 2015, Eq. 2): w(x) = w_c(x) + w0 exp(-(d1(x) + d2(x))^2 / (2 sigma^2)).

    ``mask`` (H, W) integer labels. The objects are the connected components (4-neighbourhood) of the pixels that
    are neither ``background`` nor ``ignore_index``; d1 and d2 are each pixel's Euclidean distances to the nearest
    and the second-nearest object. The border term is added on ``background`` pixels only (the gaps between
    touching cells, which the paper's Figure 3d weights), and only where there are two objects or more.
    ``class_weights[c]`` is w_c for label c; None balances the class frequencies (w_c = pixels / (classes present x
    pixels of c), so the mean weight is 1). ``ignore_index`` pixels get weight 0. Defaults w0 = 10, sigma = 5
    pixels are the paper's (Section 3). Returns Tensor[H, W] float32.
    """
    from scipy import ndimage  # scikit-learn's dependency; imported here so that the losses load without it

    labels = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"mask must be an (H, W) array of integer labels, got shape {list(labels.shape)} "
                         f"of {labels.dtype}")
    if w0 < 0 or sigma <= 0:
        raise ValueError(f"w0 must be >= 0 and sigma > 0, got w0={w0!r}, sigma={sigma!r}")
    counted = labels != ignore_index
    classes, counts = np.unique(labels[counted], return_counts=True)
    weights = np.zeros(labels.shape, dtype=np.float64)
    for label, count in zip(classes, counts):
        if class_weights is None:
            weight = counted.sum() / (len(classes) * count)
        elif not 0 <= label < len(class_weights):
            raise ValueError(f"class_weights has {len(class_weights)} entries, but the mask has label {label}")
        else:
            weight = class_weights[label]
        weights[labels == label] = weight
    objects, count = ndimage.label(counted & (labels != background))  # (H, W): 0 or the object's number 1..count
    if count >= 2 and w0 > 0:
        # distance of every pixel to each object: (count, H, W); the two smallest per pixel are d1, d2
        distances = np.stack([ndimage.distance_transform_edt(objects != k) for k in range(1, count + 1)])
        d1, d2 = np.partition(distances, 1, axis=0)[:2]
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma ** 2))
        weights += np.where(labels == background, border, 0.0)
    return torch.from_numpy(weights.astype(np.float32))
