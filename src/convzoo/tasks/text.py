"""Sentence classification as a task of the engine: ``--data text:PATH`` (:mod:`convzoo.data.text`) and a
``text_classifier`` model (``kim_cnn``).

It is classification with token indices for inputs: the loss, the training tallies, the evaluation (one confusion
matrix summed over processes, ``confusion_{split}.png``) come from :class:`ClassificationTask`. This task supplies
the data, the model's build from ``info`` (the vocabulary is in ``info``, so ``config.json`` holds it and ``predict``
needs no data set), the max-norm constraint after each optimizer step, and prediction on raw sentences.

Defaults (Kim 2014, Sec. 3.1 and his code ``conv_net_sentence.py``): Adadelta (lr 1, rho 0.95, epsilon 1e-6), batch
50, 25 epochs, a constant learning rate.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from convzoo.data.text import decode, encode, load_text, pad_batch, read_word_vectors, tokenize, word_vector_dim
from convzoo.models.aux import main_logits
from convzoo.options import ClassificationOptions, TextOptions
from convzoo.registry import create_model
from convzoo.tasks.base import TaskData, unwrap_model
from convzoo.tasks.classification import ClassificationTask

TOKENIZER = "kim2014"  # convzoo.data.text.tokenize: Kim's clean_str


def parse_text_spec(spec: str) -> str:
    """The PATH of ``text:PATH``."""
    name, _, path = spec.partition(":")
    if name != "text" or not path:
        raise ValueError(f"--data {spec!r}: a text classifier reads --data text:PATH (a sentence file or folder)")
    return path


def read_inputs(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(where, sentence) of each non-blank line of each text file: ``FILE:LINE``."""
    found = []
    for path in paths:
        lines = decode(Path(path)).split("\n")
        found += [(f"{path}:{number}", line.strip()) for number, line in enumerate(lines, 1) if line.strip()]
        if not any(line.strip() for line in lines):
            raise ValueError(f"{path}: no sentences (the file is empty); expected one sentence per line")
    return found


class TextClassificationTask(ClassificationTask):
    """Classification of the sentences of ``data`` (``text:PATH``) by the registered text classifier ``model``."""

    name = "text"
    score = "accuracy"
    defaults = {"batch_size": 50, "optimizer": "adadelta", "lr": 1.0, "epochs": 25, "schedule": "constant"}

    def __init__(self, model: str, data: str, options: TextOptions | None = None, *, pretrained: str | None = None,
                 pretrained_source: str = "auto", **_common) -> None:
        super().__init__(model, data, ClassificationOptions(), pretrained=pretrained,
                         pretrained_source=pretrained_source)
        self.text = options or TextOptions()

    def load_data(self, data: str | None = None) -> TaskData:
        splits = load_text(parse_text_spec(data or self.data_spec), self.text.fold, self.text.folds)
        dim = self.text.embedding_dim
        if self.text.word_vectors:  # the file's dimension
            dim = word_vector_dim(self.text.word_vectors)
        info = {"num_classes": splits.num_classes, "class_names": [str(i) for i in range(splits.num_classes)],
                "input_size": [1, splits.max_length], "data": splits.name, "files": splits.files,
                "tokenizer": TOKENIZER, "model_options": {"embedding_dim": dim, "embeddings": self.text.embeddings},
                "vocab": splits.vocab}
        notes = [f"{splits.name}: {len(splits.vocab)} tokens in the vocabulary of the training split"]
        if "all" in splits.files:
            notes.append(f"cross-validation: fold {self.text.fold or 1} of {self.text.folds or 10} is the test split")
        return TaskData(splits.train, splits.dev, splits.test, info, notes)

    def build_model(self, info: dict, initialize: bool = True) -> nn.Module:
        model = create_model(self.model_name, num_classes=info["num_classes"], vocab_size=len(info["vocab"]),
                             **info["model_options"])
        if initialize and self.text.word_vectors:
            vectors, _ = read_word_vectors(self.text.word_vectors, info["vocab"])
            found = model.load_word_vectors(vectors)
            print(f"--word-vectors {self.text.word_vectors}: {found} of the {len(info['vocab'])} tokens found",
                  file=sys.stderr)
        if initialize and self.pretrained:
            from convzoo.tasks.base import load_pretrained

            load_pretrained(model, self.pretrained, self.pretrained_source)
        return model

    def after_optimizer_step(self, model: nn.Module) -> None:
        """Kim's max-norm constraint on the softmax weights, after every update."""
        inner = unwrap_model(model)
        if hasattr(inner, "apply_max_norm"):
            inner.apply_max_norm()

    def predict_files(self, model: nn.Module, info: dict, paths: Sequence[str], device: torch.device,
                      out: Path | None = None, top: int = 1, sentences: Sequence[str] = (), **_options) -> dict:
        """Print ``WHERE: class (probability), ...`` for each sentence: every non-blank line of the text files
        ``paths`` (``FILE:LINE``) and each of ``sentences`` (in quotes), tokenized as the training data was."""
        if top < 1:
            raise ValueError(f"--top must be at least 1, got {top}")
        inputs = read_inputs(paths) + [(repr(s), s) for s in sentences]
        if not inputs:
            raise ValueError("predict: no sentences; give text files (one sentence per line) or --sentence TEXT")
        if info.get("tokenizer") != TOKENIZER:
            raise ValueError(f"this run's tokenizer {info.get('tokenizer')!r} is not {TOKENIZER!r}")
        tokens = encode([tokenize(sentence) for _, sentence in inputs], info["vocab"])
        model.eval()
        names = info.get("class_names") or [str(i) for i in range(info["num_classes"])]
        results = {}
        with torch.no_grad():
            for start in range(0, len(inputs), 256):
                batch = pad_batch(tokens[start:start + 256]).to(device)
                probabilities = main_logits(model(batch)).float().softmax(1).cpu()
                for (where, _), row in zip(inputs[start:start + 256], probabilities):
                    values, indices = row.topk(min(top, len(row)))
                    results[where] = [(names[i], v) for v, i in zip(values.tolist(), indices.tolist())]
                    print(f"{where}: " + ", ".join(f"{name} ({p:.4f})" for name, p in results[where]))
        return results
