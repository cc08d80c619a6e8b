"""Degradation: deeper plain nets train worse, deeper residual nets better (He et al. 2015, Figure 6).

plain-20 and plain-56 against ResNet-20 and ResNet-56 (``plain20``, ``plain56``, ``resnet20``, ``resnet56``,
same layers, the plain nets without shortcuts). The claim: plain-56 has a higher *training* error than plain-20
(so it is not overfitting), while ResNet-56 has a lower one than ResNet-20. Curves: training error (the running
error of each epoch, augmented images) and held-out error (the dev split, 5,000 training images held out) per
step, as in Figure 6 (thin: training, bold: held out).

Recipe of Section 4.2: SGD, momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 50% and 75%
of training (32k and 48k of 64k iterations), 4-pixel padding + random crop + flip.

Sizes: full: CIFAR-10 32x32, all 45,000 training images, 164 epochs (about 64k iterations), the paper's;
medium: CIFAR-10 downsampled to 16x16, a fifteenth of the training images (3,000, per class), 3 epochs, batch 64,
a fifth of dev and test; quick: 5% of the 8x8 digits, 1 epoch (a smoke test: the figures mean nothing).
"""

from __future__ import annotations

from convzoo.experiments.runner import Context, curve, figure, mean_std, pm, train, write_result
from convzoo.options import ClassificationOptions
from convzoo.train import TrainConfig

MODELS = ("plain20", "plain56", "resnet20", "resnet56")
DEFAULT_SEEDS = 1


def run(ctx: Context) -> dict:
    data = "digits" if ctx.quick else ctx.cifar10()
    options = ClassificationOptions(train_fraction=ctx.pick(0.05, 1 / 15, 1.0), eval_fraction=ctx.pick(0.1, 0.2, 1.0))
    runs = []
    for seed, model in ctx.ordered((seed, model) for seed in ctx.seeds for model in MODELS):
        config = TrainConfig(model=model, data=data, epochs=ctx.pick(1, 3, 164), batch_size=ctx.pick(32, 64, 128),
                             optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False, schedule="step",
                             milestones=[0.5, 0.75], weight_decay=1e-4, seed=seed,
                             image_size=ctx.pick(None, 16, None), classification=options)
        runs.append({**train(ctx, f"{model}-seed{seed}", config), "model": model})
    runs = ctx.ordered(runs)
    summary = {}
    for model in MODELS:
        mine = [r for r in runs if r["model"] == model and not r["diverged"]]
        summary[model] = {"train_error": mean_std([1 - r["curves"][-1]["accuracy"] for r in mine]),
                          "dev_error": mean_std([1 - r["curves"][-1]["dev:accuracy"] for r in mine]),
                          "test_error": mean_std([1 - r["final"]["test:accuracy"] for r in mine])}
    train_error = {m: summary[m]["train_error"]["mean"] for m in MODELS}
    plain = train_error["plain56"] > train_error["plain20"]
    residual = train_error["resnet56"] < train_error["resnet20"]
    verdict = (f"final training error plain-20 {pm(summary['plain20']['train_error'])}, plain-56 "
               f"{pm(summary['plain56']['train_error'])}, ResNet-20 {pm(summary['resnet20']['train_error'])}, "
               f"ResNet-56 {pm(summary['resnet56']['train_error'])}: deeper plain net trains worse: "
               f"{'yes' if plain else 'no'}; deeper residual net trains better: {'yes' if residual else 'no'}")
    fig, axes = figure(2)
    colors = {"plain20": "tab:orange", "plain56": "tab:red", "resnet20": "tab:cyan", "resnet56": "tab:blue"}
    for ax, family in zip(axes, ("plain", "resnet")):
        for r in runs:
            if r["model"].startswith(family):
                steps, accuracy = curve(r, "accuracy")
                ax.plot(steps, [100 * (1 - a) for a in accuracy], color=colors[r["model"]], lw=1, ls="--")
                steps, accuracy = curve(r, "dev:accuracy")
                ax.plot(steps, [100 * (1 - a) for a in accuracy], color=colors[r["model"]], lw=2.5,
                        label=f"{r['model']} (seed {r['seed']})")
        ax.set(xlabel="step", ylabel="error (%)", title=f"{family}: dashed training, bold held-out")
        ax.legend()
    return write_result(ctx, {"runs": runs, "summary": summary, "holds": plain and residual, "verdict": verdict},
                        fig)
