"""Label smoothing, epsilon 0.1 against 0 (Szegedy et al. 2016, "Rethinking the Inception Architecture",
Section 7: about 0.2% better top-1 on ImageNet), with calibration (Muller et al. 2019, "When does label smoothing
help?", and Guo et al. 2017: expected calibration error and reliability diagram; :mod:`.calibration`).

ResNet-20 (``resnet20``) trained with ``label_smoothing`` 0.1 and 0.0 over the seeds (at least 3), otherwise
equal: SGD, momentum 0.9, weight decay 5e-4, cosine schedule, batch 64. Reported per epsilon, as mean +- std over
seeds: test accuracy, test cross-entropy (unsmoothed) and ECE (15 bins) of the last weights; the reliability
diagram pools the test predictions of all seeds.

Sizes: full: CIFAR-10 32x32, 45,000 training images, 100 epochs; medium: CIFAR-10 at 16x16, 2,000 training images
(a 22.5th, per class), 4 epochs, a fifth of the test split (2,000 images); quick: 5% of the 8x8 digits (30% of
test), 1 epoch (a smoke test).
"""

from __future__ import annotations

import torch

from convzoo.experiments.calibration import expected_calibration_error, reliability
from convzoo.experiments.runner import (
    Context,
    difference,
    figure,
    mean_std,
    pm,
    split_probabilities,
    train,
    write_result,
)
from convzoo.options import ClassificationOptions
from convzoo.train import TrainConfig

EPSILONS = (0.0, 0.1)
DEFAULT_SEEDS = 3


def run(ctx: Context) -> dict:
    data = "digits" if ctx.quick else ctx.cifar10()
    runs, pooled = [], {}
    for eps, seed in ctx.ordered((eps, seed) for eps in EPSILONS for seed in ctx.seeds):
        options = ClassificationOptions(label_smoothing=eps, train_fraction=ctx.pick(0.05, 2 / 45, 1.0),
                                        eval_fraction=ctx.pick(0.3, 0.2, 1.0))
        config = TrainConfig(model="resnet20", data=data, epochs=ctx.pick(1, 4, 100), batch_size=64,
                             optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False, schedule="cosine",
                             weight_decay=5e-4, seed=seed, image_size=ctx.pick(None, 16, None),
                             classification=options)
        runs.append({**train(ctx, f"eps{eps:g}-seed{seed}", config), "epsilon": eps})
    runs = ctx.ordered(runs)
    for record in runs:  # calibration of the last weights on the test split
        probabilities, labels = split_probabilities(record)
        record["ece"] = expected_calibration_error(probabilities, labels)
        old = pooled.get(record["epsilon"], (torch.empty(0, probabilities.shape[1]), torch.empty(0, dtype=torch.long)))
        pooled[record["epsilon"]] = torch.cat([old[0], probabilities]), torch.cat([old[1], labels])
    summary = {}
    for eps in EPSILONS:
        mine = [r for r in runs if r["epsilon"] == eps]
        summary[f"{eps:g}"] = {"test_accuracy": mean_std([r["final"]["test:accuracy"] for r in mine]),
                               "test_loss": mean_std([r["final"]["test:loss"] for r in mine]),
                               "ece": mean_std([r["ece"] for r in mine]),
                               "reliability": reliability(*pooled[eps])}
    on, off = summary["0.1"], summary["0"]
    verdict = (f"test accuracy eps 0.1 {pm(on['test_accuracy'])} vs eps 0 {pm(off['test_accuracy'])} "
               f"({difference(on['test_accuracy'], off['test_accuracy'])}); ECE eps 0.1 {pm(on['ece'])} vs eps 0 "
               f"{pm(off['ece'])}")
    fig, axes = figure(3, width=4.2)
    for eps, color in zip(EPSILONS, ("tab:blue", "tab:orange")):
        row = summary[f"{eps:g}"]
        table = row["reliability"]
        centers = [(a + b) / 2 for a, b in zip(table["edges"][:-1], table["edges"][1:])]
        shown = [(c, a) for c, a, n in zip(centers, table["accuracy"], table["count"]) if n]
        axes[0].bar([c for c, _ in shown], [a for _, a in shown], width=1 / len(centers), alpha=0.5, color=color,
                    label=f"eps {eps:g}: ECE {row['ece']['mean']:.3f}")
        mine = [r for r in runs if r["epsilon"] == eps]
        axes[1].errorbar([eps], [row["test_accuracy"]["mean"]], yerr=[row["test_accuracy"]["std"]], fmt="o",
                         color=color, capsize=4)
        axes[1].scatter([eps] * len(mine), [r["final"]["test:accuracy"] for r in mine], color=color, s=10)
        axes[2].errorbar([eps], [row["ece"]["mean"]], yerr=[row["ece"]["std"]], fmt="o", color=color, capsize=4)
        axes[2].scatter([eps] * len(mine), [r["ece"] for r in mine], color=color, s=10)
    axes[0].plot([0, 1], [0, 1], color="gray", ls=":")
    axes[0].set(xlabel="confidence", ylabel="accuracy", title="reliability (test, all seeds)")
    axes[0].legend(fontsize=8)
    axes[1].set(xlabel="epsilon", ylabel="test accuracy", title="accuracy: mean +- std, seeds")
    axes[2].set(xlabel="epsilon", ylabel="ECE", title="expected calibration error")
    holds = on["test_accuracy"]["mean"] > off["test_accuracy"]["mean"]
    return write_result(ctx, {"runs": runs, "summary": summary, "holds": holds, "verdict": verdict}, fig)
