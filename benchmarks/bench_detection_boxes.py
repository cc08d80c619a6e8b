"""convzoo's box functions, anchors, matcher and sampler against torchvision's, side by side in one process.

    python benchmarks/bench_detection_boxes.py [--repeats 20] [--threads 1]

Prints, per operation, the median time of torchvision and of convzoo (timed alternately) and their ratio
(> 1: convzoo is slower), after checking that both give the same result. Sizes are those of Faster R-CNN
R50-FPN on an 800x1216 image: about 242k anchors, 2000 proposals, 20 ground-truth boxes, 512 RoIs x 91 classes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder
from torchvision.models.detection._utils import Matcher as TorchvisionMatcher
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from convzoo.detection import anchors, boxes, matcher, sampler


def median_seconds(reference: Callable[[], object], ours: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of both, timed alternately so that both see the same load of a shared machine."""
    reference(), ours()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, record in ((reference, times[0]), (ours, times[1])):
            start = time.perf_counter()
            function()
            record.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def random_boxes(n: int, size: float = 800.0) -> torch.Tensor:
    x1y1 = torch.rand(n, 2) * size
    return torch.cat([x1y1, x1y1 + 1 + torch.rand(n, 2) * size / 4], dim=1)


def cases() -> list[tuple[str, Callable[[], torch.Tensor], Callable[[], torch.Tensor]]]:
    gt, proposals = random_boxes(20), random_boxes(2000)
    rois, deltas = random_boxes(512), torch.randn(512, 91 * 4)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    image_size = (800, 1216)
    feature_sizes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    sizes, ratios = ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5
    reference_generator = TorchvisionAnchorGenerator(sizes, ratios)
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    features = [torch.zeros(1, 1, h, w) for h, w in feature_sizes]
    uncached_generator = anchors.AnchorGenerator(sizes, ratios, cache_size=0)
    cached_generator = anchors.AnchorGenerator(sizes, ratios)
    all_anchors = reference_generator(images, features)[0]
    anchor_iou = torchvision.ops.box_iou(random_boxes(20, 1000), all_anchors)
    reference_matcher = TorchvisionMatcher(0.7, 0.3, allow_low_quality_matches=True)
    labels = (reference_matcher(anchor_iou) >= 0).long()

    def sample(function: Callable[[], tuple]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            torch.manual_seed(0)
            pos, neg = function()
            return torch.cat([pos.flatten(), neg.flatten()])
        return run

    return [
        ("box_iou 20 x 2000", lambda: torchvision.ops.box_iou(gt, proposals), lambda: boxes.box_iou(gt, proposals)),
        ("encode 512", lambda: coder.encode_single(gt.repeat(26, 1)[:512], rois),
         lambda: boxes.encode_boxes(gt.repeat(26, 1)[:512], rois, (10.0, 10.0, 5.0, 5.0))),
        ("decode 512 x 91 classes", lambda: coder.decode_single(deltas, rois),
         lambda: boxes.decode_boxes(deltas, rois, (10.0, 10.0, 5.0, 5.0))),
        ("anchors FPN 800x1216 (uncached)", lambda: reference_generator(images, features)[0],
         lambda: torch.cat(uncached_generator(image_size, feature_sizes))),
        ("anchors FPN 800x1216 (cached)", lambda: reference_generator(images, features)[0],
         lambda: torch.cat(cached_generator(image_size, feature_sizes))),
        ("match 20 x 242k (low quality)", lambda: reference_matcher(anchor_iou),
         lambda: matcher.match(anchor_iou, 0.7, 0.3, allow_low_quality=True)),
        ("sample 256 of 242k", sample(lambda: [torch.where(m)[0] for m in
                                              (x[0] for x in BalancedPositiveNegativeSampler(256, 0.5)([labels]))]),
         sample(lambda: [idx.sort().values for idx in sampler.sample_labels(labels, 256, 0.5)])),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"{'operation':36s} {'torchvision ms':>15s} {'convzoo ms':>11s} {'ratio':>6s}")
    for name, reference, ours in cases():
        torch.testing.assert_close(ours(), reference(), rtol=1e-5, atol=1e-4)
        t_reference, t_ours = median_seconds(reference, ours, args.repeats)
        print(f"{name:36s} {t_reference * 1e3:15.3f} {t_ours * 1e3:11.3f} {t_ours / t_reference:6.2f}")


if __name__ == "__main__":
    main()
