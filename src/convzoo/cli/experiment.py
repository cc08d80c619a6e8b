"""Run one of the lecture's claims as an experiment: it trains what it needs with the one engine, then writes
OUT/NAME.json (every run's curves and final metrics, the seeds, wall and CPU seconds, the machine) and OUT/NAME.png.
Each experiment's module docstring (convzoo.experiments.NAME) states its three sizes: quick (a smoke test in
seconds, the figures mean nothing), medium (what a 2-core CPU affords in minutes) and full (the paper's scale).

examples:
  convzoo experiment label_smoothing --quick                  a smoke test on the bundled digits
  convzoo experiment degradation --size medium --data-root ../shared/data
  convzoo experiment label_smoothing --seeds 5 --out runs/ls  the full size, 5 seeds
"""

from __future__ import annotations

import argparse

from convzoo.cli.arguments import positive_int
from convzoo.experiments import EXPERIMENTS


def register(subparsers) -> None:
    listing = "\n".join(f"  {name:<16} {line}" for name, (_, line) in EXPERIMENTS.items())
    parser = subparsers.add_parser("experiment", help="reproduce a claim of the lecture: train, plot, JSON figures",
                                   description=f"{__doc__}\nexperiments:\n{listing}",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME", help="the experiment (listed below)")
    parser.add_argument("--size", choices=("quick", "medium", "full"), default="full",
                        help="quick, medium or full, as the experiment's docstring states (default: full)")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size",
                        help="the same as --size quick: tiny data, 1 epoch, seconds")
    parser.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                        help="seeds 0..N-1 (default: the experiment's own, 3 for label_smoothing, else 1)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder; its runs/ keep every training run, and a run already there is read "
                             "back, not trained again (default: experiments/NAME)")
    parser.add_argument("--data-root", default="data", metavar="PATH",
                        help="folder holding cifar10/, mnist/, fashion-mnist/, mnist1d/ for the medium and full "
                             "sizes (default: data)")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="intra-op CPU threads of each run (default: 1)")
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    parser.add_argument("--reverse", action="store_true",
                        help="train the runs last to first: a second process with the same --out shares the work "
                             "(each waits for a run the other is training)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict:
    from convzoo.experiments import run_experiment

    result = run_experiment(args.name, args.size, args.seeds, args.out, args.data_root, args.threads, args.device,
                            args.reverse)
    print(f"{args.name}: {result.get('verdict', '')}")
    print(f"{result['json']}\n{result['png']}")
    return result
