"""Convolutions beyond images: 1D signals, text and 3D volumes, in the same form as the image experiments (the
lecture's "Beyond images"; the 1D and 3D tasks of convzoo).

- 1D: MNIST-1D (Greydanus 2020; ``--data mnist1d:PATH``, 40-sample signals): a plain 1D CNN in the course's
  grammar against a 1D ResNet-20 (``resnet20`` with one spatial axis).
- 1D over tokens: Kim (2014) CNN-rand (``kim_cnn``: windows 3/4/5 x 100 maps, max-over-time pooling, dropout 0.5,
  max-norm 3, Adadelta, batch 50, the text task's defaults) on TREC (``--data text:DIR/TREC``, 6 question types,
  the paper's Table 2: 91.2%).
- 3D: the generated solids (``--data voxels``, 32^3 occupancy grids of 12 classes): VoxNet (Maturana & Scherer
  2015, ``voxnet``) against a small 3D residual network in the course's grammar (``RESNET_3D``).

Reported: test accuracy per task and model (mean +- std over seeds) and the dev-accuracy curves. The claim: the
same convolutional machinery learns signals and volumes; on the 1D task the residual network is the stronger.

A task is one entry of ``TASKS``: (name, a function of the context that returns the ``--data`` spec, the models,
a training recipe).

Sizes: full: all of MNIST-1D (4,000 training signals), 60 epochs; the generated voxels (2,400 training grids),
30 epochs; TREC 25 epochs (Kim's); medium: the same data, 15, 3 and 4 epochs (voxels: a quarter of the training
grids); quick: a tenth of the 8x8 digits read as 64-sample signals (rows one after another), 120 generated
two-class sentences (``toy_sentences``) and 36 generated grids (``voxels:DIR``), 1 epoch each.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from convzoo.experiments.runner import Context, curve, figure, mean_std, pm, train, write_result
from convzoo.options import ClassificationOptions, TextOptions
from convzoo.train import TrainConfig

PLAIN_1D = "spec:CB-32-5-1-same,M-2-2,CB-64-5-1-same,M-2-2,F,H-128"
RESNET_3D = ("spec:CB-16-3-2-same,R-[CB-16-3-1-same,CB-16-3-1-same],M-2-2,CB-32-3-1-same,"
             "R-[CB-32-3-1-same,CB-32-3-1-same],M-2-2,F,H-128")
DEFAULT_SEEDS = 1


def digits_as_signals(path: Path) -> Path:
    """The 8x8 digits as an MNIST-1D-shaped archive (x [N, 64] rows one after another, y, x_test, y_test)."""
    from sklearn.datasets import load_digits

    if not path.is_file():
        digits = load_digits()
        x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x[:1400], y=y[:1400], x_test=x[1400:], y_test=y[1400:])
    return path


def small_voxels(root: Path, sizes: dict[str, int]) -> Path:
    """Generated solids (32^3) written as ``root/<split>/<class>/<i>.npy`` for ``--data voxels:root``."""
    from convzoo.data.voxels import SPLIT_SEEDS, VOXEL_CLASSES, generate_voxels

    if not (root / "test").is_dir():
        for split, count in sizes.items():
            grids, labels = generate_voxels(count, SPLIT_SEEDS[split])
            for i, (grid, label) in enumerate(zip(grids, labels)):
                folder = root / split / VOXEL_CLASSES[label]
                folder.mkdir(parents=True, exist_ok=True)
                np.save(folder / f"{i}.npy", grid.astype(np.uint8))
    return root


def toy_sentences(path, n: int = 120, seed: int = 0) -> Path:
    """A ``label tokens`` file of ``n`` lines: two classes told apart by one word among filler words."""
    rng = random.Random(seed)
    words = {0: ["dull", "awful", "boring"], 1: ["great", "superb", "moving"]}
    filler = ["the", "film", "is", "a", "plot", "very"]
    lines = []
    for i in range(n):
        sentence = rng.sample(filler, 3) + [rng.choice(words[i % 2])]
        rng.shuffle(sentence)
        lines.append(f"{i % 2} {' '.join(sentence)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _signals(ctx: Context) -> str:
    if ctx.quick:
        return f"mnist1d:{digits_as_signals(ctx.out / 'data' / 'digits1d.npz')}"
    return f"mnist1d:{ctx.data_path('mnist1d')}"


def _volumes(ctx: Context) -> str:
    if ctx.quick:
        return f"voxels:{small_voxels(ctx.out / 'data' / 'voxels', {'train': 24, 'dev': 12, 'test': 12})}"
    return "voxels"


def _sentences(ctx: Context) -> str:
    if ctx.quick:
        return f"text:{toy_sentences(ctx.out / 'data' / 'toy.all')}"
    return f"text:{ctx.data_path('text-classification') / 'TREC'}"


# name, the --data spec, the models, the recipe (epochs by size; the training fraction by size, or the text task's
# own recipe: its defaults are Kim's)
TASKS = [
    ("1D: MNIST-1D", _signals, (PLAIN_1D, "resnet20"), {"epochs": (1, 15, 60), "fraction": (0.1, 1.0, 1.0)}),
    ("1D: text (TREC)", _sentences, ("kim_cnn",), {"epochs": (1, 4, 25), "text": True}),
    ("3D: voxels", _volumes, ("voxnet", RESNET_3D), {"epochs": (1, 3, 30), "fraction": (1.0, 0.25, 1.0)}),
]


def _config(ctx: Context, recipe: dict, model: str, data: str, seed: int) -> TrainConfig:
    epochs = ctx.pick(*recipe["epochs"])
    if recipe.get("text"):  # Kim's recipe is the text task's default (Adadelta, batch 50, constant lr)
        return TrainConfig(model=model, data=data, epochs=epochs, seed=seed, batch_size=ctx.pick(20, None, None),
                           text=TextOptions(embedding_dim=ctx.pick(16, 300, 300)))
    options = ClassificationOptions(train_fraction=ctx.pick(*recipe["fraction"]))
    return TrainConfig(model=model, data=data, epochs=epochs, batch_size=ctx.pick(8, 32, 32), optimizer="adamw",
                       lr=1e-3, seed=seed, classification=options)


def _short(model: str) -> str:
    return {PLAIN_1D: "plain 1D CNN", RESNET_3D: "3D ResNet (spec)", "resnet20": "ResNet-20 (1D)",
            "kim_cnn": "Kim CNN-rand"}.get(model, model)


def run(ctx: Context) -> dict:
    runs = []
    for task, data_of, models, recipe in ctx.ordered(TASKS):
        data = data_of(ctx)
        for model, seed in ctx.ordered((model, seed) for model in models for seed in ctx.seeds):
            config = _config(ctx, recipe, model, data, seed)
            label = f"{task.split(':')[0]}-{_short(model).split()[0].lower()}-seed{seed}"
            runs.append({**train(ctx, label, config), "task": task, "model": _short(model)})
    runs = ctx.ordered(runs)  # --reverse: back in the order of a forward run
    summary = {task: {_short(m): mean_std([r["final"]["test:accuracy"] for r in runs if r["task"] == task and
                                           r["model"] == _short(m) and not r["diverged"]]) for m in models}
               for task, _, models, _ in TASKS}
    verdict = "; ".join(f"{task}: " + ", ".join(f"{m} {pm(s)}" for m, s in rows.items())
                        for task, rows in summary.items())
    fig, axes = figure(len(TASKS), width=4.2)
    for ax, (task, _, _, _) in zip(axes, TASKS):
        for r in runs:
            if r["task"] == task:
                steps, values = curve(r, "dev:accuracy")
                ax.plot(steps, values, marker=".", label=f"{r['model']} (seed {r['seed']})")
        ax.set(xlabel="step", ylabel="dev accuracy", title=task)
        ax.legend(fontsize=8)
    return write_result(ctx, {"runs": runs, "summary": summary, "verdict": verdict}, fig)
