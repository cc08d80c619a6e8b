"""The lecture's claims as experiments: each one a short script on the public API (``convzoo.train.fit``), run by
``convzoo experiment NAME`` or ``run_experiment(NAME, ...)``; it writes ``OUT/NAME.json`` (every run's curves,
final metrics, seeds, wall and CPU seconds, the machine) and ``OUT/NAME.png``.

    from convzoo.experiments import run_experiment
    result = run_experiment("label_smoothing", size="quick", out="exp")   # result["verdict"], result["summary"]

Sizes: ``quick`` (seconds: a smoke test, the figures mean nothing), ``medium`` (what a 2-core CPU affords in
minutes) and ``full`` (the paper's scale); each module's docstring states its three sizes. This module imports no
torch: ``EXPERIMENTS`` lists the names for the command line's help.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# name -> (module in this package, one line: the claim)
EXPERIMENTS = {
    "degradation": ("degradation", "plain-20/56 vs ResNet-20/56 on CIFAR-10 (He et al. 2015, Fig. 6)"),
    "batchnorm": ("batchnorm", "without BN vs BN at 1x/5x/30x the lr and BN-sigmoid (Ioffe & Szegedy 2015, Fig. 2)"),
    "label_smoothing": ("label_smoothing", "label smoothing 0.1 vs 0: accuracy and calibration (Szegedy et al. 2016)"),
    "aux_classifiers": ("aux_classifiers", "GoogLeNet's auxiliary heads (weight 0.3) on vs off (Szegedy et al. 2014)"),
    "roi_align": ("roi_align", "RoIAlign vs RoIPool in Mask R-CNN on the generated shapes (He et al. 2017, Table 2c)"),
    "transfer": ("transfer", "scratch vs frozen features vs fine-tuning at 1%/10%/100% of the target labels"),
    "beyond_images": ("beyond_images", "1D (MNIST-1D) and 3D (voxels) networks: convolutions beyond images"),
}


def run_experiment(name: str, size: str = "full", seeds: int | None = None, out: str | Path | None = None,
                   data_root: str | Path = "data", threads: int = 1, device: str | None = None,
                   reverse: bool = False) -> dict:
    """Run experiment ``name`` at ``size`` with seeds 0..seeds-1 (None: the experiment's default) in ``out``
    (default ``experiments/NAME``); return its result (also written to ``out/NAME.json``). ``reverse``: train the
    independent runs last to first (a second process on the same ``out`` shares the work)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads!r}")
    from convzoo.experiments.runner import Context

    module = importlib.import_module(f"{__name__}.{EXPERIMENTS[name][0]}")
    count = module.DEFAULT_SEEDS if seeds is None else seeds
    ctx = Context(name, size, list(range(count)), Path(out) if out else Path("experiments") / name, Path(data_root),
                  threads, device, reverse)
    return module.run(ctx)


__all__ = ["EXPERIMENTS", "run_experiment"]
