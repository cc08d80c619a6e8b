"""Batch Normalization: fewer steps to the same accuracy, and much larger learning rates (Ioffe & Szegedy 2015,
Figure 2 and Table of Section 4.2.2: Inception reached 72.2% in 31.0M steps, BN-x5 in 2.1M, BN-x30 in 2.7M;
BN-x5-Sigmoid reached 69.8%, while Inception with sigmoid never trained).

The network is the CIFAR plain-20 (``plain20``, He et al. 2015) in three forms: without BatchNorm
(``plain20_nobn``, convolutions with biases), with BatchNorm (``plain20``) and with BatchNorm and sigmoid
activations (``plain20_sigmoid``). First the network without BN is trained at each learning rate of
``LEARNING_RATES``; the best one (highest final dev accuracy) is its "best learning rate" and its best dev accuracy
the target. Then the BN network is trained at 1x, 5x and 30x that rate, and the sigmoid one at 5x. Reported:
the steps each run needs to reach the target on the dev split (evaluated after every epoch, so the resolution is
one epoch), the curves of dev accuracy over steps. With several seeds every run is repeated at each: the best rate
is the one with the highest final dev accuracy averaged over the seeds, the target the mean of the best dev
accuracies at that rate, and each variant reports its steps at every seed (mean +- std over the seeds that reached
the target) and its test accuracy (mean +- std); BN "reaches it in fewer steps" only when it does at every seed.
SGD with momentum 0.9, a constant learning rate, no weight decay (the paper's schedule decays exponentially; a
constant one keeps the comparison simple).

Sizes: full: CIFAR-10 32x32, 45,000 training images, 30 epochs, batch 64; medium: CIFAR-10 at 16x16, 1,000
training images (a 45th, per class), 8 epochs, batch 64 (16 steps an epoch), a tenth of dev/test; quick: 5% of the 8x8
digits, 1 epoch, two learning rates (a smoke test).
"""

from __future__ import annotations

from convzoo.experiments.runner import Context, curve, figure, mean_std, train, write_result
from convzoo.options import ClassificationOptions
from convzoo.train import TrainConfig

LEARNING_RATES = (0.003, 0.01, 0.03)
DEFAULT_SEEDS = 1
LINES = ("-", "--", ":", "-.")  # one line style per seed


def steps_to(record: dict, target: float) -> int | None:
    """The first step at which the run's dev accuracy reached ``target`` (None: never)."""
    return next((r["step"] for r in record["curves"] if r.get("dev:accuracy", -1) >= target), None)


def _best_dev(record: dict) -> float | None:
    return max((c["dev:accuracy"] for c in record["curves"] if "dev:accuracy" in c), default=None)


def _row(records: list[dict], target: float) -> dict:
    """One variant over the seeds: its lr, steps to ``target`` per seed (None: never), best dev and test accuracy
    as mean +- std (``mean_std``)."""
    steps = [steps_to(r, target) for r in records]
    return {"lr": records[0]["lr"], "steps_to_target": steps, "reached": sum(s is not None for s in steps),
            "steps_reached": mean_std([s for s in steps if s is not None]),
            "diverged": [bool(r["diverged"]) for r in records],
            "max_dev_accuracy": mean_std([v for v in map(_best_dev, records) if v is not None]),
            "test_accuracy": mean_std([r["final"].get("test:accuracy", float("nan")) for r in records])}


def _steps_text(row: dict) -> str:
    """``45 +- 21`` over the seeds that reached the target, ``never``, and how many did when not all."""
    seeds, reached = len(row["steps_to_target"]), row["steps_reached"]
    text = f"{reached['mean']:.0f} +- {reached['std']:.0f}" if row["reached"] else "never"
    return text + (f" ({row['reached']} of {seeds} seeds)" if 0 < row["reached"] < seeds else "")


def run(ctx: Context) -> dict:
    data = "digits" if ctx.quick else ctx.cifar10()
    options = ClassificationOptions(train_fraction=ctx.pick(0.05, 1 / 45, 1.0), eval_fraction=ctx.pick(0.2, 0.1, 1.0))

    def config(model: str, lr: float, seed: int) -> TrainConfig:
        return TrainConfig(model=model, data=data, epochs=ctx.pick(1, 8, 30), batch_size=64, optimizer="sgd", lr=lr,
                           momentum=0.9, nesterov=False, schedule="constant", weight_decay=0.0, seed=seed,
                           image_size=ctx.pick(None, 16, None), classification=options)

    def label(name: str, lr: float, seed: int) -> str:  # seed 0 keeps the name runs had before seeds were added
        return f"{name}-lr{lr:g}" + (f"-seed{seed}" if seed else "")

    # the sweep without BN at every seed; the best rate is the one with the highest final dev accuracy on average
    rates = ctx.pick(LEARNING_RATES[1:], LEARNING_RATES, LEARNING_RATES)
    sweep = [{**train(ctx, label("nobn", lr, seed), config("plain20_nobn", lr, seed)), "variant": "without BN",
              "lr": lr} for seed, lr in ctx.ordered((seed, lr) for seed in ctx.seeds for lr in rates)]
    finished = [lr for lr in rates if not any(r["diverged"] for r in sweep if r["lr"] == lr)]
    if not finished:
        raise ValueError(f"every run without BN diverged at learning rates {list(rates)}: lower LEARNING_RATES")
    base = max(finished, key=lambda lr: mean_std([r["curves"][-1]["dev:accuracy"] for r in sweep
                                                  if r["lr"] == lr])["mean"])
    best = sorted((r for r in sweep if r["lr"] == base), key=lambda r: r["seed"])
    target = mean_std([_best_dev(r) for r in best])["mean"]  # the best dev accuracy without BN, over the seeds
    variants = [("BN-x1", "plain20", 1), ("BN-x5", "plain20", 5), ("BN-x30", "plain20", 30),
                ("BN-x5-sigmoid", "plain20_sigmoid", 5)]
    trained = [{**train(ctx, label(name, base * factor, seed), config(model, base * factor, seed)),
                "variant": name, "lr": base * factor}
               for seed, name, model, factor in ctx.ordered((seed, *v) for seed in ctx.seeds for v in variants)]
    runs = best + sorted(trained, key=lambda r: r["seed"])
    table = {name: _row([r for r in runs if r["variant"] == name], target)
             for name in ["without BN"] + [v[0] for v in variants]}
    without = table["without BN"]["steps_to_target"]
    faster = [name for name, row in table.items() if name != "without BN" and all(  # never counts as infinite
        mine is not None and (theirs is None or mine < theirs) for mine, theirs in zip(row["steps_to_target"],
                                                                                       without))]
    verdict = (f"target {target:.4f} (best dev accuracy without BN at lr {base:g}, mean over {len(ctx.seeds)} "
               f"seed{'s' if len(ctx.seeds) > 1 else ''}) reached in steps: "
               + ", ".join(f"{name} {_steps_text(row)}" for name, row in table.items())
               + "; BN reaches it in fewer steps at every seed: " + (f"yes ({', '.join(faster)})" if faster else "no"))
    fig, axes = figure(2)
    for r in sweep:
        steps, accuracy = curve(r, "dev:accuracy")
        axes[0].plot(steps, accuracy, marker=".", ls=LINES[r["seed"] % len(LINES)],
                     label=f"without BN, lr {r['lr']:g}, seed {r['seed']}" + (" (diverged)" if r["diverged"] else ""))
    axes[0].set(xlabel="step", ylabel="dev accuracy", title="learning rates without BN")
    for r in runs:
        steps, accuracy = curve(r, "dev:accuracy")
        axes[1].plot(steps, accuracy, marker=".", ls=LINES[r["seed"] % len(LINES)],
                     label=f"{r['variant']} (lr {r['lr']:g}, seed {r['seed']})")
    axes[1].axhline(target, color="gray", ls=":", label=f"target {target:.3f}")
    axes[1].set(xlabel="step", ylabel="dev accuracy", title="Figure 2: dev accuracy over steps")
    for ax in axes:
        ax.legend(fontsize=8)
    return write_result(ctx, {"runs": sweep + trained, "best_lr": base, "target": target, "table": table,
                              "holds": bool(faster), "verdict": verdict}, fig)
