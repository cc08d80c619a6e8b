"""``convzoo detect train|evaluate|predict``: the R-CNN detectors on ``shapes``, COCO JSON or VOC data.

    convzoo detect train --model mask_rcnn_r50_fpn --backbone resnet18 --data shapes --small --max-minutes 15
    convzoo detect evaluate --run runs/detect            # COCO bbox/segm/keypoints AP + VOC mAP
    convzoo detect predict a.jpg b.png --run runs/detect --out predictions/

Data: ``shapes`` (generated), ``coco:ANNOTATIONS.json:IMAGE_DIR``, ``voc:FOLDER``. A run folder keeps the model's
build options (``model.json``) and the checkpoint (``last.safetensors``), so ``evaluate``/``predict`` need only
``--run``; ``--weights FILE --weights-source torchvision`` loads other checkpoints instead.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from convzoo.data.detection import TransformedDataset, coco_results, detection_augmentation
from convzoo.data.detection_files import CocoDetection, VocDetection, read_rgb
from convzoo.data.detection_shapes import ShapesDataset
from convzoo.detection.engine import DetectionTrainConfig, evaluate_detector, predict_dataset, train_detector
from convzoo.tasks.detection_build import (
    DetectionOptions,
    WithProposals,
    backbone_state,
    build_detector,
    default_backbone,
    iou_types,
    read_proposals,
)
from convzoo.tasks.detection_build import model_options as build_options
from convzoo.weights import load_weights


def load_data(spec: str, split: str, size: int, image_size: int, seed: int):
    """``shapes`` | ``coco:ANN:IMAGES`` | ``voc:DIR`` -> a data set (its first ``size`` samples when ``size`` > 0;
    ``shapes`` uses another seed for ``val``)."""
    kind, _, rest = spec.partition(":")
    indices = list(range(size)) if size > 0 else None
    if kind == "shapes":
        return ShapesDataset(size or 1000, size=image_size, seed=seed + (1 if split == "val" else 0))
    if kind == "coco":
        annotations, _, images = rest.partition(":")
        return CocoDetection(annotations, images, indices=indices)
    if kind == "voc":
        return VocDetection(rest, indices=indices)
    raise ValueError(f"unknown data {spec!r}; expected shapes, coco:ANNOTATIONS.json:IMAGE_DIR or voc:FOLDER")


def model_options(args: argparse.Namespace, dataset) -> dict:
    """The JSON-able build options of the detector (saved as ``model.json`` in the run folder)."""
    options = DetectionOptions(backbone=args.backbone, small=args.small, roi_method=args.roi_method,
                               trainable_layers=args.trainable_layers, anchor_sizes=args.anchor_sizes,
                               min_size=args.min_size, max_size=args.max_size, score_thresh=args.score_thresh)
    built = build_options(args.model, options, dataset)
    built.pop("keypoint_names", None)
    return built


def _evaluate(model, dataset, options: dict, proposals: dict | None = None) -> dict:
    """COCO/VOC metrics of ``model`` on ``dataset`` (its classes, ids and ground truth), with external proposals."""
    ground_truth = dataset.ground_truth() if hasattr(dataset, "ground_truth") else None
    samples = WithProposals(dataset, proposals) if proposals else dataset
    return evaluate_detector(model, samples, dataset.classes, getattr(dataset, "keypoint_names", ()),
                             getattr(dataset, "category_ids", None), iou_types(options["name"]), ground_truth)


def _load_run(args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    if args.run:
        options = json.loads((Path(args.run) / "model.json").read_text())
        model = build_detector(options)
        load_weights(model, Path(args.run) / "last.safetensors")
        return model, options
    options = {"name": args.model, "backbone": args.backbone, "num_classes": args.num_classes,
               "min_size": args.min_size, "max_size": args.max_size, "score_thresh": args.score_thresh}
    model = build_detector(options)
    if args.weights:
        load_weights(model, args.weights, source=args.weights_source)
    return model, options


def run_train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_set = load_data(args.data, "train", args.train_size, args.image_size, args.seed)
    val_set = (train_set if args.val_size == 0
               else load_data(args.data, "val", args.val_size, args.image_size, args.seed))
    options = model_options(args, train_set)
    backbone = None
    if args.backbone_weights:
        backbone = backbone_state(options["backbone"] or default_backbone(options["name"]), args.backbone_weights,
                                  args.weights_source)
    model = build_detector(options, backbone)
    if args.weights:  # a detector checkpoint; layers that follow the label set stay fresh when their shapes differ
        print(load_weights(model, args.weights, source=args.weights_source, ignore_mismatched_head=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.json").write_text(json.dumps(options, indent=1))
    proposals = read_proposals(args.proposals) if args.proposals else None
    if proposals:  # Fast R-CNN: boxes from outside, not flipped with the image, so no flip augmentation
        augmented = WithProposals(train_set, proposals)
    else:
        keypoint_flip, hflip = getattr(train_set, "keypoint_flip", None), args.hflip
        if options.get("num_keypoints") and hflip and keypoint_flip is None:
            print("horizontal flips are off: the data set's keypoints have no mirrored order (keypoint_flip), so a "
                  "flipped image would teach the wrong keypoint names")
            hflip = 0.0
        augmented = (TransformedDataset(train_set, detection_augmentation(hflip, keypoint_flip=keypoint_flip))
                     if hflip else train_set)
    config = DetectionTrainConfig(epochs=args.epochs, max_minutes=args.max_minutes, clock=args.clock,
                                  batch_size=args.batch_size,
                                  lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup,
                                  optimizer=args.optimizer,
                                  workers=args.workers, device=args.device, out=str(out), resume=args.resume)
    (out / "train.json").write_text(json.dumps(asdict(config), indent=1))
    metrics = train_detector(model, augmented, config, eval_fn=lambda m: _evaluate(m, val_set, options, proposals))
    (out / "results.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def run_evaluate(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, options = _load_run(args)
    dataset = load_data(args.data, "val", args.val_size, args.image_size, args.seed)
    metrics = _evaluate(model, dataset, options, read_proposals(args.proposals) if args.proposals else None)
    print(json.dumps(metrics, indent=1))
    return metrics


def run_predict(args: argparse.Namespace) -> dict:
    from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks, save_image

    model, options = _load_run(args)
    names = options.get("class_names") or [str(i) for i in range(options.get("num_classes", 91))]
    images = [read_rgb(path) for path in args.images]
    samples = [(image, {"image_id": index}) for index, image in enumerate(images)]
    detections, image_ids = predict_dataset(model, samples, batch_size=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, image, detection in zip(args.images, images, detections):
        keep = detection["scores"] >= args.draw_thresh
        picture = (image * 255).to(torch.uint8)
        if "masks" in detection and keep.any():
            picture = draw_segmentation_masks(picture, detection["masks"][keep, 0] >= 0.5, alpha=0.45)
        labels = [f"{names[int(c)]} {s:.2f}" for c, s in zip(detection["labels"][keep], detection["scores"][keep])]
        picture = draw_bounding_boxes(picture, detection["boxes"][keep], labels=labels, colors="yellow")
        if "keypoints" in detection and keep.any():
            picture = draw_keypoints(picture, detection["keypoints"][keep, :, :2], colors="red", radius=2)
        save_image(picture.float() / 255, out / f"{Path(path).stem}.png")
    results = coco_results(detections, image_ids)
    for result in results:
        result["file_name"] = str(args.images[result["image_id"]])
    (out / "detections.json").write_text(json.dumps(results))
    return {"images": len(images), "detections": len(results)}


def _sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="mask_rcnn_r50_fpn", help="a registered detector (convzoo models '*rcnn*')")
    parser.add_argument("--backbone", default=None, help="registry classifier for the backbone, e.g. resnet18")
    parser.add_argument("--min-size", type=int, default=None, help="shorter image side after resizing")
    parser.add_argument("--max-size", type=int, default=None, help="longest image side after resizing")
    parser.add_argument("--score-thresh", type=float, default=0.05, help="detections below are dropped")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    parser.add_argument("--data", default="shapes", help="shapes | coco:ANNOTATIONS.json:IMAGE_DIR | voc:FOLDER")
    parser.add_argument("--val-size", type=int, default=100, help="evaluation images (0 in train: the train set)")
    parser.add_argument("--proposals", default=None,
                        help="Fast R-CNN: JSON {image_id: [[x1, y1, x2, y2], ...]} of external proposals")
    parser.add_argument("--image-size", type=int, default=128, help="side of the generated shapes images")
    parser.add_argument("--seed", type=int, default=0)


def register(subparsers) -> None:
    parser = subparsers.add_parser("detect", help="train, evaluate and run the R-CNN detectors",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a detector (checkpoints, logs, resume, torchrun)")
    _model_arguments(train)
    train.add_argument("--train-size", type=int, default=1000, help="training images (coco/voc: the first N)")
    train.add_argument("--small", action="store_true", help="thin heads, few proposals, BatchNorm trained (CPU)")
    train.add_argument("--roi-method", choices=("align", "pool"), default="align", help="RoIAlign or RoIPool")
    train.add_argument("--trainable-layers", type=int, default=None, help="backbone stages trained (5: all)")
    train.add_argument("--anchor-sizes", type=_sizes, default=None, metavar="S2,S3,S4,S5,S6",
                       help="FPN anchor size per level P2..P6 (default 32,64,128,256,512)")
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--max-minutes", type=float, default=0.0, help="stop (and end the schedule) after this")
    train.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                       help="--max-minutes of wall time or of this process's CPU time (a shared machine)")
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--lr", type=float, default=0.02)
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    train.add_argument("--hflip", type=float, default=0.5, help="horizontal flip probability (0: none)")
    train.add_argument("--workers", type=int, default=0)
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    train.add_argument("--weights", default=None, help="initial weights (safetensors or .pth)")
    train.add_argument("--weights-source", default="convzoo", choices=("convzoo", "torchvision", "timm"),
                       help="naming of --weights / --backbone-weights files")
    train.add_argument("--backbone-weights", default=None,
                       help="ImageNet weights of the backbone classifier (safetensors or .pth), e.g. torchvision's")
    train.add_argument("--out", default="runs/detect", help="run folder: model.json, checkpoints, metrics.jsonl")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    train.set_defaults(func=run_train)
    for name, func, text in (("evaluate", run_evaluate, "COCO AP (bbox/segm/keypoints) and VOC mAP"),
                             ("predict", run_predict, "draw detections on images and write COCO results JSON")):
        sub = actions.add_parser(name, help=text)
        _model_arguments(sub)
        sub.add_argument("--run", default=None, help="a run folder of `detect train` (model.json + weights)")
        sub.add_argument("--weights", default=None, help="weights file when not using --run")
        sub.add_argument("--weights-source", default="convzoo", choices=("convzoo", "torchvision"))
        sub.add_argument("--num-classes", type=int, default=91)
        if name == "predict":
            sub.add_argument("images", nargs="+", help="image files")
            sub.add_argument("--out", default="predictions", help="folder for drawn images and detections.json")
            sub.add_argument("--draw-thresh", type=float, default=0.5, help="draw detections scoring at least this")
        sub.set_defaults(func=func)
