"""Folders of image files in the ImageFolder layout (``root/<class>/<file>``), with bad-image reporting.

A file that cannot be decoded raises :class:`BadImageError` naming its path; with ``skip_bad_images`` the folder is
decoded once up front, every bad file is reported and counted, and the data set leaves it out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from convzoo.data.datasets import Batch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class BadImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def list_image_folder(root: str | Path) -> tuple[list[Path], torch.Tensor, list[str]]:
    """The image files under ``root/<class>/`` (sorted), their class indices and the sorted class names."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"{root} has no class subfolders (expected root/<class>/<image>)")
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the class folder {root / name}; "
                                    "every class folder needs images (remove empty ones)")
        paths += files
        labels += [index] * len(files)
    return paths, torch.tensor(labels, dtype=torch.long), classes


def read_image(path: Path, mode: str = "RGB") -> torch.Tensor:
    """The image at ``path`` as uint8 Tensor[C, H, W] (``mode`` "RGB" or "L" = grayscale, decoded by Pillow);
    a file that cannot be decoded raises BadImageError."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(mode))
    except (UnidentifiedImageError, ValueError, OSError) as error:
        raise BadImageError(f"cannot decode image {path}: {error}; pass --skip-bad-images to skip such files") \
            from None
    # [H, W] or [H, W, C] -> [C, H, W]
    return torch.from_numpy(pixels.copy()).reshape(*pixels.shape[:2], -1).permute(2, 0, 1).contiguous()


def drop_bad_images(paths: Sequence[Path], labels: torch.Tensor, mode: str = "RGB",
                    loaded: list[torch.Tensor] | None = None) -> tuple[list[Path], torch.Tensor, list[Path]]:
    """Decode every file once; return the good paths and labels and the bad paths (each reported by a warning).

    When ``loaded`` is a list, the decoded good images are appended to it (saves decoding twice).
    """
    good, keep, bad = [], [], []
    for i, path in enumerate(paths):
        try:
            image = read_image(path, mode)
        except BadImageError as error:
            warnings.warn(f"skipping {error.args[0].split(';')[0]}", stacklevel=2)
            bad.append(path)
            continue
        good.append(path)
        keep.append(i)
        if loaded is not None:
            loaded.append(image)
    if bad:
        warnings.warn(f"skipped {len(bad)} bad image(s) of {len(paths)}", stacklevel=2)
    return good, labels[torch.tensor(keep, dtype=torch.long)], bad


def load_image_folder_tensor(root: str | Path, skip_bad_images: bool = False,
                             mode: str = "RGB") -> tuple[torch.Tensor, torch.Tensor, list[str], int]:
    """Decode a folder of equally sized images (e.g. CIFAR-10 as JPEGs).

    Returns uint8 Tensor[N, C, H, W], labels Tensor[N], the class names and the number of bad files skipped.
    """
    paths, labels, classes = list_image_folder(root)
    bad: list[Path] = []
    if skip_bad_images:
        images: list[torch.Tensor] = []
        _, labels, bad = drop_bad_images(paths, labels, mode, loaded=images)
        if not images:
            raise ValueError(f"no image under {root} can be decoded ({len(bad)} bad files skipped)")
    else:
        images = [read_image(path, mode) for path in paths]
    sizes = {tuple(image.shape) for image in images}
    if len(sizes) != 1:
        raise ValueError(f"images under {root} differ in size ({sorted(sizes)[:3]} ...); use imagefolder: instead")
    return torch.stack(images), labels, classes, len(bad)


class ImageFolderDataset(Dataset):
    """Images decoded lazily from their files: ``transform`` maps uint8 Tensor[C, H, W] to float Tensor[C, S, S]."""

    def __init__(self, paths: Sequence[Path], labels: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
                 mode: str = "RGB") -> None:
        self.paths, self.labels, self.transform, self.mode = list(paths), labels.long(), transform, mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        images = [self.transform(read_image(self.paths[i], self.mode)) for i in indices]
        return torch.stack(images), self.labels[torch.as_tensor(indices, dtype=torch.long)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def subset(self, indices: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
               ) -> ImageFolderDataset:
        """The files at ``indices``, with ``transform`` (default: this data set's)."""
        return ImageFolderDataset([self.paths[i] for i in indices.tolist()], self.labels[indices],
                                  transform or self.transform, self.mode)
