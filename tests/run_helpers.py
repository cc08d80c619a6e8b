"""What the run tests compare: a run folder's checkpoint weights, bit for bit."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from safetensors.torch import load_file


def weights(run_dir, name: str = "last") -> dict[str, torch.Tensor]:
    """The tensors of checkpoint ``name`` in ``run_dir``."""
    return load_file(Path(run_dir) / f"{name}.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def toy_sentences(path, n: int = 120, seed: int = 0) -> Path:
    """A ``label tokens`` file of ``n`` lines: two classes told apart by one word among filler words."""
    rng = random.Random(seed)
    words = {0: ["dull", "awful", "boring"], 1: ["great", "superb", "moving"]}
    filler = ["the", "film", "is", "a", "plot", "very"]
    lines = []
    for i in range(n):
        sentence = rng.sample(filler, 3) + [rng.choice(words[i % 2])]
        rng.shuffle(sentence)
        lines.append(f"{i % 2} {' '.join(sentence)}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
