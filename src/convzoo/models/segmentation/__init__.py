"""Semantic segmentation models (every pixel labelled) and their losses.

Models return ``{"out": logits Tensor[N, K, H, W]}`` (plus ``"aux"`` with an auxiliary head); see ``base.py``.
"""

from convzoo.models.segmentation.base import Segmenter
from convzoo.models.segmentation.losses import dice_loss, pixel_cross_entropy, segmentation_loss, unet_weight_map
from convzoo.models.segmentation.unet import UNet, center_crop, unet, unet_output_size

__all__ = ["Segmenter", "UNet", "center_crop", "dice_loss", "pixel_cross_entropy", "segmentation_loss", "unet",
           "unet_output_size", "unet_weight_map"]
