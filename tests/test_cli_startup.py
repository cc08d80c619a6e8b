"""What the command line costs before it does anything, and what its help texts say.

The torch-free commands (``--help``, ``--version``, ``models``, ``eval-detections``) run in a fresh interpreter
through a small wrapper that reports, after the command, which torch modules it imported: importing torch alone
takes seconds and hundreds of MB on a small machine. The help texts of every command are checked in this process:
plain text (no RST markup) and a default stated for every option that takes a value.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import convzoo
from convzoo.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]

# Runs `python -m convzoo ARGS...` in this interpreter, then prints the torch modules it imported (a JSON list) as
# the last line of stderr and exits with the command's exit code.
WRAPPER = """
import json, runpy, sys
sys.argv = ["convzoo", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("convzoo", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))), file=sys.stderr)
sys.exit(code)
"""


def run_convzoo(*args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``python -m convzoo ARGS...`` in a fresh interpreter on this checkout -> (result, torch modules imported)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env,
                            timeout=120)
    *diagnostics, imported = result.stderr.rstrip("\n").split("\n")
    result.stderr = "\n".join(diagnostics)
    return result, json.loads(imported)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["models"], ["models", "resnet*", "--kind", "classifier"],
                                  ["eval-detections", "--help"], ["train", "--help"], ["detect", "train", "--help"],
                                  ["evaluate", "--help"], ["predict", "--help"], ["search", "--help"],
                                  ["experiment", "--help"]],
                         ids=" ".join)
def test_torch_free_commands_do_not_import_torch(args):
    result, imported = run_convzoo(*args)
    assert result.returncode == 0, result.stderr
    assert imported == [], f"convzoo {' '.join(args)} imported {imported[:5]}"


def test_version_is_the_package_version():
    result, _ = run_convzoo("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"convzoo {convzoo.__version__}\n"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1) == convzoo.__version__


def test_top_level_help_lists_every_command():
    result, _ = run_convzoo("--help")
    text = " ".join(result.stdout.split())  # argparse wraps at the terminal's width
    for name, (_, help_text) in COMMANDS.items():
        assert f" {name} {help_text} " in text, name


def test_eval_detections_coco_run_does_not_import_torch(shared_data):
    folder = shared_data / "coco-eval" / "cocoapi_val2014_100"
    result, imported = run_convzoo("eval-detections", "--gt", str(folder / "instances_val2014_100.json"),
                                   "--dets", str(folder / "instances_val2014_fakebbox100_results.json"), "--json")
    assert result.returncode == 0, result.stderr
    assert imported == []
    output = json.loads(result.stdout)
    # The official cocoapi demo's bbox AP (shared data README, pycocotools 2.0.11).
    assert output["stats"]["AP"] == pytest.approx(0.5045806987249628, abs=1e-12)
    assert output["counts"]["detections"] == 734


def test_eval_detections_voc_run_does_not_import_torch(shared_data, tmp_path):
    root = shared_data / "voc2012-sample100"
    dets = []  # "<class index> <score> <x1> <y1> <x2> <y2>" lines -> COCO result dicts, 1-based category ids
    for path in sorted((root / "detections_xyxy").glob("*.txt")):
        for line in path.read_text().splitlines():
            label, score, x1, y1, x2, y2 = line.split()
            x1, y1, x2, y2 = map(float, (x1, y1, x2, y2))
            dets.append({"image_id": path.stem, "category_id": int(label) + 1, "score": float(score),
                         "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result, imported = run_convzoo("eval-detections", "--gt", str(root / "Annotations"),
                                   "--dets", str(tmp_path / "dets.json"), "--protocol", "voc", "--json")
    assert result.returncode == 0, result.stderr
    assert imported == []
    assert json.loads(result.stdout)["stats"]["mAP"] == pytest.approx(0.6139, abs=0.01)  # the data's README


def test_eval_detections_user_error_is_one_line_without_torch(tmp_path):
    result, imported = run_convzoo("eval-detections", "--gt", str(tmp_path / "absent.json"),
                                   "--dets", str(tmp_path / "absent.json"))
    assert result.returncode == 2
    assert result.stderr.startswith("convzoo eval-detections: error: ") and result.stderr.count("\n") == 0
    assert imported == []


def _parsers(parser: argparse.ArgumentParser, path: str):
    """``(path, parser)`` of ``parser`` and of its subcommands, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _parsers(subparser, f"{path} {name}")


def _without_default(parser: argparse.ArgumentParser) -> list[str]:
    """The options of ``parser`` that take a value, are not required, and whose help does not state the default."""
    missing = []
    for action in parser._actions:
        takes_value = action.nargs != 0 and not isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                                                      argparse._SubParsersAction))
        optional = action.option_strings or action.nargs in ("?", "*")
        if takes_value and optional and not action.required and "default" not in (action.help or ""):
            missing.append(action.option_strings[0] if action.option_strings else action.dest)
    return missing


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_is_plain_text_with_defaults(parser, command):
    # "" is the top level alone; a command brings its subcommands (detect train, ...).
    chosen = [(path, subparser) for path, subparser in _parsers(parser, "convzoo")
              if (f"{path} ".startswith(f"convzoo {command} ") if command else path == "convzoo")]
    assert chosen
    for path, subparser in chosen:
        text = subparser.format_help()
        markup = re.findall(r"``[^`]*``|:[a-z]+:`[^`]*`", text)
        assert markup == [], f"{path} --help shows RST markup: {markup}"
        assert _without_default(subparser) == [], f"{path} --help: these options do not state their default"
