"""Semantic segmentation data for ``--data``: a sample is ``(image Tensor[3, H, W] float in [0, 1], labels
Tensor[H, W] int64)``, the labels class indices ``0..K-1`` (0 the background) or 255 (ignored).

    --data shapes-seg                 generated (the detection ``shapes``): background, circle, rectangle, triangle
    --data seg:DIR                    a folder of images and label PNGs, one of two layouts:
        VOC:    DIR/JPEGImages/ID.jpg + DIR/SegmentationClass/ID.png (palette PNGs, VOC's 21 classes, 255 void);
                splits DIR/ImageSets/Segmentation/{train,val}.txt when present
        plain:  DIR/images/NAME.* + DIR/masks/NAME.png (integer PNGs); optional DIR/classes.txt (one name per line,
                else K = the largest label + 1); splits DIR/train/ and DIR/val/ (each images/ + masks/) when present
    --data coco-seg:ANNOTATIONS.json:IMAGE_DIR   COCO instances painted into a label map (category order, 0 the
                background; crowd regions 255)

Without given splits, a fixed tenth of the images (a permutation independent of ``--seed``) is the dev split. Only
``shapes-seg`` has a test split. ``train_size``/``val_size`` take the first N of each split (0: all).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from convzoo.data.datasets import fixed_split
from convzoo.data.detection_files import CocoDetection, read_rgb
from convzoo.data.detection_shapes import CLASSES as SHAPES_CLASSES
from convzoo.data.detection_shapes import ShapesDataset
from convzoo.data.segmentation_files import VOC_CLASSES, find_image, image_size_of, read_label_map

SEGMENTATION_DATA = ("shapes-seg", "seg", "coco-seg")


def instances_to_labels(masks: torch.Tensor, labels: torch.Tensor, size: tuple[int, int],
                        crowd: torch.Tensor | None = None, ignore_index: int = 255) -> torch.Tensor:
    """Instance masks Tensor[G, H, W] (0/1) with ``labels`` Tensor[G] -> a label map Tensor[H, W] int64 (0 where no
    instance is). Larger instances are painted first, so a smaller one on top of another stays visible; crowd
    regions (``crowd`` Tensor[G] bool) become ``ignore_index`` wherever no other instance covers them."""
    out = torch.zeros(size, dtype=torch.int64)
    if len(masks) == 0:
        return out
    crowd = torch.zeros(len(masks), dtype=torch.bool) if crowd is None else crowd.bool()
    for g in crowd.nonzero().flatten().tolist():
        out[masks[g].bool()] = ignore_index
    areas = masks.flatten(1).sum(1)
    for g in torch.argsort(areas, descending=True).tolist():
        if not crowd[g]:
            out[masks[g].bool()] = int(labels[g])
    return out


class ShapesSegmentation(Dataset):
    """``shapes-seg``: the detection ``ShapesDataset`` with its instance masks as a label map (class per pixel).
    Samples are kept once generated (a pure function of seed and index; 64 px: 60 kB each)."""

    classes = SHAPES_CLASSES

    def __init__(self, length: int, *, size: int = 64, seed: int = 0) -> None:
        # shapes scale with the image (the detection set's radii 10..26 are for 128 px), but keep a radius of 8 px
        # from 64 px up: a triangle 5 px in radius (its side 9 px) is barely told from a circle at that resolution
        scale = size / 128
        minimum = max(10 * scale, min(8.0, size / 8), 3.0)
        self.shapes = ShapesDataset(length, size=size, seed=seed, min_radius=minimum,
                                    max_radius=max(26 * scale, minimum + 1))
        self._samples: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index not in self._samples:
            image, target = self.shapes[index]
            self._samples[index] = image, instances_to_labels(target["masks"], target["labels"],
                                                              tuple(image.shape[-2:]))
        return self._samples[index]


class SegmentationFolder(Dataset):
    """Image and mask file pairs; ``palette`` masks are VOC's (colours checked), else integer PNGs."""

    def __init__(self, pairs: list[tuple[Path, Path]], classes: list[str], *, palette: bool,
                 ignore_index: int = 255) -> None:
        self.pairs, self.classes, self.palette, self.ignore_index = pairs, list(classes), palette, ignore_index
        for image_path, mask_path in pairs:  # headers only: a size mismatch or a missing file fails here, at once
            if not mask_path.is_file():
                raise FileNotFoundError(f"missing mask file {mask_path} for image {image_path}")
            image_size, mask_size = image_size_of(image_path), image_size_of(mask_path)
            if image_size != mask_size:
                raise ValueError(f"{mask_path}: mask size {mask_size[0]}x{mask_size[1]} differs from its image "
                                 f"{image_path} ({image_size[0]}x{image_size[1]}, width x height)")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        labels = read_label_map(mask_path, len(self.classes), self.ignore_index, palette=self.palette)
        return read_rgb(image_path), labels


class CocoSegmentation(Dataset):
    """COCO instance annotations as label maps (:func:`instances_to_labels`); classes: background + categories."""

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, indices: list[int] | None = None,
                 ignore_index: int = 255) -> None:
        self.coco = CocoDetection(annotation_file, image_dir, masks=True, crowd_as_targets=True, indices=indices)
        self.classes, self.ignore_index = list(self.coco.classes), ignore_index

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.coco[index]
        labels = instances_to_labels(target["masks"], target["labels"], tuple(image.shape[-2:]),
                                     target["iscrowd"].bool(), self.ignore_index)
        return image, labels


def _first(indices: list[int], size: int) -> list[int]:
    return indices[:size] if size > 0 else indices


def _held_out(count: int, split: str) -> list[int]:
    """The fixed split of ``count`` items: a tenth (at least one) for dev, the rest for training, each sorted."""
    if count < 2:
        raise ValueError(f"{count} image(s): too few to hold out a dev split (give train/ and val/ folders)")
    train, dev = fixed_split(count, [max(round(count * 0.1), 1) / count])
    return sorted((train if split == "train" else dev).tolist())


def _voc_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    lists = root / "ImageSets" / "Segmentation"
    masks = root / "SegmentationClass"
    if (lists / "train.txt").is_file() and (lists / "val.txt").is_file():
        ids = [line.strip() for line in (lists / f"{'train' if split == 'train' else 'val'}.txt").read_text()
               .splitlines() if line.strip()]
    else:
        ids = sorted(path.stem for path in masks.glob("*.png"))
        ids = [ids[i] for i in _held_out(len(ids), split)]
    return [(find_image(root / "JPEGImages", stem), masks / f"{stem}.png") for stem in ids]


def _plain_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    folder = root / ("train" if split == "train" else "val")
    given = (root / "train" / "images").is_dir() and (root / "val" / "images").is_dir()
    folder = folder if given else root
    if not (folder / "images").is_dir():
        raise FileNotFoundError(f"--data seg:{root}: expected JPEGImages/ + SegmentationClass/ (VOC) or images/ + "
                                "masks/ (or train/ and val/ with those)")
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in
                    (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"))
    pairs = [(image, folder / "masks" / f"{image.stem}.png") for image in images]
    return pairs if given else [pairs[i] for i in _held_out(len(pairs), split)]


def _plain_classes(root: Path, ignore_index: int) -> list[str]:
    names = root / "classes.txt"
    if names.is_file():
        return [line.strip() for line in names.read_text().splitlines() if line.strip()]
    largest = 0  # no names: K = the largest label in every mask + 1
    for mask in sorted(root.rglob("masks/*.png")):
        labels = read_label_map(mask, None, ignore_index)
        valid = labels[labels != ignore_index]
        largest = max(largest, int(valid.max()) if valid.numel() else 0)
    return [str(i) for i in range(largest + 1)]


def load_segmentation_data(spec: str, split: str, size: int = 0, image_size: int | None = None, seed: int = 0,
                           ignore_index: int = 255) -> Dataset | None:
    """The data set of ``split`` ("train", "dev", "test") of ``--data spec`` (module docstring), its first ``size``
    samples (0: all; ``shapes-seg`` generates ``size``, 1000 if 0); None where the data has no such split."""
    kind, _, rest = spec.partition(":")
    if kind not in SEGMENTATION_DATA:
        raise ValueError(f"unknown segmentation data {spec!r}; expected shapes-seg, seg:DIR or "
                         "coco-seg:ANNOTATIONS.json:IMAGE_DIR")
    if kind == "shapes-seg":
        if rest:
            raise ValueError(f"--data {spec}: shapes-seg takes no path (its size: --image-size, --train-size)")
        offset = {"train": 0, "dev": 1, "test": 2}[split]
        return ShapesSegmentation(size or 1000, size=image_size or 64, seed=seed + offset)
    if split == "test":
        return None
    if kind == "coco-seg":
        annotations, _, images = rest.partition(":")
        if not annotations or not images:
            raise ValueError(f"--data {spec!r}: expected coco-seg:ANNOTATIONS.json:IMAGE_DIR")
        for path in (annotations, images):
            if not Path(path).exists():
                raise FileNotFoundError(f"--data {spec}: no such file or folder {path}")
        count = len(CocoDetection(annotations, images, masks=False))
        return CocoSegmentation(annotations, images, _first(_held_out(count, split), size), ignore_index)
    root = Path(rest).expanduser()
    if not rest or not root.is_dir():
        raise FileNotFoundError(f"--data {spec}: no such folder {rest!r}")
    if (root / "SegmentationClass").is_dir():
        pairs, classes, palette = _voc_pairs(root, split), list(VOC_CLASSES), True
    else:
        pairs, classes, palette = _plain_pairs(root, split), _plain_classes(root, ignore_index), False
    if not pairs:
        raise ValueError(f"--data {spec}: no images in the {split} split")
    return SegmentationFolder(_first(pairs, size), classes, palette=palette, ignore_index=ignore_index)

