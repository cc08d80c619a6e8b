"""What the run tests compare: a run folder's checkpoint weights, bit for bit."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from convzoo.experiments.beyond_images import toy_sentences  # noqa: F401 (the tests' toy sentence file)


def weights(run_dir, name: str = "last") -> dict[str, torch.Tensor]:
    """The tensors of checkpoint ``name`` in ``run_dir``."""
    return load_file(Path(run_dir) / f"{name}.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

