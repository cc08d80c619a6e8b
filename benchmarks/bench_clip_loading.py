"""Data loading against the training step for clips and volumes: the CPU time of one batch from the data set
(``__getitems__``: moving-mnist clips generated on the fly; voxel grids indexed and standardized) against the CPU
time of one training step (forward, backward, AdamW) of the recipe's model on that batch, one thread.

Process CPU time (``time.process_time``), not wall time, so that other jobs on a shared machine do not distort
it; the median of ``--reps`` batches each. Also the one-off costs: generating the voxel splits and reading a
folder of ``.npy`` grids (per file).

    python benchmarks/bench_clip_loading.py --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from convzoo import create_model
from convzoo.data import load_data
from convzoo.data.voxels import generate_voxels, read_voxel_folder

# (label, --data, frames, image size, model, model options, batch size)
CASES = [
    ("clips 16x64x64", "moving-mnist", 16, 64, "r2plus1d_18", {"width": 8}, 16),
    ("clips 16x32x32", "moving-mnist", 16, 32, "r2plus1d_18", {"width": 8}, 16),
    ("voxels 32^3", "voxels", None, None, "voxnet", {}, 8),
    ("voxels 32^3", "voxels", None, None, "r3d_18", {"width": 8}, 16),
]


def cpu_seconds(function, reps: int) -> float:
    """The median process CPU seconds of ``reps`` calls of ``function`` after one warm-up."""
    function()
    times = []
    for _ in range(reps):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default="../shared/data/mnist", help="MNIST folder (default: ../shared/data/mnist)")
    parser.add_argument("--reps", type=int, default=5, help="batches timed per case (default: 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    splits_of = {}
    print("| data | model | batch | loading ms | step ms | loading / step |")
    print("|---|---|---:|---:|---:|---:|")
    for label, data, frames, size, name, options, batch in CASES:
        key = (data, frames, size)
        if key not in splits_of:
            spec = f"{data}:{args.mnist}" if data == "moving-mnist" and Path(args.mnist).is_dir() else data
            splits_of[key] = load_data(spec, image_size=size, frames=frames)
        splits = splits_of[key]
        train = splits.train

        def load(train=train, batch=batch):
            return train.__getitems__(rng.integers(len(train), size=batch).tolist())

        x, y = load()
        model = create_model(name, num_classes=splits.num_classes, in_chans=1, **options).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer, x=x, y=y):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

        loading, training = cpu_seconds(load, args.reps), cpu_seconds(step, args.reps)
        width = f" --width {options['width']}" if options else ""
        print(f"| {label} | {name}{width} | {batch} | {loading * 1e3:.1f} | {training * 1e3:.0f} | "
              f"{100 * loading / training:.2f}% |")
    start = time.process_time()
    generate_voxels(512, seed=0)
    print(f"\ngenerating 512 voxel grids: {time.process_time() - start:.2f} s CPU")
    with tempfile.TemporaryDirectory() as folder:
        grids, labels = generate_voxels(200, seed=1)
        for i, (grid, label) in enumerate(zip(grids, labels)):
            (Path(folder) / str(label)).mkdir(exist_ok=True)
            np.save(Path(folder) / str(label) / f"{i}.npy", grid)
        start = time.process_time()
        read_voxel_folder(Path(folder))
        print(f"reading 200 .npy grids of 32^3: {(time.process_time() - start) / 200 * 1e3:.2f} ms CPU a file")


if __name__ == "__main__":
    main()
