"""Readers of the data sets' own file formats, to uint8 tensors; none of them unpickles arbitrary objects.

Formats: IDX (MNIST, Fashion-MNIST; raw or .gz), the CIFAR-10 python batches (read with an allow-list unpickler that
accepts only numpy arrays) and binary batches, and numpy ``.npz`` archives (``allow_pickle=False``).
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

# IDX magic numbers (LeCun's MNIST page): 0x0000 08 <ndim>, 08 = unsigned byte.
_IDX_UBYTE = 0x08


def check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
    """Raise a ValueError naming ``where`` and the first label outside ``0..num_classes - 1``."""
    bad = torch.nonzero((labels < 0) | (labels >= num_classes)).flatten()
    if len(bad):
        raise ValueError(f"{where}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range; "
                         f"expected 0..{num_classes - 1}")


def read_idx(path: str | Path, expected_ndim: int | None = None) -> torch.Tensor:
    """An IDX file (optionally gzipped) as a uint8 tensor of its stated shape, e.g. [60000, 28, 28];
    ``expected_ndim``: the number of dimensions it must have (3 for images, 1 for labels)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except gzip.BadGzipFile as error:
        raise ValueError(f"{path} is not a gzip file ({error})") from None
    except (EOFError, zlib.error) as error:
        raise ValueError(f"{path} is truncated or corrupt ({type(error).__name__}: {error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {len(data) - offset} bytes")
    if expected_ndim is not None and ndim != expected_ndim:
        kind = {3: "images [N, H, W]", 1: "labels [N]"}.get(expected_ndim, f"{expected_ndim} dimensions")
        raise ValueError(f"{path}: expected {kind}, got an IDX array of shape {list(shape)}")
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
        images_path = find_file(folder, f"{prefix}-images-idx3-ubyte")
        labels_path = find_file(folder, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1).long()
        if len(images) != len(labels):
            raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
        check_labels(labels, 10, str(labels_path))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images.unsqueeze(1), labels
    return arrays


# The only globals a CIFAR python batch refers to (numpy array reconstruction); everything else is refused.
_CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
})


class CifarBatchError(ValueError, pickle.UnpicklingError):
    """A file that is not a CIFAR-10 python batch (garbage, truncated, or holding objects other than arrays)."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR python batch holds: dicts, lists, bytes, numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays")
        return super().find_class(module, name)


def read_cifar_python_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 python batch (``data_batch_1`` ... ``test_batch``): images [10000, 3, 32, 32] uint8, labels."""
    with open(path, "rb") as f:
        content = f.read()
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(content), encoding="bytes").load()
    except Exception as error:  # garbage makes the unpickler fail in any way: the file is at fault, not convzoo
        raise CifarBatchError(f"{path} is not a CIFAR-10 python batch ({type(error).__name__}: {error})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (a dict), it holds a {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise ValueError(f"{path}: a CIFAR-10 batch holds 'data' and 'labels', this one has no "
                         f"{' and no '.join(repr(m) for m in missing)} (keys: {', '.join(map(str, batch))})")
    # data: [N, 3072] uint8, row-major R (1024), G (1024), B (1024) planes of 32x32 (the CIFAR page).
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise ValueError(f"{path}: 'data' must be uint8 [N, 3072] (32x32 RGB), got {data.dtype} {list(data.shape)}")
    try:
        labels = torch.as_tensor(np.asarray(batch["labels"], dtype=np.int64).reshape(-1))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: 'labels' must be a list of integers ({error})") from None
    return _check_batch(path, torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels)


def _check_batch(path, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if len(images) != len(labels):
        raise ValueError(f"{path} holds {len(images)} images but {len(labels)} labels")
    check_labels(labels, 10, str(path))
    return images, labels


def read_cifar_binary_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 binary batch (``data_batch_1.bin``): records of 1 label byte + 3072 pixel bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) % (1 + 3072):
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of CIFAR-10 records of 3073 bytes "
                         "(1 label byte + 3072 pixel bytes)")
    records = torch.from_numpy(raw.reshape(-1, 1 + 3072))
    return _check_batch(path, records[:, 1:].reshape(-1, 3, 32, 32).clone(), records[:, 0].long())


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
    """A numpy archive as a dict of arrays, never unpickling (``allow_pickle=False``): an archive that holds Python
    objects is refused."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # an .npz is a zip archive
        raise ValueError(f"{path} is not a numpy .npz archive (it starts with {magic!r})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as error:
                    if "allow_pickle" not in str(error):
                        raise
                    raise ValueError(f"{path}: array {key!r} holds pickled Python objects, which convzoo never "
                                     "loads; save plain numeric arrays") from None
            return arrays
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.filename is not None:
            raise
        raise ValueError(f"{path} is not a numpy .npz archive: truncated or corrupt "
                         f"({type(error).__name__}: {error})") from None
