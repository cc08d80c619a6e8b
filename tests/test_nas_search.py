"""`convzoo search` end to end on the one engine: the run folder, the best genotype, its drawings, the printed
train command, and a resume that continues the controller."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from convzoo.cli import main
from convzoo.models.nasnet_genotype import Genotype

TINY = ["search", "--data", "digits", "--cells", "1", "--filters", "2", "--blocks", "2", "--subset", "32",
        "--batch-size", "16", "--controller-steps", "1", "--samples", "2", "--reward-batch", "16", "--threads", "1",
        "--top", "3"]


def test_search_writes_a_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "genotypes.json",
                 "best_genotype.json", "cell_normal.png", "cell_reduction.png", "train_command.txt"):
        assert (out / name).is_file(), name
    assert (out / "tensorboard").is_dir()
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "search" and config["config"]["search"]["strategy"] == "controller"
    record = json.loads((out / "metrics.jsonl").read_text())
    assert {"dev:reward_mean", "dev:reward_std", "dev:entropy", "dev:baseline", "dev:accuracy"} <= set(record)
    best = Genotype.from_json((out / "best_genotype.json").read_text())
    assert len(best.normal.blocks) == 2
    command = (out / "train_command.txt").read_text().strip()
    assert command in printed and f"--genotype {out / 'best_genotype.json'}" in command
    assert "--model nasnet" in command and "num_cells=1" in command and "filters=2" in command
    steps = load_file(out / "last.safetensors")
    assert int(steps["controller.adam_steps"]) == 1 and int(steps["phases"]) == 1

    assert main(["search", "--resume", str(out), "--epochs", "2"]) == 0
    capsys.readouterr()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    state = load_file(out / "last.safetensors")
    assert int(state["controller.adam_steps"]) == 2 and int(state["phases"]) == 2  # the controller went on
    assert not torch.equal(state["controller.start"], steps["controller.start"])


@pytest.mark.slow
def test_random_strategy_and_train_accepts_the_genotype(tmp_path, capsys):
    out = tmp_path / "random"
    assert main([*TINY, "--epochs", "1", "--strategy", "random", "--out", str(out)]) == 0
    capsys.readouterr()
    state = load_file(out / "last.safetensors")
    assert int(state["controller.adam_steps"]) == 0 and float(state["top_scores"][0]) >= 0
    trained = tmp_path / "child"
    assert main(["train", "--model", "nasnet", "--genotype", str(out / "best_genotype.json"), "--model-option",
                 "num_cells=1", "--model-option", "filters=2", "--model-option", "stem=cifar", "--data", "digits",
                 "--epochs", "1", "--batch-size", "256", "--threads", "1", "--out", str(trained)]) == 0
    capsys.readouterr()
    info = json.loads((trained / "config.json").read_text())["info"]
    assert Genotype.from_data(info["model_options"]["genotype"]) == \
        Genotype.from_json((out / "best_genotype.json").read_text())


def test_search_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*TINY[:3], "--strategy", "evolution"])
    assert "invalid choice: 'evolution'" in capsys.readouterr().err
    assert main(["train", "--model", "nasnet", "--genotype", str(tmp_path / "none.json"), "--data", "digits",
                 "--out", str(tmp_path / "x")]) == 2
    assert "none.json: no such file" in capsys.readouterr().err
