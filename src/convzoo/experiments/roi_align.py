"""RoIAlign against RoIPool in Mask R-CNN (He et al. 2017, Table 2c: mask AP 30.3 vs 26.9 with ResNet-50-C4),
on the generated shapes (``--data shapes``), with seeds: the comparison of ``docs/benchmarks-detection.md``
moved into this suite.

Mask R-CNN with a ResNet-18 FPN backbone from scratch and the CPU-sized heads (``small``), the same recipe for
both poolers (``roi_method`` align | pool): AdamW, lr 0.001, weight decay 0.05, batch 4. Reported per pooler as
mean +- std over seeds: box AP, mask AP and mask AP75 on the held-out images (the strict threshold is where
RoIPool's quantization shows).

Sizes: full: the benchmark's recipe, 128-px images, 2,000 training images, 100 held out, a 15-minute budget each
(``max_minutes``), 3 seeds; medium: 128 px, 400 training images, 50 held out, 3 epochs; quick: 64 px, 2 training
images, 1 held out, 1 epoch (a smoke test).
"""

from __future__ import annotations

from convzoo.experiments.runner import Context, curve, difference, figure, mean_std, pm, train, write_result
from convzoo.options import DetectionOptions
from convzoo.train import TrainConfig

METHODS = ("align", "pool")
METRICS = ("bbox:AP", "segm:AP", "segm:AP75")
DEFAULT_SEEDS = 1


def _metric(record: dict, name: str) -> float:
    final = record["final"]
    return final.get(f"test:{name}", final.get(f"dev:{name}", float("nan")))


def run(ctx: Context) -> dict:
    size = ctx.pick(64, 128, 128)
    runs = []
    for method, seed in ctx.ordered((method, seed) for method in METHODS for seed in ctx.seeds):
        options = DetectionOptions(backbone="resnet18", small=True, roi_method=method, min_size=size,
                                   max_size=size, train_size=ctx.pick(2, 400, 2000), val_size=ctx.pick(1, 50, 100))
        config = TrainConfig(model="mask_rcnn_r50_fpn", data="shapes", image_size=size,
                             epochs=ctx.pick(1, 3, 100), max_minutes=ctx.pick(None, None, 15.0),
                             batch_size=ctx.pick(2, 4, 4), optimizer="adamw", lr=0.001, weight_decay=0.05,
                             warmup=ctx.pick(0.0, 0.1, 0.1), seed=seed, detection=options)
        runs.append({**train(ctx, f"{method}-seed{seed}", config), "method": method})
    runs = ctx.ordered(runs)  # --reverse: back in the order of a forward run
    summary = {m: {k: mean_std([_metric(r, k) for r in runs if r["method"] == m and not r["diverged"]])
                   for k in METRICS} for m in METHODS}
    align, pool = summary["align"]["segm:AP"], summary["pool"]["segm:AP"]
    better = "yes" if align["mean"] > pool["mean"] else "no"
    verdict = (f"mask AP RoIAlign {pm(align)} vs RoIPool {pm(pool)} ({difference(align, pool)}); mask AP75 "
               f"{pm(summary['align']['segm:AP75'])} vs {pm(summary['pool']['segm:AP75'])}: RoIAlign better: {better}")
    fig, axes = figure(2)
    for r in runs:
        steps, loss = curve(r, "loss")
        axes[0].plot(steps, loss, marker=".", label=f"{r['method']} (seed {r['seed']})")
    x = range(len(METRICS))
    for offset, method in ((-0.2, "align"), (0.2, "pool")):
        axes[1].bar([i + offset for i in x], [summary[method][k]["mean"] for k in METRICS], width=0.4,
                    yerr=[summary[method][k]["std"] for k in METRICS], capsize=3, label=f"RoI{method.title()}")
    axes[0].set(xlabel="step", ylabel="training loss", title="Mask R-CNN training loss")
    axes[1].set(xticks=list(x), xticklabels=list(METRICS), ylabel="AP (held out)", title="mean +- std over seeds")
    for ax in axes:
        ax.legend(fontsize=8)
    return write_result(ctx, {"runs": runs, "summary": summary, "holds": align["mean"] > pool["mean"],
                              "verdict": verdict}, fig)
