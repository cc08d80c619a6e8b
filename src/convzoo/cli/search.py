"""convzoo search: search NASNet's cell space (Zoph et al. 2018) on shared weights (ENAS, Pham et al. 2018).

It is `convzoo train` of the search task: each training step samples a cell from the controller (or uniformly,
--strategy random) and trains the shared weights; after each epoch the controller is trained on the sampled cells'
dev accuracies. The run folder is a training run's (config.json, metrics.jsonl with the rewards and the
entropy, TensorBoard, checkpoints, resume, Ctrl-C) plus best_genotype.json, genotypes.json, cell_normal.png,
cell_reduction.png and train_command.txt, the command that trains the found cell from scratch.

examples:
  convzoo search --data fashion-mnist:DIR --image-size 16 --max-minutes 6 --clock cpu --threads 1
  convzoo search --data cifar10:DIR --cells 2 --filters 16 --max-minutes 60 --strategy random --seed 1
  convzoo search --resume runs/nasnet_search-fashion-mnist-20250101-120000 --max-minutes 12
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convzoo.cli.train import add_train_arguments, config_from_args
from convzoo.options import SearchOptions

UNLIMITED_EPOCHS = 100_000  # with --max-minutes and no --epochs: the time decides


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="search NASNet's cell space with its controller or at random on "
                              "shared weights", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              argument_default=argparse.SUPPRESS)
    add_train_arguments(p, model="nasnet_search", data="digits")
    d = SearchOptions()
    group = p.add_argument_group("search")
    a = group.add_argument
    a("--strategy", choices=("controller", "random"), help="the controller RNN, or uniform random samples scored "
      f"on the same shared weights (default: {d.strategy})")
    a("--policy", choices=("reinforce", "ppo"), help="the controller's policy gradient: REINFORCE with a "
      f"moving-average baseline, or PPO (default: {d.policy})")
    a("--cells", type=int, help=f"N, normal cells per stage of the proxy network (default: {d.cells})")
    a("--filters", type=int, help=f"filters of the first stage, doubled at each reduction (default: {d.filters})")
    a("--blocks", type=int, help=f"B, blocks per cell (default: {d.blocks})")
    a("--subset", type=int, help="train the shared weights on the first N training samples, 0 for all "
      f"(default: {d.subset})")
    a("--controller-steps", type=int, help="controller updates after each epoch (random: scoring rounds) "
      f"(default: {d.controller_steps})")
    a("--samples", type=int, help=f"architectures sampled for each update (default: {d.samples})")
    a("--reward-batch", type=int, help=f"dev samples that score one architecture (default: {d.reward_batch})")
    a("--controller-lr", type=float, help=f"the controller's Adam learning rate (default: {d.controller_lr})")
    a("--entropy-weight", type=float, help=f"weight of the entropy bonus (default: {d.entropy_weight})")
    a("--baseline-decay", type=float, help=f"decay of the reward baseline's moving average "
      f"(default: {d.baseline_decay})")
    a("--ppo-epochs", type=int, help=f"PPO: epochs over the same samples (default: {d.ppo_epochs})")
    a("--ppo-clip", type=float, help=f"PPO: clip of the probability ratio (default: {d.ppo_clip})")
    a("--top", type=int, help=f"genotypes kept, best first (default: {d.top})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict:
    """Search; print the best genotype and the command that trains it; return the final metrics and
    ``best_genotype`` (its path)."""
    from convzoo.train.fit import fit

    given = vars(args)
    if "max_minutes" in given and "epochs" not in given and "resume" not in given:
        args.epochs = UNLIMITED_EPOCHS
    metrics = fit(config_from_args(args))
    run_dir = Path(metrics["run_dir"])
    best = run_dir / "best_genotype.json"
    if best.is_file():
        print(f"best genotype: {best}\n{best.read_text().rstrip()}")
        print(f"cells drawn: {run_dir / 'cell_normal.png'} {run_dir / 'cell_reduction.png'}")
        print("train it from scratch:\n  " + (run_dir / "train_command.txt").read_text().strip())
    else:
        print(f"convzoo search: no genotype was scored yet ({run_dir}); search longer", file=sys.stderr)
    return {**metrics, "best_genotype": str(best)}
