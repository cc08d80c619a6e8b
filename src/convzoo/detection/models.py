"""Registered R-CNN detectors: one-line builders over shared part factories.

| builder | backbone | proposals | RoI features | extra branch |
|---|---|---|---|---|
| ``fast_rcnn_vgg16`` | VGG-16 conv5_3 (stride 16) | given | RoIPool 7x7 | |
| ``fast_rcnn_r50_c4`` | ResNet C4, res5 head | given | RoIPool 14x14 | |
| ``faster_rcnn_vgg16`` | VGG-16 conv5_3 | RPN, 3 scales x 3 ratios | RoIPool 7x7 | |
| ``faster_rcnn_r50_c4`` | ResNet C4, res5 head | RPN, 5 scales x 3 ratios | RoIAlign 14x14 | |
| ``faster_rcnn_r50_fpn`` | ResNet-50 FPN P2-P6 | RPN, one size per level | RoIAlign 7x7 | |
| ``mask_rcnn_r50_fpn`` | ResNet-50 FPN | RPN | RoIAlign 7x7 | masks (14x14 -> 28x28) |
| ``keypoint_rcnn_r50_fpn`` | ResNet-50 FPN | RPN | RoIAlign 7x7 | 17 keypoints (14 -> 56) |

Every builder takes ``backbone=`` (a registry classifier name, e.g. ``"resnet18"``), ``num_classes`` (with the
background), ``roi_method`` (``"align"`` or ``"pool"``), ``min_size``/``max_size``, ``rpn_config``/``roi_config``
(dataclasses), ``widths`` (FPN builders: channels of the FPN and the heads), ``anchor_sizes`` (FPN builders: one
anchor size per level P2..P6, default 32..512 for 800-px images) and ``backbone_weights`` (an ImageNet state dict
of the classifier). The FPN builders' defaults are torchvision's, so its checkpoints load
(:mod:`convzoo.weights.torchvision_detection`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from convzoo.detection.anchors import AnchorGenerator
from convzoo.detection.backbone import resnet_c4_backbone, resnet_fpn_backbone, vgg_conv5_backbone
from convzoo.detection.detector import RCNN
from convzoo.detection.keypoint_head import KeypointBranch, KeypointHead
from convzoo.detection.mask_head import MaskBranch, MaskHead
from convzoo.detection.poolers import RoIPooler
from convzoo.detection.roi_heads import BoxPredictor, Res5Head, RoIHeads, RoIHeadsConfig, TwoMLPHead
from convzoo.detection.rpn import RegionProposalNetwork, RPNConfig, RPNHead
from convzoo.detection.transform import DetectionTransform
from convzoo.registry import register_model
from convzoo.weights import torchvision_detection  # noqa: F401  (registers the torchvision key renamer)

FPN_ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))  # FPN Sec. 4.1: one scale per level P2..P6
PAPER_ANCHOR_SIZES = ((128, 256, 512),)  # Faster R-CNN Sec. 3.1.1: 128^2, 256^2, 512^2 on one map
C4_ANCHOR_SIZES = ((32, 64, 128, 256, 512),)  # Detectron's C4 setting (COCO has small objects)
ASPECT_RATIOS = (0.5, 1.0, 2.0)  # 1:2, 1:1, 2:1


@dataclass(frozen=True)
class HeadWidths:
    """Channels of the FPN and the heads; the defaults are the papers' (and torchvision's). Smaller numbers make
    small, fast models (e.g. for the generated ``shapes`` set on a CPU)."""

    fpn: int = 256
    box: int = 1024  # fc6 / fc7
    mask: int = 256
    keypoint: int = 512


def _rpn(anchor_sizes, in_channels: int, config: RPNConfig | None) -> RegionProposalNetwork:
    anchors = AnchorGenerator(anchor_sizes, ASPECT_RATIOS)
    return RegionProposalNetwork(anchor_generator=anchors,
                                 head=RPNHead(in_channels, anchors.num_anchors_per_location()[0]), config=config)


def _fpn_rcnn(backbone: str, num_classes: int, roi_method: str, trainable_layers: int, frozen_bn: bool,
              min_size, max_size: int, rpn_config: RPNConfig | None, roi_config: RoIHeadsConfig | None,
              backbone_weights: dict | None, masks: bool = False, num_keypoints: int = 0,
              class_names: list[str] | None = None, widths: HeadWidths | None = None,
              anchor_sizes: tuple[int, ...] | None = None) -> RCNN:
    """Faster/Mask/Keypoint R-CNN with a ResNet-FPN backbone (He et al. 2017, Sec. 3.1 "Network Architecture")."""
    widths = widths or HeadWidths()
    anchors = FPN_ANCHOR_SIZES if anchor_sizes is None else tuple((int(size),) for size in anchor_sizes)
    if len(anchors) != len(FPN_ANCHOR_SIZES):
        raise ValueError(f"anchor_sizes: one size per FPN level P2..P6 (5), got {anchor_sizes}")
    body = resnet_fpn_backbone(backbone, trainable_layers=trainable_layers, frozen_bn=frozen_bn,
                               state_dict=backbone_weights, out_channels=widths.fpn)
    channels, strides = body.out_channels, body.strides[:4]  # RoIs read P2..P5
    mask_branch = keypoint_branch = None
    if masks:
        mask_branch = MaskBranch(pooler=RoIPooler(14, strides, method=roi_method),
                                 head=MaskHead(channels, num_classes, widths.mask))
    if num_keypoints:
        keypoint_branch = KeypointBranch(pooler=RoIPooler(14, strides, method=roi_method),
                                         head=KeypointHead(channels, num_keypoints, widths.keypoint))
    roi_heads = RoIHeads(box_pooler=RoIPooler(7, strides, method=roi_method),
                         box_head=TwoMLPHead(channels * 7 * 7, widths.box),
                         box_predictor=BoxPredictor(widths.box, num_classes),
                         config=roi_config, mask_branch=mask_branch, keypoint_branch=keypoint_branch)
    return RCNN(transform=DetectionTransform(min_size=min_size, max_size=max_size), backbone=body,
                rpn=_rpn(anchors, channels, rpn_config), roi_heads=roi_heads, class_names=class_names)


def _c4_rcnn(backbone: str, num_classes: int, roi_method: str, trainable_layers: int, frozen_bn: bool,
             min_size, max_size: int, rpn_config: RPNConfig | None, roi_config: RoIHeadsConfig | None,
             backbone_weights: dict | None, with_rpn: bool, class_names: list[str] | None = None) -> RCNN:
    """ResNet C4 (He et al. 2016, appendix A): res2-res4 shared, res5 on 14x14 RoI features as the box head."""
    body, res5 = resnet_c4_backbone(backbone, trainable_layers=trainable_layers, frozen_bn=frozen_bn,
                                    state_dict=backbone_weights)
    res5_channels = body.out_channels * 2
    roi_heads = RoIHeads(box_pooler=RoIPooler(14, body.strides, method=roi_method),
                         box_head=Res5Head(res5, res5_channels), box_predictor=BoxPredictor(res5_channels, num_classes),
                         config=roi_config)
    rpn = _rpn(C4_ANCHOR_SIZES, body.out_channels, rpn_config) if with_rpn else None
    return RCNN(transform=DetectionTransform(min_size=min_size, max_size=max_size), backbone=body, rpn=rpn,
                roi_heads=roi_heads, class_names=class_names)


# Fast/Faster R-CNN VGG-16 settings: 600-px shorter side (max 1000), NMS 0.3, 128 RoIs per image at 25% foreground
VGG_ROI_CONFIG = RoIHeadsConfig(batch_size_per_image=128, smooth_l1_beta=1.0, nms_thresh=0.3)
VGG_RPN_CONFIG = RPNConfig(pre_nms_top_n_train=12000, post_nms_top_n_train=2000, pre_nms_top_n_test=6000,
                           post_nms_top_n_test=300, smooth_l1_beta=1.0)


def _vgg_rcnn(backbone: str, num_classes: int, roi_method: str, min_size, max_size: int,
              rpn_config: RPNConfig | None, roi_config: RoIHeadsConfig | None, backbone_weights: dict | None,
              with_rpn: bool, class_names: list[str] | None = None) -> RCNN:
    """VGG-16 conv5_3 + RoIPool 7x7 + fc6/fc7 (4096) as in Fast R-CNN Sec. 2 and Faster R-CNN Sec. 3."""
    body = vgg_conv5_backbone(backbone, state_dict=backbone_weights)
    box_head = TwoMLPHead(body.out_channels * 7 * 7, 4096)
    if backbone_weights is not None:  # Fast R-CNN Sec. 2.2: fc6 and fc7 start as the ImageNet network's FC layers
        for layer, index in ((box_head.fc6, 0), (box_head.fc7, 3)):
            layer.load_state_dict({name: backbone_weights[f"classifier.{index}.{name}"] for name in ("weight", "bias")})
    roi_heads = RoIHeads(box_pooler=RoIPooler(7, body.strides, method=roi_method), box_head=box_head,
                         box_predictor=BoxPredictor(4096, num_classes), config=roi_config)
    rpn = _rpn(PAPER_ANCHOR_SIZES, body.out_channels, rpn_config or VGG_RPN_CONFIG) if with_rpn else None
    return RCNN(transform=DetectionTransform(min_size=min_size, max_size=max_size), backbone=body, rpn=rpn,
                roi_heads=roi_heads, class_names=class_names)


@register_model(kind="detector")
def fast_rcnn_vgg16(*, backbone: str = "vgg16", num_classes: int = 21, roi_method: str = "pool",
                    min_size=600, max_size: int = 1000, roi_config: RoIHeadsConfig | None = None,
                    backbone_weights: dict | None = None, class_names: list[str] | None = None) -> RCNN:
    """Fast R-CNN (Girshick 2015) with VGG-16: proposals from outside, 64 RoIs per image, background IoU [0.1, 0.5)."""
    config = roi_config or replace(VGG_ROI_CONFIG, batch_size_per_image=64, bg_iou_low=0.1)
    return _vgg_rcnn(backbone, num_classes, roi_method, min_size, max_size, None, config, backbone_weights, False,
                     class_names)


@register_model(kind="detector")
def faster_rcnn_vgg16(*, backbone: str = "vgg16", num_classes: int = 21, roi_method: str = "pool",
                      min_size=600, max_size: int = 1000, rpn_config: RPNConfig | None = None,
                      roi_config: RoIHeadsConfig | None = None, backbone_weights: dict | None = None,
                      class_names: list[str] | None = None) -> RCNN:
    """Faster R-CNN (Ren et al. 2015) with VGG-16: RPN with 9 anchors on conv5_3, RoIPool, NMS 0.3."""
    return _vgg_rcnn(backbone, num_classes, roi_method, min_size, max_size, rpn_config,
                     roi_config or VGG_ROI_CONFIG, backbone_weights, True, class_names)


@register_model(kind="detector")
def fast_rcnn_r50_c4(*, backbone: str = "resnet50", num_classes: int = 81, roi_method: str = "pool",
                     trainable_layers: int = 3, frozen_bn: bool = True, min_size=800, max_size: int = 1333,
                     roi_config: RoIHeadsConfig | None = None, backbone_weights: dict | None = None,
                     class_names: list[str] | None = None) -> RCNN:
    """Fast R-CNN with ResNet C4 (res5 as the RoI head), proposals from outside."""
    return _c4_rcnn(backbone, num_classes, roi_method, trainable_layers, frozen_bn, min_size, max_size, None,
                    roi_config, backbone_weights, False, class_names)


@register_model(kind="detector")
def faster_rcnn_r50_c4(*, backbone: str = "resnet50", num_classes: int = 81, roi_method: str = "align",
                       trainable_layers: int = 3, frozen_bn: bool = True, min_size=800, max_size: int = 1333,
                       rpn_config: RPNConfig | None = None, roi_config: RoIHeadsConfig | None = None,
                       backbone_weights: dict | None = None, class_names: list[str] | None = None) -> RCNN:
    """Faster R-CNN with ResNet C4: RPN on res4 (stride 16), res5 on 14x14 RoI features."""
    return _c4_rcnn(backbone, num_classes, roi_method, trainable_layers, frozen_bn, min_size, max_size, rpn_config,
                    roi_config, backbone_weights, True, class_names)


@register_model(kind="detector")
def faster_rcnn_r50_fpn(*, backbone: str = "resnet50", num_classes: int = 91, roi_method: str = "align",
                        trainable_layers: int = 3, frozen_bn: bool = True, min_size=800, max_size: int = 1333,
                        rpn_config: RPNConfig | None = None, roi_config: RoIHeadsConfig | None = None,
                        backbone_weights: dict | None = None, class_names: list[str] | None = None,
                        widths: HeadWidths | None = None,
                        anchor_sizes: tuple[int, ...] | None = None) -> RCNN:
    """Faster R-CNN R50-FPN (Lin et al. 2017), torchvision's ``fasterrcnn_resnet50_fpn`` layout."""
    return _fpn_rcnn(backbone, num_classes, roi_method, trainable_layers, frozen_bn, min_size, max_size, rpn_config,
                     roi_config, backbone_weights, class_names=class_names, widths=widths,
                     anchor_sizes=anchor_sizes)


@register_model(kind="detector")
def mask_rcnn_r50_fpn(*, backbone: str = "resnet50", num_classes: int = 91, roi_method: str = "align",
                      trainable_layers: int = 3, frozen_bn: bool = True, min_size=800, max_size: int = 1333,
                      rpn_config: RPNConfig | None = None, roi_config: RoIHeadsConfig | None = None,
                      backbone_weights: dict | None = None, class_names: list[str] | None = None,
                      widths: HeadWidths | None = None,
                      anchor_sizes: tuple[int, ...] | None = None) -> RCNN:
    """Mask R-CNN R50-FPN (He et al. 2017), torchvision's ``maskrcnn_resnet50_fpn`` layout."""
    return _fpn_rcnn(backbone, num_classes, roi_method, trainable_layers, frozen_bn, min_size, max_size, rpn_config,
                     roi_config, backbone_weights, masks=True, class_names=class_names, widths=widths,
                     anchor_sizes=anchor_sizes)


@register_model(kind="detector")
def keypoint_rcnn_r50_fpn(*, backbone: str = "resnet50", num_classes: int = 2, num_keypoints: int = 17,
                          roi_method: str = "align", trainable_layers: int = 3, frozen_bn: bool = True,
                          min_size=(640, 672, 704, 736, 768, 800), max_size: int = 1333,
                          rpn_config: RPNConfig | None = None, roi_config: RoIHeadsConfig | None = None,
                          backbone_weights: dict | None = None, class_names: list[str] | None = None,
                          widths: HeadWidths | None = None,
                          anchor_sizes: tuple[int, ...] | None = None) -> RCNN:
    """Keypoint R-CNN R50-FPN (He et al. 2017, Sec. 5): person boxes + 17 COCO keypoints, multi-scale training."""
    return _fpn_rcnn(backbone, num_classes, roi_method, trainable_layers, frozen_bn, min_size, max_size, rpn_config,
                     roi_config, backbone_weights, num_keypoints=num_keypoints, class_names=class_names,
                     widths=widths, anchor_sizes=anchor_sizes)
