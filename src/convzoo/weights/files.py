"""Reading and writing weight files without unpickling.

``read_state_dict`` accepts ``.safetensors`` (read directly) and PyTorch's ``.pth``/``.pt``/``.bin``/``.ckpt``
(``torch.load(..., weights_only=True)``, which only rebuilds tensors and plain containers and refuses any other
object). Training checkpoints that wrap the weights (``{"state_dict": ...}``, ``{"model": ...}``, ...) are unwrapped,
and the ``module.`` prefix of DistributedDataParallel and the ``_orig_mod.`` prefix of ``torch.compile`` are removed.
``save_weights`` writes safetensors atomically: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Where training scripts put the weights inside a checkpoint dict, most specific first.
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _file_format(path: Path) -> str:
    """"safetensors" or "torch", by suffix, else by the first bytes (zip archive, or an 8-byte length and JSON)."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in PICKLE_SUFFIXES:
        return "torch"
    with open(path, "rb") as file:
        head = file.read(9)
    if head[:2] == b"PK":
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise ValueError(f"cannot tell the format of {path}: expected a .safetensors file or a PyTorch "
                     f"{'/'.join(PICKLE_SUFFIXES)} file saved with torch.save")


def unwrap_state_dict(obj: object, where: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """The tensors of a state dict, found inside common checkpoint containers; wrapper prefixes removed.

    Accepts ``{name: Tensor}`` or a dict that holds one under ``CONTAINER_KEYS`` (e.g. ``{"model": ..., "epoch": 3}``).
    """
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            kinds = {k: type(v).__name__ for k, v in obj.items() if not isinstance(v, torch.Tensor)}
            shown = ", ".join(f"{k!r}: {t}" for k, t in list(kinds.items())[:8])
            raise ValueError(f"{where} is not a state dict: entries that are not tensors ({shown}) and none of "
                             f"the usual containers {CONTAINER_KEYS}")
        obj = inner
    if not isinstance(obj, Mapping):
        raise TypeError(f"{where} holds a {type(obj).__name__}, expected a dict of tensors (a state dict)")
    state = {str(k): v for k, v in obj.items()}
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the weights in ``path`` onto the CPU, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if _file_format(path) == "safetensors":
        try:
            return load_file(path, device="cpu")
        except Exception as error:  # safetensors' SafetensorError (zero-byte, garbage, truncated, huge header)
            if isinstance(error, FileNotFoundError):
                raise
            raise ValueError(f"{path} is not a readable safetensors file ({type(error).__name__}: "
                             f"{str(error)[:200]})") from None
    return unwrap_state_dict(load_torch_file(path), str(path))


def load_torch_file(path: str | os.PathLike, map_location: str | torch.device = "cpu", what: str = "a PyTorch "
                    "checkpoint file"):
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never other objects; a file
    with anything else, a truncated or a foreign one, is a ValueError naming ``path`` (as ``what`` it is not)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path} holds objects other than tensors and plain containers; convzoo reads it only with "
                         f"torch.load(weights_only=True) and never unpickles them ({str(error)[:200]})") from None
    except (KeyError, EOFError, RuntimeError, IndexError, TypeError, AttributeError) as error:
        # a truncated or foreign file: the unpickler's own message (a bare memo index) names nothing
        raise ValueError(f"{path} is not {what} (torch.load failed: {type(error).__name__}: "
                         f"{str(error)[:200]})") from None


def independent_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; a tensor whose memory an earlier one uses too is cloned (safetensors refuses sharing)."""
    out, storages = {}, set()
    for name, tensor in state.items():
        tensor = tensor.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages and tensor.numel():
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` in ``path``'s folder, fsync, then rename onto ``path`` (atomic on POSIX).

    The file appears complete or not at all; on any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_weights(model: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write the state dict of ``model`` (or a state dict) to ``path`` as safetensors, atomically.

    The file appears complete or not at all: it is written to a temporary file beside ``path`` and then renamed.
    ``metadata`` (strings only) is stored in the safetensors header. Returns the path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"save_weights writes safetensors; give the file a .safetensors suffix, got {path.name!r}")
    state = model.state_dict() if isinstance(model, nn.Module) else model
    tensors = independent_tensors(state)
    atomic_write(path, lambda temporary: save_file(tensors, temporary, metadata={"format": "pt", **(metadata or {})}))
    return path
