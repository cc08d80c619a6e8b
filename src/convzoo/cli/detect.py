"""convzoo detect train|evaluate|predict: the R-CNN detectors; an alias of convzoo train, evaluate and predict.

convzoo detect train takes every option of convzoo train, with a detector and the generated shapes as the
defaults; the run folder it writes is an ordinary one, so convzoo evaluate and convzoo predict read it too.

examples:
  convzoo detect train --backbone resnet18 --small --max-minutes 15 --clock cpu --out runs/shapes
  convzoo detect evaluate runs/shapes                      COCO bbox/segm/keypoints AP and VOC mAP
  convzoo detect predict runs/shapes a.jpg b.png --out predictions/
  convzoo detect train --model faster_rcnn_r50_fpn --data coco:instances.json:images/ --backbone-weights r50.pth
"""

from __future__ import annotations

import argparse

from convzoo.cli import evaluate, predict, train

DEFAULT_DETECTOR = "mask_rcnn_r50_fpn"


def register(subparsers) -> None:
    parser = subparsers.add_parser("detect", help="train, evaluate and run the R-CNN detectors (an alias of "
                                   "train, evaluate, predict)", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = actions.add_parser("train", help=f"convzoo train with --model {DEFAULT_DETECTOR} --data shapes as defaults",
                             description=train.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                             argument_default=argparse.SUPPRESS)
    train.add_train_arguments(sub, model=DEFAULT_DETECTOR, data="shapes")
    sub.set_defaults(func=train.run)
    sub = actions.add_parser("evaluate", help="convzoo evaluate: COCO AP and VOC mAP of a run",
                             description=evaluate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_evaluate_arguments(sub)
    sub.set_defaults(func=evaluate.run)
    sub = actions.add_parser("predict", help="convzoo predict: draw detections and write COCO results JSON",
                             description=predict.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_predict_arguments(sub)
    sub.set_defaults(func=predict.run)
