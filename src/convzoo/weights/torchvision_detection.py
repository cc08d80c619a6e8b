"""Load torchvision detector checkpoints: rename the keys of a torchvision state dict to convzoo's.

Covers ``fasterrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn`` and ``keypointrcnn_resnet50_fpn`` (v1, the layouts
built by ``torchvision.models.detection``); the backbone keys (``backbone.body.*``, torchvision's ResNet names) are
already the same. The tensors are not changed, only renamed. Registered as the "torchvision" renamer of
:class:`convzoo.detection.detector.RCNN`, so ``load_weights(model, path, source="torchvision")`` works.
"""

from __future__ import annotations

import re

import torch

from convzoo.weights.mapping import register_renamer

# (torchvision pattern, convzoo replacement), applied in order to every key
TORCHVISION_RULES: tuple[tuple[str, str], ...] = (
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.0\.", r"backbone.fpn.lateral.\1."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.0\.", r"backbone.fpn.output.\1."),
    (r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv."),
    (r"^rpn\.head\.cls_logits\.", "rpn.head.objectness."),
    (r"^rpn\.head\.bbox_pred\.", "rpn.head.deltas."),
    (r"^roi_heads\.mask_head\.(\d+)\.0\.", r"roi_heads.mask_branch.head.convs.\1."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_heads.mask_branch.head.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_heads.mask_branch.head.logits."),
    (r"^roi_heads\.keypoint_predictor\.kps_score_lowres\.", "roi_heads.keypoint_branch.head.logits."),
)
_KEYPOINT_CONV = re.compile(r"^roi_heads\.keypoint_head\.(\d+)\.")


@register_renamer("torchvision", "RCNN")
def convert_torchvision_detection(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision Faster/Mask/Keypoint R-CNN FPN state dict -> the same tensors under convzoo's keys."""
    converted = {}
    for key, value in state_dict.items():
        keypoint_conv = _KEYPOINT_CONV.match(key)
        if keypoint_conv:  # torchvision's Sequential interleaves ReLUs: conv i is entry 2i
            index = int(keypoint_conv.group(1)) // 2
            key = f"roi_heads.keypoint_branch.head.convs.{index}." + key[keypoint_conv.end():]
        for pattern, replacement in TORCHVISION_RULES:
            key = re.sub(pattern, replacement, key)
        converted[key] = value
    return converted
