"""kim_cnn (Kim 2014) and the text task on the engine: parameter counts, the max-norm constraint after each step,
padding that does not change the logits, word vectors, and a tiny train -> predict -> evaluate on the command line."""

from __future__ import annotations

import json

import pytest
import torch
from run_helpers import toy_sentences

import convzoo
from convzoo.cli import build_parser, main
from convzoo.models.kim_cnn import max_norm_
from convzoo.tasks import TextClassificationTask
from convzoo.train.optim import build_optimizer


def test_parameter_counts_match_the_docstring():
    # embedding 10,000 x 300; filters 300 * 100 * (3 + 4 + 5) + 300 = 360,300; softmax 300 * 2 + 2
    with torch.device("meta"):  # shapes only
        model = convzoo.create_model("kim_cnn")
        two = convzoo.create_model("kim_cnn", embeddings="multichannel")
    assert convzoo.count_params(model) == 3_000_000 + 360_300 + 602 == 3_360_902
    assert convzoo.count_params(two) == 6_360_902
    assert [p.requires_grad for p in two.static_embedding.parameters()] == [False]
    static = convzoo.create_model("kim_cnn", embeddings="static", num_classes=6, vocab_size=50)
    assert not static.embedding.weight.requires_grad and convzoo.count_params(static) == 15_000 + 360_300 + 1806
    assert convzoo.model_kind("kim_cnn") == "text_classifier"


def test_summary_of_a_40_token_sentence():
    # conv h over 40 + 4 + 5 padded positions: (50 - h) outputs x 100 maps x 300 h MACs
    with torch.device("meta"):
        table = convzoo.summary(convzoo.create_model("kim_cnn"), (1, 40), device="meta")
    assert table.total_macs == 47 * 100 * 900 + 46 * 100 * 1200 + 45 * 100 * 1500 + 600 == 16_500_600
    assert table.total_params == 3_360_902 and not table.not_run


def test_max_norm_rescales_only_long_rows():
    weight = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])  # norms 5, 0.5, 0
    max_norm_(weight, 3.0)
    assert torch.allclose(weight, torch.tensor([[1.8, 2.4], [0.3, 0.4], [0.0, 0.0]]))
    model = convzoo.create_model("kim_cnn", vocab_size=20)
    model.fc.weight.data.fill_(1.0)  # rows of norm sqrt(300) > 3
    model.apply_max_norm()
    assert torch.allclose(model.fc.weight.norm(dim=1), torch.full((2,), 3.0))


def test_logits_do_not_depend_on_the_batch_padding():
    model = convzoo.create_model("kim_cnn", vocab_size=30, embedding_dim=8, maps=4).eval()
    torch.nn.init.normal_(model.fc.weight)
    sentence = torch.tensor([[5, 7, 9, 2, 11, 3]])
    alone = model(sentence)
    padded = model(torch.cat([sentence, torch.zeros(1, 14, dtype=torch.long)], 1))
    assert torch.allclose(alone, padded, atol=1e-6) and torch.allclose(model(sentence[:, None]), alone)
    assert model(torch.tensor([[4]])).shape == (1, 2)  # shorter than the widest window
    with pytest.raises(ValueError, match=r"token indices of shape \[N, L\]"):
        model(torch.randn(2, 1, 8))


def test_adadelta_as_in_the_paper():
    optimizer = build_optimizer("adadelta", [torch.nn.Parameter(torch.zeros(2))], 1.0)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adadelta) and (group["lr"], group["rho"], group["eps"]) == (1.0, 0.95,
                                                                                                         1e-6)


def cli(argv: list[str]):
    """What the command ``convzoo ARGV`` returns (its metrics or predictions)."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_train_predict_evaluate_on_the_command_line(tmp_path, capsys, monkeypatch):
    calls = []
    original = TextClassificationTask.after_optimizer_step
    monkeypatch.setattr(TextClassificationTask, "after_optimizer_step",
                        lambda self, model: (calls.append(1), original(self, model)))
    data = toy_sentences(tmp_path / "toy.all")
    run = tmp_path / "run"
    metrics = cli(["train", "--model", "kim_cnn", "--data", f"text:{data}", "--epochs", "2", "--batch-size", "20",
                    "--embedding-dim", "16", "--fold", "2", "--folds", "5", "--threads", "1", "--no-progress",
                    "--out", str(run), "--lr", "30"])
    assert len(calls) == metrics["steps"] == 2 * 4  # 120 - 24 (test) = 96 -> 86 train, 10 dev: 4 steps an epoch
    saved = json.loads((run / "config.json").read_text())
    assert saved["task"] == "text" and saved["config"]["optimizer"] == "adadelta"
    assert saved["config"]["schedule"] == "constant" and saved["config"]["text"]["fold"] == 2
    assert saved["info"]["vocab"][:2] == ["<pad>", "<unk>"] and len(saved["info"]["vocab"]) == 2 + 12
    weights = convzoo.load_weights(convzoo.create_model("kim_cnn", vocab_size=14, embedding_dim=16),
                                   run / "last.safetensors")
    assert weights  # the checkpoint loads into a fresh model built from the info alone
    model = TextClassificationTask("kim_cnn", "text:x").build_model(saved["info"], initialize=False)
    convzoo.load_weights(model, run / "last.safetensors")
    assert (model.fc.weight.norm(dim=1) <= 3.0 + 1e-5).all()  # the max-norm held after every step
    capsys.readouterr()
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("a superb film\n\nthe plot is dull\n")
    predictions = cli(["predict", str(run), str(sentences), "--sentence", "very boring", "--top", "2"])
    printed = capsys.readouterr().out.splitlines()
    assert list(predictions) == [f"{sentences}:1", f"{sentences}:3", "'very boring'"]
    assert printed[0].startswith(f"{sentences}:1: ") and len(predictions["'very boring'"]) == 2
    evaluated = cli(["evaluate", str(run), "--checkpoint", "last"])
    assert evaluated["test:accuracy"] == pytest.approx(metrics["test:accuracy"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["predict", str(run), str(empty)]) == 2
    assert "empty.txt: no sentences (the file is empty)" in capsys.readouterr().err


def test_word_vectors_initialize_the_embeddings(tmp_path):
    data = toy_sentences(tmp_path / "toy.all", n=40)
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("2 4\nsuperb 1 2 3 4\nfilm 0.5 0.5 0.5 0.5\n")  # word2vec text format with its header
    task = TextClassificationTask("kim_cnn", f"text:{data}", convzoo.tasks.TextOptions(
        embeddings="multichannel", word_vectors=str(vectors)))
    info = task.load_data().info
    assert info["model_options"] == {"embedding_dim": 4, "embeddings": "multichannel"}
    model = task.build_model(info)
    superb = info["vocab"].index("superb")
    for table in (model.embedding, model.static_embedding):
        assert table.weight[superb].tolist() == [1, 2, 3, 4] and not table.weight[0].any()
    with pytest.raises(ValueError, match="--embeddings static loads word vectors: give --word-vectors FILE"):
        convzoo.tasks.TextOptions(embeddings="static")


def test_the_text_task_defaults_follow_kim():
    from convzoo.train import TrainConfig

    config = TrainConfig(model="kim_cnn", data="text:x").resolved(TextClassificationTask.defaults)
    assert (config.optimizer, config.lr, config.batch_size, config.epochs, config.schedule) == ("adadelta", 1.0, 50,
                                                                                                 25, "constant")
    assert TrainConfig().resolved({}).schedule == "cosine"  # other tasks keep the engine's default
