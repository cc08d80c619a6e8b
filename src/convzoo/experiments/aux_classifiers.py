"""Auxiliary classifiers: GoogLeNet's two side heads, their loss weighted 0.3, on vs off (Szegedy et al. 2014,
Section 5: they were meant to fight vanishing gradients and regularize; the paper reports "a minor effect",
and Inception-v3, Section 4, found they do not speed up early training but help slightly at the end).

GoogLeNet (``googlenet``, Table 1, no BatchNorm, LRN, Xavier initialization) is trained twice per seed, otherwise
equal: the auxiliary losses weighted 0.3 (``aux_weight``, the paper's) and weighted 0 (off: the heads get no
gradient, and the main path is trained alone, as without them). Reported: the main classifier's training
accuracy and dev accuracy over steps, and the test accuracy (mean +- std over seeds). AdamW, lr 1e-3 (GoogLeNet's
own SGD recipe runs for 250 epochs).

Sizes: full: CIFAR-10 32x32, 45,000 training images, 30 epochs, batch 64; medium: CIFAR-10 32x32, 10% of the
training images, 3 epochs, a fifth of dev/test; quick: 2% of the digits upscaled to 32x32, 1 epoch (smoke test).
"""

from __future__ import annotations

from convzoo.experiments.runner import Context, curve, difference, figure, mean_std, pm, train, write_result
from convzoo.options import ClassificationOptions
from convzoo.train import TrainConfig

WEIGHTS = (0.3, 0.0)
DEFAULT_SEEDS = 1


def run(ctx: Context) -> dict:
    data = "digits" if ctx.quick else ctx.cifar10()
    runs = []
    for weight, seed in ctx.ordered((weight, seed) for weight in WEIGHTS for seed in ctx.seeds):
        options = ClassificationOptions(aux_weight=weight, train_fraction=ctx.pick(0.02, 0.1, 1.0),
                                        eval_fraction=ctx.pick(0.05, 0.2, 1.0))
        config = TrainConfig(model="googlenet", data=data, epochs=ctx.pick(1, 3, 30), batch_size=ctx.pick(16, 64,
                             64), optimizer="adamw", lr=1e-3, seed=seed, image_size=32, classification=options)
        runs.append({**train(ctx, f"aux{weight:g}-seed{seed}", config), "aux_weight": weight})
    runs = ctx.ordered(runs)  # --reverse: back in the order of a forward run
    summary = {f"{w:g}": {"test_accuracy": mean_std([r["final"]["test:accuracy"] for r in runs
                                                     if r["aux_weight"] == w and not r["diverged"]])} for w in WEIGHTS}
    on, off = summary["0.3"]["test_accuracy"], summary["0"]["test_accuracy"]
    verdict = f"test accuracy with aux heads (0.3) {pm(on)} vs without {pm(off)}: {difference(on, off)}"
    fig, axes = figure(2)
    for r in runs:
        label = f"aux {r['aux_weight']:g} (seed {r['seed']})"
        for ax, key in zip(axes, ("accuracy", "dev:accuracy")):
            steps, values = curve(r, key)
            ax.plot(steps, values, marker=".", label=label)
    for ax, title in zip(axes, ("training accuracy (main head)", "dev accuracy")):
        ax.set(xlabel="step", ylabel="accuracy", title=title)
        ax.legend(fontsize=8)
    holds = on["mean"] > off["mean"]
    return write_result(ctx, {"runs": runs, "summary": summary, "holds": holds, "verdict": verdict}, fig)
