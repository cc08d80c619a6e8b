"""Checkpoints that survive a crash: weights in safetensors, training state via ``torch.save``, one atomic unit.

A checkpoint ``NAME`` in a folder is two files: ``NAME.safetensors`` (the model's state dict) and ``NAME.state.pt``
(optimizer, step, RNG states, anything the caller adds: plain Python values and tensors only, read back with
``torch.load(weights_only=True)``, so nothing is ever unpickled). Both carry the same ``checkpoint_id``.

The pair is replaced as a whole, by a small journal (a write-ahead commit record):

1. write ``NAME.safetensors.new`` and ``NAME.state.pt.new``, each fsynced;
2. write ``NAME.commit`` atomically (temporary file, fsync, rename): from here on the new pair is the checkpoint;
3. rename both ``.new`` files onto their names, then delete ``NAME.commit``.

A crash or a full disk before step 2 leaves the previous pair untouched (the ``.new`` files are leftovers); after it,
the new pair is whole in the ``.new`` files and on their names. Readers follow the journal without changing files
(a run may be saving while ``evaluate`` reads it); the writer (the run folder's owner) finishes or discards an
interrupted save before its next one (:func:`recover`).

    save_checkpoint(run_dir, "last", model, {"optimizer": opt.state_dict(), "epoch": 3, "rng": rng_state()})
    state = load_checkpoint(run_dir, "last", model)      # loads the weights into model, returns the state
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from convzoo.tasks.base import unwrap_model
from convzoo.weights.files import atomic_write, independent_tensors, load_torch_file

# A fault-injection hook for tests: called with the name of each step of a save ("weights", "state", "commit",
# "weights-renamed", "state-renamed", "done"); it may raise (a full disk) or kill the process (a crash). The
# environment variable CONVZOO_CHECKPOINT_FAULT="STEP:N" kills the process (SIGKILL) at the N-th time STEP is reached.
FAULT: Callable[[str], None] | None = None
_FAULT_COUNTS: dict[str, int] = {}


def _fault(step: str) -> None:
    if FAULT is not None:
        FAULT(step)
    wanted = os.environ.get("CONVZOO_CHECKPOINT_FAULT", "")
    if wanted:
        name, _, count = wanted.partition(":")
        if name == step:
            _FAULT_COUNTS[step] = _FAULT_COUNTS.get(step, 0) + 1
            if _FAULT_COUNTS[step] == int(count or 1):
                import signal

                os.kill(os.getpid(), signal.SIGKILL)


def model_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of the unwrapped ``model`` as contiguous CPU tensors, tensors sharing storage cloned."""
    return independent_tensors(unwrap_model(model).state_dict())


def _paths(folder: Path, name: str) -> tuple[Path, Path, Path]:
    return folder / f"{name}.safetensors", folder / f"{name}.state.pt", folder / f"{name}.commit"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def recover(folder: str | Path, name: str) -> str | None:
    """Finish (after its commit record) or discard (before it) an interrupted save of checkpoint ``name``, and
    remove temporary files of interrupted writes; return what was done ("finished", "discarded") or None."""
    folder = Path(folder)
    weights, state, commit = _paths(folder, name)
    done = None
    if commit.is_file():
        for path in (weights, state):
            pending = path.with_name(path.name + ".new")
            if pending.is_file():
                os.replace(pending, path)
        commit.unlink()
        done = "finished"
    for path in (weights, state):
        pending = path.with_name(path.name + ".new")
        if pending.exists():
            pending.unlink()
            done = done or "discarded"
    if folder.is_dir():
        for leftover in folder.glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)
    if done:
        _fsync_folder(folder)
    return done


def save_checkpoint(folder: str | Path, name: str, model: nn.Module, state: dict) -> Path:
    """Replace checkpoint ``name`` in ``folder`` by the weights of ``model`` and ``state``, as one atomic unit."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recover(folder, name)
    weights, state_path, commit = _paths(folder, name)
    checkpoint_id = uuid.uuid4().hex
    new_weights, new_state = weights.with_name(weights.name + ".new"), state_path.with_name(state_path.name + ".new")
    save_file(model_weights(model), str(new_weights), metadata={"checkpoint_id": checkpoint_id})
    _fsync_file(new_weights)
    _fault("weights")
    torch.save({**state, "checkpoint_id": checkpoint_id}, new_state)
    _fsync_file(new_state)
    _fault("state")
    atomic_write(commit, lambda tmp: Path(tmp).write_text(json.dumps({"checkpoint_id": checkpoint_id})))
    _fsync_folder(folder)
    _fault("commit")
    os.replace(new_weights, weights)
    _fault("weights-renamed")
    os.replace(new_state, state_path)
    _fault("state-renamed")
    _fsync_folder(folder)
    commit.unlink()
    _fault("done")
    return weights


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file; a file that is not one is a ValueError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, ValueError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None


def _current(folder: Path, name: str) -> tuple[Path, Path]:
    """The files that hold checkpoint ``name`` now: after a commit record, the ``.new`` files still pending."""
    weights, state, commit = _paths(folder, name)
    if commit.is_file():
        pending = [path.with_name(path.name + ".new") for path in (weights, state)]
        return tuple(p if p.is_file() else q for p, q in zip(pending, (weights, state)))  # type: ignore[return-value]
    return weights, state


def has_checkpoint(folder: str | Path, name: str) -> bool:
    """Whether ``folder`` holds a complete checkpoint ``name`` (a committed save counts before it is finished)."""
    return all(path.is_file() for path in _current(Path(folder), name))


def load_checkpoint(folder: str | Path, name: str, model: nn.Module | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load checkpoint ``name`` of ``folder``: the weights into ``model`` (strictly, if given); return the state.

    Reads through the journal (never changing a file); a missing, corrupt or foreign file, or a pair from two
    different saves, is an error naming the file."""
    folder = Path(folder)
    weights_path, state_path = _current(folder, name)
    for path in (weights_path, state_path):
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint {path}")
    state = load_torch_file(state_path, map_location, what="a convzoo training state")
    if not isinstance(state, dict):
        raise ValueError(f"{state_path} is not a convzoo training state (a {type(state).__name__}, not a dict)")
    weights, metadata = read_weights(weights_path)
    if metadata.get("checkpoint_id") != state.get("checkpoint_id"):
        raise ValueError(f"{weights_path} and {state_path} come from different saves "
                         f"(ids {metadata.get('checkpoint_id')} vs {state.get('checkpoint_id')})")
    if model is not None:
        try:
            unwrap_model(model).load_state_dict(weights)
        except RuntimeError as error:
            first = str(error).splitlines()
            raise ValueError(f"{weights_path} does not fit the run's model: "
                             f"{' '.join(line.strip() for line in first[:3])[:300]}") from None
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
