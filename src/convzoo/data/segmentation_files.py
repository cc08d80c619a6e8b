"""Label maps read from files: PASCAL VOC's palette PNGs, plain integer PNGs, and the VOC palette itself.

A label map is Tensor[H, W] int64: class indices ``0..K-1`` and ``ignore_index`` (255) for pixels that count
nowhere (VOC's void borders). Every reader checks its input and raises one line naming the file:

- a mask whose size differs from its image,
- a label value beyond the class count that is not the ignore value,
- a palette PNG whose palette gives a used index another colour than VOC's, or an RGB mask with a colour that is
  not in VOC's palette,
- a missing mask file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def voc_palette(count: int = 256) -> np.ndarray:
    """uint8[count, 3]: the PASCAL VOC devkit's colour of each label (``VOClabelcolormap.m``): the bits of the label,
    three at a time, become the high bits of red, green and blue. 0 is black, 1 (aeroplane) (128, 0, 0), 255 (void)
    (224, 224, 192)."""
    colours = np.zeros((count, 3), dtype=np.uint8)
    for label in range(count):
        value, red, green, blue = label, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colours[label] = (red, green, blue)
    return colours


VOC_PALETTE = voc_palette()


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header (no decoding)."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file {path}") from None
    except OSError as error:
        raise ValueError(f"cannot read image {path}: {error}") from None


def read_label_map(path: Path, num_classes: int | None, ignore_index: int = 255, palette: bool = False
                   ) -> torch.Tensor:
    """A mask PNG -> Tensor[H, W] int64.

    ``palette=True`` (VOC's ``SegmentationClass``): a palette PNG's indices are the labels, and each index used must
    have VOC's colour in the file's palette; an RGB PNG is mapped colour -> label through VOC's palette. Otherwise
    (plain ``masks/``): a grayscale, 16-bit or palette PNG whose values are the labels. Labels must be below
    ``num_classes`` (when given) or equal ``ignore_index``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"missing mask file {path}")
    try:
        with Image.open(path) as image:
            mode, array = image.mode, np.asarray(image)
            colours = image.getpalette() if image.mode == "P" else None
    except OSError as error:
        raise ValueError(f"cannot read mask {path}: {error}") from None
    if mode in ("RGB", "RGBA"):
        if not palette:
            raise ValueError(f"{path}: an RGB mask; masks/ holds integer PNGs (grayscale or palette) whose values are "
                             "the labels (colour masks: the VOC layout, SegmentationClass/)")
        labels = _colours_to_labels(array[..., :3], path, num_classes, ignore_index)
    elif mode in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        labels = array.astype(np.int64)
        if palette and mode == "P":
            _check_palette(labels, colours, path)
    else:
        raise ValueError(f"{path}: mask mode {mode} is not a label PNG (grayscale, 16-bit, palette or RGB)")
    if labels.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel label map, got shape {list(labels.shape)}")
    labels = torch.from_numpy(np.ascontiguousarray(labels))
    check_labels(labels, num_classes, ignore_index, path)
    return labels


def check_labels(labels: torch.Tensor, num_classes: int | None, ignore_index: int, where) -> None:
    """Raise one line when ``labels`` holds a value outside ``0..num_classes-1`` that is not ``ignore_index``."""
    if num_classes is None:
        return
    bad = (labels < 0) | ((labels >= num_classes) & (labels != ignore_index))
    if bad.any():
        value = int(labels[bad][0])
        raise ValueError(f"{where}: label value {value} is beyond the {num_classes} classes (0..{num_classes - 1}) "
                         f"and is not the ignore value {ignore_index}")


def _check_palette(labels: np.ndarray, colours: list[int] | None, path: Path) -> None:
    table = np.asarray(colours or [], dtype=np.int64).reshape(-1, 3)
    for index in np.unique(labels):
        colour = tuple(int(c) for c in table[index]) if index < len(table) else None
        if colour != tuple(int(c) for c in VOC_PALETTE[index]):
            raise ValueError(f"{path}: palette PNG with unknown colour {colour} for index {index}: VOC's palette "
                             f"gives label {index} the colour {tuple(int(c) for c in VOC_PALETTE[index])}")


def _colours_to_labels(rgb: np.ndarray, path: Path, num_classes: int | None, ignore_index: int) -> np.ndarray:
    count = num_classes or len(VOC_CLASSES)
    known = {int(r) << 16 | int(g) << 8 | int(b): label for label, (r, g, b) in enumerate(VOC_PALETTE[:count])}
    void = VOC_PALETTE[ignore_index] if 0 <= ignore_index < 256 else None
    if void is not None:
        known[int(void[0]) << 16 | int(void[1]) << 8 | int(void[2])] = ignore_index
    codes = rgb[..., 0].astype(np.int64) << 16 | rgb[..., 1].astype(np.int64) << 8 | rgb[..., 2].astype(np.int64)
    unique, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(code) for code in unique if int(code) not in known]
    if unknown:
        code = unknown[0]
        y, x = (int(v[0]) for v in np.nonzero(codes == code))
        raise ValueError(f"{path}: unknown colour {(code >> 16, code >> 8 & 255, code & 255)} at pixel (x={x}, y={y}); "
                         f"a VOC colour mask uses the palette of its {count} classes and the void colour")
    return np.asarray([known[int(code)] for code in unique], dtype=np.int64)[inverse].reshape(codes.shape)


def write_palette_png(labels: torch.Tensor, path: Path) -> None:
    """Save Tensor[H, W] labels (0..255) as a palette PNG with VOC's colours (what ``read_label_map`` reads)."""
    array = labels.to(torch.uint8).cpu().numpy()
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    image.putpalette(VOC_PALETTE.flatten().tolist())
    image.save(path)


def find_image(folder: Path, stem: str) -> Path:
    """The image file ``folder/stem.*`` (the first of IMAGE_SUFFIXES that exists)."""
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no image {folder / stem}.* (expected one of {', '.join(IMAGE_SUFFIXES)})")
