"""RoIAlign forward + backward on the CPU: torchvision's kernel against convzoo's (same forward, separable backward).

    python benchmarks/bench_roi_align.py [--reps 5] [--threads 2]

For each configuration (map size, RoIs, output size; sampling ratio 2, 128 channels, 4 images) it checks that the
outputs are identical and the gradients agree, then prints the best time of torchvision and of convzoo, timed
alternately, and the ratio convzoo / torchvision (< 1: convzoo is faster). Maps above the separable limit fall back
to torchvision's backward, so their ratio is about 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_times  # noqa: E402

from convzoo.detection.ops import roi_align  # noqa: E402

# (map side, RoIs, output size): 128-px shapes P2 box and mask poolers, a 320-px P2, a 512-px P2
CASES = ((32, 256, 7), (32, 64, 14), (80, 1024, 7), (80, 128, 14), (128, 1024, 7))


def random_rois(count: int, images: int, extent: float) -> torch.Tensor:
    corner = torch.rand(count, 2) * extent * 0.9
    size = 4 + torch.rand(count, 2) * extent * 0.3
    image = torch.randint(0, images, (count, 1)).sort(0).values.float()
    return torch.cat([image, corner, corner + size], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads")
    print(f"{'map':>8} {'RoIs':>5} {'out':>4} {'torchvision ms':>15} {'convzoo ms':>11} {'ratio':>6}")
    for side, count, size in CASES:
        features = torch.randn(4, 128, side, side, requires_grad=True)
        rois = random_rois(count, 4, side * 4.0)
        weight = torch.randn(count, 128, size, size)

        def step(op, features=features, rois=rois, size=size, weight=weight):
            def run() -> None:
                (op(features, rois, size, 0.25, 2, False) * weight).sum().backward()
            return run

        ours, theirs = roi_align(features, rois, size, 0.25, 2, False), torchvision.ops.roi_align(
            features, rois, size, 0.25, 2, False)
        assert torch.equal(ours, theirs)
        (grad_ours,) = torch.autograd.grad((ours * weight).sum(), features)
        (grad_theirs,) = torch.autograd.grad((theirs * weight).sum(), features)
        torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-4, atol=1e-3)
        reference, convzoo = best_times([step(torchvision.ops.roi_align), step(roi_align)], args.reps)
        print(f"{side:>4}x{side:<3} {count:>5} {size:>4} {reference * 1e3:>15.1f} {convzoo * 1e3:>11.1f} "
              f"{convzoo / reference:>6.2f}")


if __name__ == "__main__":
    main()
