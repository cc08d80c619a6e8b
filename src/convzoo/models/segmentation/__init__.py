"""Semantic segmentation models (every pixel labelled) and their losses.

Models return ``{"out": logits Tensor[N, K, H, W]}`` (plus ``"aux"`` with an auxiliary head); see ``base.py``.
"""

from convzoo.models.segmentation.base import Segmenter
from convzoo.models.segmentation.deeplab import (
           FCN,
           DeepLabV3,
           DilatedSegmenter,
           deeplabv3,
           deeplabv3_resnet50,
           fcn,
           fcn_resnet50,
)
from convzoo.models.segmentation.encoder import build_encoder, dilate_stages, load_encoder_weights
from convzoo.models.segmentation.fcn_vgg import FCNVGG, bilinear_kernel, bilinear_upsampling, fcn8s, fcn16s, fcn32s
from convzoo.models.segmentation.heads import ASPP, deeplab_head, fcn_head
from convzoo.models.segmentation.losses import dice_loss, pixel_cross_entropy, segmentation_loss, unet_weight_map
from convzoo.models.segmentation.unet import UNet, center_crop, unet, unet_output_size

__all__ = ["ASPP", "DeepLabV3", "DilatedSegmenter", "FCN", "FCNVGG", "Segmenter", "UNet", "bilinear_kernel",
           "bilinear_upsampling", "build_encoder", "center_crop", "deeplab_head", "deeplabv3", "deeplabv3_resnet50",
           "dice_loss", "dilate_stages", "fcn", "fcn16s", "fcn32s", "fcn8s", "fcn_head", "fcn_resnet50",
           "load_encoder_weights", "pixel_cross_entropy", "segmentation_loss", "unet", "unet_output_size",
           "unet_weight_map"]
