"""Readers of the data sets' own file formats, to uint8 tensors; none of them unpickles arbitrary objects.

Formats: IDX (MNIST, Fashion-MNIST; raw or .gz), the CIFAR-10 python batches (read with an allow-list unpickler that
accepts only numpy arrays) and binary batches, and numpy ``.npz`` archives (``allow_pickle=False``).
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch

# IDX magic numbers (LeCun's MNIST page): 0x0000 08 <ndim>, 08 = unsigned byte.
_IDX_UBYTE = 0x08


def read_idx(path: str | Path) -> torch.Tensor:
    """An IDX file (optionally gzipped) as a uint8 tensor of its stated shape, e.g. [60000, 28, 28]."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {len(data) - offset} bytes")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(shape)


def find_file(folder: Path, stem: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz`` (also with MNIST's alternative ``-idx3.`` dots), whichever exists."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")


def read_mnist_folder(folder: str | Path) -> dict[str, torch.Tensor]:
    """The four MNIST-format IDX files of ``folder``: x_train [60000, 1, 28, 28] uint8, y_train, x_test, y_test."""
    folder = Path(folder)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays[f"x_{split}"] = read_idx(find_file(folder, f"{prefix}-images-idx3-ubyte")).unsqueeze(1)
        arrays[f"y_{split}"] = read_idx(find_file(folder, f"{prefix}-labels-idx1-ubyte")).long()
    return arrays


# The only globals a CIFAR python batch refers to (numpy array reconstruction); everything else is refused.
_CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
})


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR python batch holds: dicts, lists, bytes, numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays")
        return super().find_class(module, name)


def read_cifar_python_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 python batch (``data_batch_1`` ... ``test_batch``): images [10000, 3, 32, 32] uint8, labels."""
    with open(path, "rb") as f:
        batch = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    # data: [N, 3072] uint8, row-major R (1024), G (1024), B (1024) planes of 32x32 (the CIFAR page).
    images = torch.from_numpy(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).copy())
    return images, torch.as_tensor(batch["labels"], dtype=torch.long)


def read_cifar_binary_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 binary batch (``data_batch_1.bin``): records of 1 label byte + 3072 pixel bytes."""
    records = torch.from_numpy(np.fromfile(path, dtype=np.uint8).reshape(-1, 1 + 3072))
    return records[:, 1:].reshape(-1, 3, 32, 32).clone(), records[:, 0].long()


def read_cifar_batches(folder: str | Path) -> dict[str, torch.Tensor] | None:
    """The official CIFAR-10 batches (python or binary) in ``folder`` or its ``cifar-10-batches-*`` subfolder.

    Returns x_train [50000, 3, 32, 32] uint8, y_train, x_test, y_test; None when there are no batch files.
    """
    folder = Path(folder)
    for candidate, suffix, reader in ((folder, "", read_cifar_python_batch),
                                      (folder / "cifar-10-batches-py", "", read_cifar_python_batch),
                                      (folder, ".bin", read_cifar_binary_batch),
                                      (folder / "cifar-10-batches-bin", ".bin", read_cifar_binary_batch)):
        if (candidate / f"data_batch_1{suffix}").is_file():
            train = [reader(candidate / f"data_batch_{i}{suffix}") for i in range(1, 6)]
            x_test, y_test = reader(candidate / f"test_batch{suffix}")
            return {"x_train": torch.cat([x for x, _ in train]), "y_train": torch.cat([y for _, y in train]),
                    "x_test": x_test, "y_test": y_test}
    return None


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """A numpy archive as a dict of arrays, never unpickling (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
