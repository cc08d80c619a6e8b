"""Data sets of ``--data``: file formats written here by hand, the bundled digits, the real data in shared/."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.data import BadImageError, load_data
from convzoo.data.datasets import fixed_split
from convzoo.data.formats import read_cifar_batches, read_idx, read_mnist_folder


def write_idx(path, array: np.ndarray) -> None:
    # IDX: 0x00 0x00, type 0x08 (ubyte), ndim, then each dimension as big-endian int32, then the bytes.
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_and_mnist_splits(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5100, 4, 4)), rng.integers(0, 10, 5100)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:30])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:30])
    assert torch.equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), torch.from_numpy(images.astype(np.uint8)))
    splits = load_data(f"mnist:{tmp_path}", augment=False)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (4590, 510, 30)  # dev = the last tenth
    x, y = splits.dev.__getitems__([0, 1])
    assert x.shape == (2, 1, 4, 4) and x.dtype == torch.float32 and y.tolist() == labels[4590:4592].tolist()
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01junk")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "bad")


def test_digits_is_the_default_and_normalized():
    splits = load_data("digits")
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (1294, 144, 359)  # 1797 in all
    assert splits.input_size == (1, 8, 8) and splits.num_classes == 10
    x, _ = splits.train.__getitems__(list(range(len(splits.train))))
    assert abs(x.mean().item()) < 1e-4 and x.std().item() == pytest.approx(1.0, abs=1e-3)
    assert [len(part) for part in fixed_split(1797, [0.1, 0.2])] == [1258, 180, 359]


def write_cifar_python(folder, images: np.ndarray, labels: np.ndarray) -> None:
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {b"data": images[i::6].reshape(-1, 3072), b"labels": labels[i::6].tolist(), b"batch_label": b"x"}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)


def test_cifar_python_and_binary_batches_agree(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 60)
    (tmp_path / "py").mkdir()
    write_cifar_python(tmp_path / "py", images, labels)
    binary = tmp_path / "cifar-10-batches-bin"
    binary.mkdir()
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        records = np.concatenate([labels[i::6, None].astype(np.uint8), images[i::6].reshape(-1, 3072)], axis=1)
        records.tofile(binary / name)
    from_python, from_binary = read_cifar_batches(tmp_path / "py"), read_cifar_batches(tmp_path)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(from_python[key], from_binary[key]), key
    assert torch.equal(from_python["x_test"], torch.from_numpy(images[5::6]))
    assert from_python["y_train"].tolist() == [int(v) for i in range(5) for v in labels[i::6]]


def test_cifar_python_batch_refuses_other_objects(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    write_cifar_python(tmp_path, np.zeros((6, 3, 32, 32), np.uint8), np.zeros(6, np.int64))
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        read_cifar_batches(tmp_path)


def make_image_folder(root, bad: bool) -> None:
    for split, count in (("train", 6), ("test", 2)):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.random.default_rng(i).integers(0, 256, (10, 12, 3), dtype=np.uint8) // (c + 1)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    if bad:
        (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_image_folder_reports_and_skips_bad_images(tmp_path):
    make_image_folder(tmp_path, bad=True)
    splits = load_data(f"imagefolder:{tmp_path}", image_size=8)
    assert splits.class_names == ["cat", "dog"] and splits.input_size == (3, 8, 8)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (12, 1, 4)  # dev: 10% of 13 train files
    broken = next(i for i, p in enumerate(splits.train.paths) if p.name == "broken.jpg")
    with pytest.raises(BadImageError, match="broken.jpg.*--skip-bad-images"):
        splits.train.__getitems__([broken])
    with pytest.warns(UserWarning, match="skipped 1 bad image"):
        skipped = load_data(f"imagefolder:{tmp_path}", image_size=8, skip_bad_images=True)
    assert skipped.bad_images == 1 and len(skipped.train) + len(skipped.dev) == 12
    x, y = skipped.test.__getitems__([0, 3])
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 1]


def test_cifar10_image_folder_layout_and_augmentation(tmp_path):
    make_image_folder(tmp_path, bad=False)  # train/ and test/ of 10x12 RGB images
    splits = load_data(f"cifar10:{tmp_path}")
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (11, 1, 4) and splits.input_size == (3, 10, 12)
    labels = splits.train.labels.tolist()
    assert labels != sorted(labels)  # shuffled once (fixed), so the dev images are not all of the last class
    torch.manual_seed(0)
    crops = [splits.train.__getitems__([0])[0] for _ in range(4)]  # random crop (padding 4) + flip
    assert any(not torch.equal(crops[0], c) for c in crops[1:]) and crops[0].shape == (1, 3, 10, 12)
    assert torch.equal(splits.test.__getitems__([1])[0], splits.test.__getitems__([1])[0])
    with open(tmp_path / "train" / "dog" / "0.png", "r+b") as f:
        f.truncate(40)
    with pytest.raises(BadImageError, match="dog/0.png"):
        load_data(f"cifar10:{tmp_path}")
    with pytest.warns(UserWarning, match="skipped 1 bad image"):
        assert load_data(f"cifar10:{tmp_path}", skip_bad_images=True).bad_images == 1


def test_real_mnist_and_mnist1d(shared_data):
    arrays = read_mnist_folder(shared_data / "mnist")
    assert arrays["x_train"].shape == (60000, 1, 28, 28) and arrays["x_test"].shape == (10000, 1, 28, 28)
    # per-class counts of the official training labels (LeCun's files)
    assert torch.bincount(arrays["y_train"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    splits = load_data(f"mnist1d:{shared_data / 'mnist1d' / 'mnist1d.npz'}")
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (3600, 400, 1000)
    assert splits.input_size == (1, 40)
    x, _ = splits.train.__getitems__([0, 1])
    assert x.shape == (2, 1, 40) and x.dtype == torch.float32
