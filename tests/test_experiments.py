"""The experiments suite (``convzoo experiment NAME``): every experiment's quick size through the command line, in
this process, and the pieces they rest on (calibration, class subsets, the BN-experiment models, ``artifacts``).

The quick sizes train on tiny slices of the bundled digits (or a few generated shapes and solids) for one epoch:
they check that each experiment runs end to end and writes its figures, not what the figures say.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from convzoo.cli import main
from convzoo.data.datasets import TensorImageDataset, select_subset
from convzoo.experiments import EXPERIMENTS, run_experiment
from convzoo.experiments.calibration import expected_calibration_error, reliability
from convzoo.experiments.runner import difference, mean_std
from convzoo.options import ClassificationOptions
from convzoo.registry import create_model
from convzoo.train import TrainConfig, fit


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_experiment_writes_its_figures(name, tmp_path, capsys):
    seeds = ["--seeds", "2"] if name in ("label_smoothing", "batchnorm") else []
    assert main(["experiment", name, "--quick", "--out", str(tmp_path), *seeds]) == 0
    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert result["experiment"] == name and result["size"] == "quick"
    assert result["seeds"] == ([0, 1] if seeds else [0])
    assert result["machine"]["cpu_count"] >= 1 and result["cpu_seconds"] > 0
    assert result["verdict"] and result["verdict"] in capsys.readouterr().out
    for run in result["runs"]:
        assert run["curves"] and "step" in run["curves"][-1], run["label"]
        assert run["cpu_seconds"] > 0 and run["wall_seconds"] > 0
        assert any(key.startswith("test:") for key in run["final"]), run["label"]
    if name == "label_smoothing":
        assert {r["config"]["classification"]["label_smoothing"] for r in result["runs"]} == {0.0, 0.1}
        assert result["summary"]["0.1"]["ece"]["n"] == 2
    if name == "batchnorm":  # the whole protocol at every seed: the sweep, then each BN variant at the best rate
        assert sorted(r["seed"] for r in result["runs"]) == [0] * 6 + [1] * 6
        assert all(len(row["steps_to_target"]) == 2 for row in result["table"].values())


def test_a_finished_run_is_read_back_not_trained_again(tmp_path, capsys):
    first = run_experiment("batchnorm", size="quick", out=tmp_path)
    second = run_experiment("batchnorm", size="quick", out=tmp_path)
    assert [r["final"] for r in first["runs"]] == [r["final"] for r in second["runs"]]
    assert [r["cpu_seconds"] for r in first["runs"]] == [r["cpu_seconds"] for r in second["runs"]]


def test_reverse_trains_in_reverse_and_reports_in_the_forward_order(tmp_path, capsys):
    main(["experiment", "aux_classifiers", "--quick", "--out", str(tmp_path), "--reverse"])
    captured = capsys.readouterr()
    trained = [line.split(":")[1].strip() for line in (captured.out + captured.err).splitlines()
               if line.startswith("experiment aux_classifiers: ")]
    assert trained[:2] == ["aux0-seed0", "aux0.3-seed0"]  # the last run first
    result = json.loads((tmp_path / "aux_classifiers.json").read_text())
    assert [r["label"] for r in result["runs"]] == ["aux0.3-seed0", "aux0-seed0"]


def test_unknown_experiment_and_bad_seeds_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "resnet"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--seeds"):
        run_experiment("degradation", size="quick", seeds=0)
    with pytest.raises(ValueError, match="--size"):
        run_experiment("degradation", size="huge")


def test_expected_calibration_error_by_hand():
    # two predictions at confidence 0.85 (one right), two at 0.65 (both right): bins (0.8, 0.9] and (0.6, 0.7]
    probabilities = torch.tensor([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.35, 0.65]])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(0.5 * 0.35 + 0.5 * 0.35)
    table = reliability(probabilities, labels, bins=10)
    assert table["count"][8] == 2 and table["accuracy"][8] == 0.5 and table["confidence"][8] == pytest.approx(0.85)
    assert table["count"][6] == 2 and table["accuracy"][6] == 1.0 and sum(table["count"]) == 4
    perfect = torch.eye(3)
    assert expected_calibration_error(perfect, torch.arange(3)) == 0.0


def test_mean_std_is_the_sample_spread():
    stats = mean_std([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["std"] == pytest.approx(1.0) and stats["n"] == 3
    assert mean_std([5.0])["std"] == 0.0
    # a difference is judged against the larger of the two spreads, and not at all with one seed
    assert difference(mean_std([0.9, 0.92]), mean_std([0.8, 0.81])) == \
        "difference +0.1050, larger than the seeds' std 0.0141"
    assert "not larger" in difference(mean_std([0.9, 0.95]), mean_std([0.89, 0.9]))
    assert difference(mean_std([0.9]), mean_std([0.8])).endswith("one seed: no spread to compare with")


def test_select_subset_relabels_and_keeps_a_fraction_per_class():
    labels = torch.arange(10).repeat_interleave(10)  # 10 items of each of 10 classes
    dataset = TensorImageDataset(torch.arange(100).reshape(100, 1, 1, 1).to(torch.uint8), labels, lambda x: x)
    subset = select_subset(dataset, classes=[7, 2], fraction=0.3)
    assert sorted(subset.labels.tolist()) == [0] * 3 + [1] * 3
    assert set(subset.images.flatten().tolist()) <= set(range(70, 80)) | set(range(20, 30))
    assert torch.equal(subset.labels, (subset.images.flatten() < 50).long() * 0 + (subset.images.flatten() < 50))
    again = select_subset(dataset, classes=[7, 2], fraction=0.3)
    assert torch.equal(subset.images, again.images)  # fixed: the same for every run
    assert len(select_subset(dataset, fraction=0.01)) == 10  # at least one item of each class


def test_classification_options_for_subsets_are_checked():
    for bad in ({"train_fraction": 0.0}, {"eval_fraction": 1.5}, {"classes": [1, 1]}, {"classes": []},
                {"classes": [-1]}):
        with pytest.raises(ValueError, match="--"):
            ClassificationOptions(**bad)
    with pytest.raises(ValueError, match="--classes"):
        fit(TrainConfig(epochs=1, classification=ClassificationOptions(classes=[3, 12])))


def test_class_subset_run_has_its_classes_and_no_artifacts(tmp_path):
    metrics = fit(TrainConfig(epochs=1, out=str(tmp_path / "run"), progress=False, artifacts=False,
                              classification=ClassificationOptions(classes=[5, 6, 7], train_fraction=0.2,
                                                                   eval_fraction=0.5)))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["info"]["num_classes"] == 3 and saved["info"]["class_names"] == ["5", "6", "7"]
    assert not list((tmp_path / "run").glob("*.png"))
    assert 0.0 <= metrics["test:accuracy"] <= 1.0


def test_batchnorm_experiment_models():
    plain, nobn, sigmoid = (create_model(n) for n in ("plain20", "plain20_nobn", "plain20_sigmoid"))
    norms = [sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) for model in (plain, nobn, sigmoid)]
    assert norms == [19, 0, 19]
    convs = [m for m in nobn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19 and all(c.bias is not None for c in convs)
    # 0.27 M as plain20, plus the 19 convolutions' biases, less the BatchNorm parameters
    assert sum(p.numel() for p in nobn.parameters()) == sum(p.numel() for p in plain.parameters()) - 2 * sum(
        c.out_channels for c in convs) + sum(c.out_channels for c in convs)
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in sigmoid.modules()) == 10  # stem + one per block
    assert not any(isinstance(m, torch.nn.ReLU) for m in sigmoid.modules())
    x = torch.randn(2, 3, 16, 16)
    assert nobn(x).shape == sigmoid(x).shape == (2, 10)
    with pytest.raises(ValueError, match="activation"):
        from convzoo.models.resnet_cifar import CifarResNet
        CifarResNet(20, activation="tanh")


def test_an_interrupted_run_is_resumed_and_one_without_a_checkpoint_retrained(tmp_path):
    from convzoo.experiments.runner import Context
    from convzoo.experiments.runner import train as experiment_train

    ctx = Context("transfer", size="quick", out=tmp_path)
    config = TrainConfig(epochs=2, progress=False, artifacts=False, batch_size=16,
                         classification=ClassificationOptions(classes=[0, 1], train_fraction=0.3, eval_fraction=0.3))
    whole = experiment_train(ctx, "whole", config)

    def ctrl_c_in_the_second_epoch(state, model):
        if state.epoch == 1 and state.batch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C saves `last`; the experiment's record is never written
        fit(dataclasses.replace(config, out=str(tmp_path / "runs" / "cut")), callbacks=[ctrl_c_in_the_second_epoch])
    cut = experiment_train(ctx, "cut", config)
    assert cut["resumed"] and not whole["resumed"]
    assert cut["final"]["test:accuracy"] == whole["final"]["test:accuracy"]  # the resume is bit for bit
    assert [r["loss"] for r in cut["curves"]] == [r["loss"] for r in whole["curves"]]
    (tmp_path / "runs" / "early").mkdir()
    (tmp_path / "runs" / "early" / "config.json").write_text("{}")  # stopped before any checkpoint
    early = experiment_train(ctx, "early", config)
    assert not early["resumed"] and early["final"]["test:accuracy"] == whole["final"]["test:accuracy"]
