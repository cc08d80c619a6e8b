"""Batch Normalization: fewer steps to the same accuracy, and much larger learning rates (Ioffe & Szegedy 2015,
Figure 2 and Table of Section 4.2.2: Inception reached 72.2% in 31.0M steps, BN-x5 in 2.1M, BN-x30 in 2.7M;
BN-x5-Sigmoid reached 69.8%, while Inception with sigmoid never trained).

The network is the CIFAR plain-20 (``plain20``, He et al. 2015) in three forms: without BatchNorm
(``plain20_nobn``, convolutions with biases), with BatchNorm (``plain20``) and with BatchNorm and sigmoid
activations (``plain20_sigmoid``). First the network without BN is trained at each learning rate of
``LEARNING_RATES``; the best one (highest final dev accuracy) is its "best learning rate" and its best dev accuracy
the target. Then the BN network is trained at 1x, 5x and 30x that rate, and the sigmoid one at 5x. Reported:
the steps each run needs to reach the target on the dev split (evaluated after every epoch, so the resolution is
one epoch), the curves of dev accuracy over steps. SGD with momentum 0.9, a constant learning rate, no weight
decay (the paper's schedule decays exponentially; a constant one keeps the comparison simple).

Sizes: full: CIFAR-10 32x32, 45,000 training images, 30 epochs, batch 64; medium: CIFAR-10 at 16x16, 1,000
training images (a 45th, per class), 8 epochs, batch 64 (16 steps an epoch), a tenth of dev/test; quick: 5% of the 8x8
digits, 1 epoch, two learning rates (a smoke test).
"""

from __future__ import annotations

from convzoo.experiments.runner import Context, curve, figure, train, write_result
from convzoo.options import ClassificationOptions
from convzoo.train import TrainConfig

LEARNING_RATES = (0.003, 0.01, 0.03)
DEFAULT_SEEDS = 1


def steps_to(record: dict, target: float) -> int | None:
    """The first step at which the run's dev accuracy reached ``target`` (None: never)."""
    return next((r["step"] for r in record["curves"] if r.get("dev:accuracy", -1) >= target), None)


def run(ctx: Context) -> dict:
    data = "digits" if ctx.quick else ctx.cifar10()
    options = ClassificationOptions(train_fraction=ctx.pick(0.05, 1 / 45, 1.0), eval_fraction=ctx.pick(0.2, 0.1, 1.0))
    seed = ctx.seeds[0]

    def config(model: str, lr: float) -> TrainConfig:
        return TrainConfig(model=model, data=data, epochs=ctx.pick(1, 8, 30), batch_size=64, optimizer="sgd", lr=lr,
                           momentum=0.9, nesterov=False, schedule="constant", weight_decay=0.0, seed=seed,
                           image_size=ctx.pick(None, 16, None), classification=options)

    rates = ctx.pick(LEARNING_RATES[1:], LEARNING_RATES, LEARNING_RATES)
    sweep = ctx.ordered([{**train(ctx, f"nobn-lr{lr:g}", config("plain20_nobn", lr)), "variant": "without BN",
                          "lr": lr} for lr in ctx.ordered(rates)])
    finished = [r for r in sweep if not r["diverged"]]
    if not finished:
        raise ValueError(f"every run without BN diverged at learning rates {list(rates)}: lower LEARNING_RATES")
    best = max(finished, key=lambda r: r["curves"][-1]["dev:accuracy"])
    base, target = best["lr"], max(r["dev:accuracy"] for r in best["curves"] if "dev:accuracy" in r)
    variants = [("BN-x1", "plain20", 1), ("BN-x5", "plain20", 5), ("BN-x30", "plain20", 30),
                ("BN-x5-sigmoid", "plain20_sigmoid", 5)]
    runs = [best] + ctx.ordered([{**train(ctx, f"{name}-lr{base * factor:g}", config(model, base * factor)),
                                  "variant": name, "lr": base * factor}
                                 for name, model, factor in ctx.ordered(variants)])
    table = {r["variant"]: {"lr": r["lr"], "steps_to_target": steps_to(r, target), "diverged": bool(r["diverged"]),
                            "max_dev_accuracy": max((c["dev:accuracy"] for c in r["curves"] if "dev:accuracy" in c),
                                                    default=None),
                            "test_accuracy": r["final"].get("test:accuracy")} for r in runs}
    base_steps = table["without BN"]["steps_to_target"]
    faster = [name for name, row in table.items() if name != "without BN" and row["steps_to_target"] is not None
              and row["steps_to_target"] < base_steps]
    verdict = (f"target {target:.4f} (best dev accuracy without BN, lr {base:g}) reached in steps: "
               + ", ".join(f"{name} {row['steps_to_target'] if row['steps_to_target'] is not None else 'never'}"
                           for name, row in table.items())
               + f"; BN reaches it in fewer steps: {'yes (' + ', '.join(faster) + ')' if faster else 'no'}")
    fig, axes = figure(2)
    for r in sweep:
        steps, accuracy = curve(r, "dev:accuracy")
        axes[0].plot(steps, accuracy, marker=".", label=f"without BN, lr {r['lr']:g}" + (" (diverged)" if
                                                                                          r["diverged"] else ""))
    axes[0].set(xlabel="step", ylabel="dev accuracy", title="learning rates without BN")
    for r in runs:
        steps, accuracy = curve(r, "dev:accuracy")
        axes[1].plot(steps, accuracy, marker=".", label=f"{r['variant']} (lr {r['lr']:g})")
    axes[1].axhline(target, color="gray", ls=":", label=f"target {target:.3f}")
    axes[1].set(xlabel="step", ylabel="dev accuracy", title="Figure 2: dev accuracy over steps")
    for ax in axes:
        ax.legend(fontsize=8)
    return write_result(ctx, {"runs": sweep + runs[1:], "best_lr": base, "target": target, "table": table,
                              "holds": bool(faster), "verdict": verdict}, fig)
