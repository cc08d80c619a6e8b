"""convzoo vs torchvision Faster/Mask R-CNN R50-FPN: inference and training-step time, same weights, same images,
one process, runs interleaved (the minimum over repetitions is reported, robust to a busy machine).

    python benchmarks/bench_rcnn.py --model mask --size 512 --reps 3 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from torchvision.models import detection as tv_detection

from convzoo.layers import freeze_bn
from convzoo.registry import create_model
from convzoo.weights import load_weights

MODELS = {"faster": ("faster_rcnn_r50_fpn", tv_detection.fasterrcnn_resnet50_fpn),
          "mask": ("mask_rcnn_r50_fpn", tv_detection.maskrcnn_resnet50_fpn)}


def build(kind: str, size: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    name, builder = MODELS[kind]
    reference = builder(weights=None, weights_backbone=None, min_size=size, max_size=size * 4 // 3)
    # without weights torchvision trains BatchNorm and every stage; set it up as its COCO recipe (and ours): frozen
    # BatchNorm, conv1 and layer1 fixed
    freeze_bn(reference.backbone.body)
    for key, parameter in reference.backbone.body.named_parameters():
        parameter.requires_grad_(key.startswith(("layer2", "layer3", "layer4")))
    ours = create_model(name, min_size=size, max_size=size * 4 // 3)
    load_weights(ours, reference.state_dict(), source="torchvision")
    return reference, ours


def timed(fn, model) -> float:
    start = time.perf_counter()
    fn(model)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=tuple(MODELS), default="mask")
    parser.add_argument("--size", type=int, default=512, help="shorter image side")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference, ours = build(args.model, args.size)
    height, width = args.size, args.size * 4 // 3
    images = [torch.rand(3, height, width) for _ in range(args.batch)]
    masks = torch.zeros(2, height, width, dtype=torch.uint8)
    masks[0, 40:200, 50:220] = 1
    masks[1, 150:300, 200:400] = 1
    targets = [{"boxes": torch.tensor([[50.0, 40, 220, 200], [200, 150, 400, 300]]), "labels": torch.tensor([1, 5]),
                "masks": masks} for _ in images]

    def inference(model):
        with torch.no_grad():
            model.eval()(images)

    def train_step(model):
        torch.manual_seed(1)
        model.train()
        model.zero_grad(set_to_none=True)
        sum(model(images, targets).values()).backward()

    for phase, fn in (("inference", inference), ("training step", train_step)):
        fn(reference), fn(ours)  # warm-up
        times = {"torchvision": [], "convzoo": []}
        for _ in range(args.reps):
            times["torchvision"].append(timed(fn, reference))
            times["convzoo"].append(timed(fn, ours))
        best = {k: min(v) for k, v in times.items()}
        print(f"{args.model} R50-FPN {phase}, batch {args.batch} at {height}x{width}, {torch.get_num_threads()} "
              f"threads: torchvision {best['torchvision']:.3f} s, convzoo {best['convzoo']:.3f} s, "
              f"ratio convzoo/torchvision {best['convzoo'] / best['torchvision']:.3f} (min of {args.reps})", flush=True)


if __name__ == "__main__":
    main()
