"""The convzoo command line: the classic CNNs and the R-CNN family, trained, evaluated and measured.

Each command lives in its own module of this package, which defines register(subparsers): it adds the command's
parser and sets func to a function that takes the parsed options and returns its metrics as a dict (tests call
those functions directly). Only the chosen command's module is imported, so "convzoo --help" and the torch-free
commands (eval-detections, models) start at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Collection

from convzoo import __version__
from convzoo.errors import is_user_error, one_line

# command -> (module in this package, the one line "convzoo --help" shows; the module's own help= says the same)
COMMANDS = {
    "train": ("train", "train any model: a classifier, a detector (default: a small CNN on the bundled digits)"),
    "evaluate": ("evaluate", "evaluate a trained run (any task) on its test or dev split"),
    "predict": ("predict", "predict image files with a trained run (any task)"),
    "detect": ("detect", "train, evaluate and run the R-CNN detectors (an alias of train, evaluate, predict)"),
    "search": ("search", "search NASNet's cell space with its controller or at random on shared weights"),
    "eval-detections": ("eval_detections", "COCO or VOC average precision of detections"),
    "models": ("models", "list the registered models with parameters and GMACs"),
    "summary": ("summary", "print a model's per-layer table"),
    "export": ("export", "export a trained run or a registered model to ONNX or torch.export"),
    "experiment": ("experiment", "reproduce a claim of the lecture: train, plot, JSON figures"),
}

EPILOG = """examples:
  convzoo train                                  a small CNN on scikit-learn's bundled digits
  convzoo models 'resnet*'                       parameters and GMACs of the ResNets
  convzoo summary resnet50                       the per-layer table of one model
  convzoo eval-detections --gt gt.json --dets dets.json
  convzoo COMMAND --help                         the options of one command

A failure caused by an input (a bad option, file or model name) is reported on one line, exit code 2;
--debug (or the environment variable CONVZOO_DEBUG=1) shows the traceback instead."""


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser of the command line with every command registered (None: what tests use), or only ``commands``:
    only their modules are imported; the other commands are listed with their one-line help."""
    parser = argparse.ArgumentParser(prog="convzoo", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"convzoo {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a failure instead of a one-line message")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if commands is None or name in commands:
            importlib.import_module(f"{__name__}.{module_name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    """The command named in ``argv``: its first word that is not a top-level option (None: none or unknown)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error (:mod:`convzoo.errors`) ends as one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = _chosen_command(argv)
    args = build_parser([chosen] if chosen else []).parse_args(argv)
    debug = args.debug or os.environ.get("CONVZOO_DEBUG", "") not in ("", "0")
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
    except BrokenPipeError:
        # The reader of stdout went away (`convzoo models | head -3`): stop quietly, as Python's docs advise,
        # pointing stdout at devnull so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"convzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug or not is_user_error(error):
            raise
        print(f"convzoo {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    return 0
