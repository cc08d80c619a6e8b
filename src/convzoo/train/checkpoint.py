"""Checkpoints that survive a crash: weights in safetensors, training state via ``torch.save``, both written atomically.

A checkpoint ``NAME`` in a folder is two files: ``NAME.safetensors`` (the model's state dict) and ``NAME.state.pt``
(optimizer, step, RNG states, anything the caller adds: plain Python values and tensors only, read back with
``torch.load(weights_only=True)``, so nothing is ever unpickled). Both carry the same ``checkpoint_id``; loading a
pair whose ids differ (a crash between the two renames) is an error instead of a silent mix. Model-agnostic: the
detection trainer uses the same functions.

    save_checkpoint(run_dir, "last", model, {"optimizer": opt.state_dict(), "epoch": 3, "rng": rng_state()})
    state = load_checkpoint(run_dir, "last", model)      # loads the weights into model, returns the state
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from convzoo.tasks.base import unwrap_model
from convzoo.weights.files import atomic_write, independent_tensors


def model_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of the unwrapped ``model`` as contiguous CPU tensors, tensors sharing storage cloned."""
    return independent_tensors(unwrap_model(model).state_dict())


def save_checkpoint(folder: str | Path, name: str, model: nn.Module, state: dict) -> Path:
    """Write ``folder/name.safetensors`` (weights) and ``folder/name.state.pt`` (``state``) atomically."""
    folder = Path(folder)
    checkpoint_id = uuid.uuid4().hex
    weights_path = folder / f"{name}.safetensors"
    metadata = {"checkpoint_id": checkpoint_id}
    atomic_write(weights_path, lambda tmp: save_file(model_weights(model), tmp, metadata=metadata))
    atomic_write(folder / f"{name}.state.pt", lambda tmp: torch.save({**state, "checkpoint_id": checkpoint_id}, tmp))
    return weights_path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    return load_file(str(path)), metadata


def load_checkpoint(folder: str | Path, name: str, model: nn.Module | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load checkpoint ``name`` of ``folder``: the weights into ``model`` (strictly, if given); return the state."""
    folder = Path(folder)
    weights_path, state_path = folder / f"{name}.safetensors", folder / f"{name}.state.pt"
    for path in (weights_path, state_path):
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint {path}")
    state = torch.load(state_path, map_location=map_location, weights_only=True)
    weights, metadata = read_weights(weights_path)
    if metadata.get("checkpoint_id") != state.get("checkpoint_id"):
        raise ValueError(f"{weights_path} and {state_path} come from different saves "
                         f"(ids {metadata.get('checkpoint_id')} vs {state.get('checkpoint_id')})")
    if model is not None:
        unwrap_model(model).load_state_dict(weights)
    return state


def rng_state() -> dict:
    """The states of every random generator a training step may draw from: torch (CPU, CUDA), numpy, Python."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore the generators from :func:`rng_state` (CUDA states only where the same devices exist)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["key"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
