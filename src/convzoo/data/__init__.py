"""Data sets for ``--data``: ``digits`` (embedded), ``mnist:PATH``, ``fashion-mnist[:PATH]``, ``cifar10:PATH``,
``imagefolder:PATH`` and ``mnist1d:PATH``, each split into train, dev and test.

    splits = load_data("digits")                 # scikit-learn's bundled 8x8 digits: no download
    splits = load_data("mnist:/data/mnist")      # the four IDX files (.gz or raw)
    splits.train[[0, 1, 2]]                      # a batch: (images Tensor[3, 1, 8, 8] float32, labels Tensor[3])

Dev splits: MNIST, Fashion-MNIST and CIFAR-10 hold out the last 5000 training images (the course's layout; a tenth
of a smaller set);
digits, MNIST-1D and an ImageFolder without val/ use a fixed permutation (the same for every ``--seed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.datasets import TensorImageDataset, collate_batch, fixed_split
from convzoo.data.formats import check_labels, read_cifar_batches, read_mnist_folder, read_npz
from convzoo.data.imagefolder import (
    BadImageError,
    ImageFolderDataset,
    drop_bad_images,
    list_image_folder,
    load_image_folder_tensor,
)
from convzoo.data.transforms import Standardize, augmentation, normalize_images, photo_transforms

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "imagefolder", "mnist1d")
# Default augmentation and padding per data set (``--augment`` switches it on or off).
AUGMENTATION = {"digits": ("none", 0), "mnist": ("crop", 2), "fashion-mnist": ("crop-flip", 2),
                "cifar10": ("crop-flip", 4), "mnist1d": ("none", 0), "imagefolder": ("resized-crop-flip", 0)}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


@dataclass
class DataSplits:
    """The three splits of a data set and what a model needs to know about it.

    ``input_size`` is (C, *spatial) of the network inputs, e.g. (1, 8, 8) for digits, (1, 40) for MNIST-1D.
    ``preprocess`` is the JSON-able recipe that turns a raw input into a network input as the test split does
    (see :func:`convzoo.data.transforms.preprocessor`), so that a trained run can predict on files without its data.
    """

    name: str
    train: Dataset
    dev: Dataset
    test: Dataset
    num_classes: int
    input_size: tuple[int, ...]
    class_names: list[str] = field(default_factory=list)
    bad_images: int = 0
    preprocess: dict = field(default_factory=dict)


def parse_data_spec(spec: str) -> tuple[str, Path | None]:
    """``"name:PATH"`` -> (name, Path) and ``"name"`` -> (name, None), checking the name."""
    name, _, path = spec.partition(":")
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r} in --data {spec!r}; expected one of {', '.join(DATASETS)}")
    return name, Path(path).expanduser() if path else None


def _need_path(name: str, path: Path | None) -> Path:
    if path is None:
        raise ValueError(f"--data {name} needs a folder: --data {name}:PATH")
    if not path.exists():
        raise FileNotFoundError(f"--data {name}:{path}: no such file or folder")
    if name != "mnist1d" and not path.is_dir():
        raise NotADirectoryError(f"--data {name}:{path}: not a folder")
    return path


def _tensor_splits(name: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                   y_test: torch.Tensor, dev: float, augment: bool | None, image_size: int | None,
                   class_names: list[str]) -> DataSplits:
    """Train/dev/test TensorImageDatasets from uint8 images; ``dev`` is a count (the last ones) or a fraction."""
    if isinstance(dev, float):
        train_index, dev_index = fixed_split(len(x_train), [dev])
    else:  # the last ``dev`` images (a tenth of a smaller set)
        dev = min(dev, len(x_train) // 10)
        train_index, dev_index = torch.arange(len(x_train) - dev), torch.arange(len(x_train) - dev, len(x_train))
    train_pixels = x_train[train_index].double().div_(255)
    mean, std = train_pixels.mean(dim=(0, 2, 3)).tolist(), train_pixels.std(dim=(0, 2, 3)).tolist()
    spatial = (image_size, image_size) if image_size else tuple(x_train.shape[2:])
    kind, padding = AUGMENTATION[name]
    augment_fn = augmentation(kind if augment is not False else "none", tuple(x_train.shape[2:]), padding)
    full = TensorImageDataset(x_train, y_train, normalize_images(mean, std, image_size), augment_fn)
    test = TensorImageDataset(x_test, y_test, normalize_images(mean, std, image_size))
    preprocess = {"kind": "tensor", "size": list(spatial), "mean": mean, "std": std}
    return DataSplits(name, full.subset(train_index), full.subset(dev_index, augment=False), test,
                      len(class_names), (x_train.shape[1], *spatial), class_names, preprocess=preprocess)


def _digits(augment: bool | None, image_size: int | None) -> DataSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 8x8 images with values 0..16 -> uint8 0..255.
    images = torch.from_numpy(digits.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    rest, test = fixed_split(len(images), [0.2])
    return _tensor_splits("digits", images[rest], labels[rest], images[test], labels[test], 0.1, augment,
                          image_size, [str(i) for i in range(10)])


def _mnist1d_arrays(path: Path) -> tuple[torch.Tensor, ...]:
    """x [N, 1, L] float, y [N] int64, x_test, y_test of an MNIST-1D archive, checked."""
    arrays = read_npz(path)
    missing = [key for key in ("x", "y", "x_test", "y_test") if key not in arrays]
    if missing:
        raise ValueError(f"{path}: an MNIST-1D archive holds arrays 'x', 'y', 'x_test', 'y_test'; missing "
                         f"{', '.join(repr(m) for m in missing)} (found {', '.join(map(repr, arrays)) or 'none'})")
    tensors = []
    for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
        x, y = arrays[x_key], arrays[y_key]
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{path}: {x_key!r} must be [N, L] signals (numbers), got {x.dtype} {list(x.shape)}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{path}: {y_key!r} must be [N] integer labels, got {y.dtype} {list(y.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{path}: {x_key!r} holds {len(x)} signals but {y_key!r} {len(y)} labels")
        labels = torch.from_numpy(y).long()
        check_labels(labels, 10, f"{path} {y_key!r}")
        tensors += [torch.from_numpy(x).float().unsqueeze(1), labels]
    if tensors[0].shape[-1] != tensors[2].shape[-1]:
        raise ValueError(f"{path}: 'x' signals have length {tensors[0].shape[-1]}, 'x_test' {tensors[2].shape[-1]}")
    return tuple(tensors)


def _mnist1d(path: Path) -> DataSplits:
    x, y, x_test, y_test = _mnist1d_arrays(path if path.is_file() else path / "mnist1d.npz")
    train_index, dev_index = fixed_split(len(x), [0.1])
    normalize = Standardize(x[train_index].mean().item(), x[train_index].std().item())
    full = TensorImageDataset(x, y, normalize)
    preprocess = {"kind": "signal", "size": [x.shape[-1]], "mean": normalize.mean, "std": normalize.std}
    return DataSplits("mnist1d", full.subset(train_index), full.subset(dev_index), TensorImageDataset(
        x_test, y_test.long(), normalize), 10, (1, x.shape[-1]), [str(i) for i in range(10)], preprocess=preprocess)


def _imagefolder(path: Path, augment: bool | None, image_size: int | None, skip_bad_images: bool) -> DataSplits:
    """``path/train`` with ``path/val`` (or ``dev``) and/or ``path/test``; or class folders split 70/10/20."""
    size = image_size or 224
    train_tf, eval_tf = photo_transforms(size, augment is not False)
    preprocess = {"kind": "photo", "size": [size, size]}

    def listing(root: Path) -> tuple[list[Path], torch.Tensor, list[str], int]:
        paths, labels, classes = list_image_folder(root)
        bad = []
        if skip_bad_images:
            paths, labels, bad = drop_bad_images(paths, labels)
            if not paths:
                raise ValueError(f"no image under {root} can be decoded ({len(bad)} bad files skipped)")
        return paths, labels, classes, len(bad)

    folders = {name: path / name for name in ("train", "val", "dev", "test") if (path / name).is_dir()}
    if "train" not in folders:
        paths, labels, classes, bad = listing(path)
        full = ImageFolderDataset(paths, labels, train_tf)
        train, dev, test = fixed_split(len(paths), [0.1, 0.2])
        return DataSplits("imagefolder", full.subset(train), full.subset(dev, eval_tf), full.subset(test, eval_tf),
                          len(classes), (3, size, size), classes, bad, preprocess)
    paths, labels, classes, bad = listing(folders["train"])
    full = ImageFolderDataset(paths, labels, train_tf)
    held_out = [listing(folders[name]) for name in ("val", "dev", "test") if name in folders]
    for _, _, other_classes, other_bad in held_out:
        if other_classes != classes:
            raise ValueError(f"class folders of {path} differ between splits: {classes} vs {other_classes}")
        bad += other_bad
    if len(held_out) == 2:  # val/dev and test
        dev = ImageFolderDataset(*held_out[0][:2], eval_tf)
        test = ImageFolderDataset(*held_out[1][:2], eval_tf)
    elif "test" in folders:  # carve dev from train
        train_index, dev_index = fixed_split(len(paths), [0.1])
        full, dev = full.subset(train_index), full.subset(dev_index, eval_tf)
        test = ImageFolderDataset(*held_out[0][:2], eval_tf)
    elif held_out:  # only val: it serves as both dev and test (the ImageNet practice)
        dev = test = ImageFolderDataset(*held_out[0][:2], eval_tf)
    else:
        raise FileNotFoundError(f"{path}/train has no val/, dev/ or test/ beside it")
    return DataSplits("imagefolder", full, dev, test, len(classes), (3, size, size), classes, bad, preprocess)


def load_data(spec: str = "digits", augment: bool | None = None, image_size: int | None = None,
              skip_bad_images: bool = False) -> DataSplits:
    """The splits of ``--data spec``; ``augment`` None = the data set's default, ``image_size`` resizes (square)."""
    name, path = parse_data_spec(spec)
    if name == "digits":
        return _digits(augment, image_size)
    if name == "mnist1d":
        return _mnist1d(_need_path(name, path))
    if name == "imagefolder":
        return _imagefolder(_need_path(name, path), augment, image_size, skip_bad_images)
    if name in ("mnist", "fashion-mnist"):
        if path is None and name == "fashion-mnist" and FASHION_MNIST_DEBIAN.is_dir():
            path = FASHION_MNIST_DEBIAN
        arrays = read_mnist_folder(_need_path(name, path))
        classes = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
        return _tensor_splits(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], 5000,
                              augment, image_size, classes)
    path = _need_path(name, path)
    arrays = read_cifar_batches(path)
    bad, classes = 0, CIFAR10_CLASSES
    if arrays is None and not (path / "train").is_dir():
        raise FileNotFoundError(f"--data cifar10:{path}: no CIFAR-10 batches (data_batch_1 ... data_batch_5, "
                                "test_batch, .bin or not, here or in cifar-10-batches-py/) and no train/ and test/ "
                                "image folders")
    if arrays is None:  # an ImageFolder of the images: train/ and test/
        x_train, y_train, classes, bad_train = load_image_folder_tensor(path / "train", skip_bad_images)
        x_test, y_test, _, bad_test = load_image_folder_tensor(path / "test", skip_bad_images)
        # Files come sorted by class: a fixed shuffle, so that the last 5000 (dev) are not all trucks.
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
        x_train, y_train = x_train[order], y_train[order]
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        bad = bad_train + bad_test
    splits = _tensor_splits("cifar10", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                            5000, augment, image_size, classes)
    splits.bad_images = bad
    return splits


__all__ = [
    "AUGMENTATION",
    "DATASETS",
    "BadImageError",
    "DataSplits",
    "ImageFolderDataset",
    "TensorImageDataset",
    "collate_batch",
    "load_data",
    "parse_data_spec",
]
