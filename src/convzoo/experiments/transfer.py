"""Transfer learning: features learned on one task reused on another with few labels (the lecture's "Transfer
learning"; Yosinski et al. 2014, "How transferable are features in deep neural networks?").

A source network is trained on the source task; its weights without the classifier become the starting point on
the target task, whose labels are cut to ``FRACTIONS`` (1%, 10%, 100% of the training images, per class). Three
ways to train the target, at each fraction:

- ``scratch``: random initialization, every layer trained;
- ``frozen``: the source features frozen (``freeze_backbone``, BatchNorm statistics kept), a new head trained;
- ``finetune``: the source features as initialization (``pretrained``), every layer trained.

Reported: target test accuracy per method and fraction (mean +- std over seeds). The claim: with few labels,
transferred features beat training from scratch; with all labels the gap closes.

Sizes: full: CIFAR-10 classes 0-4 (airplane..deer) to classes 5-9 (dog..truck), ResNet-20 32x32, 30 epochs for the
source and each target run; medium: Fashion-MNIST to MNIST with the course's small CNN (the default model), the
source 2 epochs, the targets the same number of steps at every fraction (about 2 epochs of the full set); quick:
the digits 0-4 (a fifth) to 5-9 (the fractions of a fifth), 1 epoch each (a smoke test).
"""

from __future__ import annotations

from pathlib import Path

from convzoo.experiments.runner import Context, difference, figure, mean_std, pm, train, write_result
from convzoo.options import DEFAULT_MODEL, ClassificationOptions
from convzoo.train import TrainConfig, load_run

FRACTIONS = (0.01, 0.1, 1.0)
METHODS = ("scratch", "frozen", "finetune")
DEFAULT_SEEDS = 1


def backbone_weights(record: dict, path: Path) -> Path:
    """The source run's last weights without its classifier, as a safetensors file (the target's head is new)."""
    from safetensors.torch import save_file

    _, _, _, model = load_run(record["run_dir"], checkpoint="last")
    head = model.get_classifier()
    prefix = next(name for name, module in model.named_modules() if module is head)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(prefix + ".")}
    save_file(state, str(path))
    return path


def run(ctx: Context) -> dict:
    if ctx.size == "medium":
        source_data, target_data = f"fashion-mnist:{ctx.data_path('fashion-mnist')}", f"mnist:{ctx.data_path('mnist')}"
        source_classes = target_classes = None
    else:
        source_data = target_data = "digits" if ctx.quick else ctx.cifar10()
        source_classes, target_classes = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
    model = ctx.pick(DEFAULT_MODEL, DEFAULT_MODEL, "resnet20")
    epochs = ctx.pick(1, 2, 30)
    runs, sources = [], []
    for seed in ctx.seeds:
        common = {"model": model, "optimizer": "adamw", "lr": 1e-3, "batch_size": ctx.pick(4, 64, 64), "seed": seed}
        source = train(ctx, f"source-seed{seed}", TrainConfig(
            data=source_data, epochs=epochs, classification=ClassificationOptions(
                classes=source_classes, train_fraction=ctx.pick(0.2, 1.0, 1.0),
                eval_fraction=ctx.pick(0.3, 0.2, 1.0)), **common))
        sources.append({**source, "method": "source", "fraction": 1.0})
        weights = backbone_weights(source, ctx.out / "runs" / f"source-seed{seed}" / "backbone.safetensors")
        for fraction in FRACTIONS:
            for method in METHODS:
                # quick: the fractions of a fifth of the digits (1% of the labels: one image of each class)
                options = ClassificationOptions(classes=target_classes, train_fraction=fraction * ctx.pick(0.2, 1, 1),
                                                eval_fraction=ctx.pick(0.3, 0.2, 1.0),
                                                freeze_backbone=method == "frozen")
                # the same number of steps at every fraction (a 1% set is seen 100 times as often)
                target_epochs = epochs if ctx.quick else round(epochs / fraction)
                config = TrainConfig(data=target_data, epochs=target_epochs, classification=options,
                                     eval_every=max(1, target_epochs // 5),
                                     pretrained=None if method == "scratch" else str(weights), **common)
                record = train(ctx, f"{method}-{fraction:g}-seed{seed}", config)
                runs.append({**record, "method": method, "fraction": fraction})
    summary = {m: {f"{f:g}": mean_std([r["final"]["test:accuracy"] for r in runs if r["method"] == m and
                                       r["fraction"] == f and not r["diverged"]]) for f in FRACTIONS}
               for m in METHODS}
    fewest = f"{FRACTIONS[0]:g}"
    best = max(("frozen", "finetune"), key=lambda m: summary[m][fewest]["mean"])
    holds = summary[best][fewest]["mean"] > summary["scratch"][fewest]["mean"]
    verdict = "; ".join(f"{f:g} of the labels: " + ", ".join(f"{m} {pm(summary[m][f'{f:g}'])}" for m in METHODS)
                        for f in FRACTIONS)
    verdict += (f". Transfer ({best}) beats scratch at {fewest}: {'yes' if holds else 'no'} "
                f"({difference(summary[best][fewest], summary['scratch'][fewest])})")
    fig, axes = figure(1, width=6)
    for method in METHODS:
        means = [summary[method][f"{f:g}"]["mean"] for f in FRACTIONS]
        stds = [summary[method][f"{f:g}"]["std"] for f in FRACTIONS]
        axes[0].errorbar([100 * f for f in FRACTIONS], means, yerr=stds, marker="o", capsize=3, label=method)
    axes[0].set(xscale="log", xlabel="% of the target's training labels", ylabel="target test accuracy",
                title="transfer: scratch vs frozen features vs fine-tuning")
    axes[0].legend()
    return write_result(ctx, {"runs": sources + runs, "summary": summary, "holds": holds, "verdict": verdict}, fig)
