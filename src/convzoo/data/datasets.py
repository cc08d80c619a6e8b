"""In-memory data sets: the images of a split as one tensor, augmented per sample, normalized per batch.

Every convzoo data set returns whole batches from ``__getitems__`` (``DataLoader`` calls it with a list of indices)
as ``(images Tensor[B, C, *spatial] float32, labels Tensor[B] int64)``, so the loader's ``collate_fn`` is
:func:`collate_batch` (the identity). Augmentations (random, torchvision.transforms.v2) run per sample on uint8
images; normalization (deterministic) runs once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

Batch = tuple[torch.Tensor, torch.Tensor]


def collate_batch(batch: Batch) -> Batch:
    """The ``collate_fn`` of convzoo loaders: ``__getitems__`` has already built the batch."""
    return batch


class TensorImageDataset(Dataset):
    """A split held in memory: ``images`` Tensor[N, C, *spatial] (uint8 pixels, or float signals) and ``labels``.

    ``augment`` (optional, random) maps one image Tensor[C, *spatial] to an image of the output size;
    ``normalize`` maps a batch Tensor[B, C, *spatial] to float32 network inputs.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()
        self.normalize, self.augment = normalize, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[index]
        if self.augment is not None:
            images = torch.stack([self.augment(image) for image in images])
        return self.normalize(images), self.labels[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def subset(self, indices: torch.Tensor, augment: bool = True) -> TensorImageDataset:
        """The images at ``indices`` (copied), with or without this data set's augmentation."""
        return TensorImageDataset(self.images[indices], self.labels[indices], self.normalize,
                                  self.augment if augment else None)


def fixed_split(n: int, fractions: Sequence[float], seed: int = 0) -> list[torch.Tensor]:
    """Split ``range(n)`` by a fixed permutation (``seed``, independent of the training seed) into parts.

    ``fractions`` are the sizes of the parts after the first, which takes the rest; e.g. ``fixed_split(1797,
    [0.1, 0.2])`` -> (train, dev, test) index tensors of 1258, 180 and 359 items (sizes rounded to nearest).
    """
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [round(n * f) for f in fractions]
    first = n - sum(sizes)
    if first <= 0:
        raise ValueError(f"fractions {list(fractions)} leave nothing of {n} items for the first part")
    return list(torch.split(permutation, [first, *sizes]))


def select_subset(dataset: Dataset, classes: Sequence[int] | None = None, fraction: float = 1.0,
                  seed: int = 0) -> Dataset:
    """The items of ``dataset`` whose label is in ``classes``, relabelled to the label's index in ``classes``,
    then a fixed ``fraction`` of each class (rounded, at least one item of each; a permutation by ``seed``,
    independent of the training seed). ``dataset`` needs ``labels`` Tensor[N] and ``subset(indices)``
    (TensorImageDataset, ImageFolderDataset); the items keep their order and augmentation.

    E.g. ``select_subset(train, classes=[5, 6, 7, 8, 9], fraction=0.1)``: a tenth of the images of classes 5-9,
    labelled 0-4 (transfer learning with few target labels).
    """
    labels = dataset.labels
    wanted = list(range(int(labels.max()) + 1)) if classes is None else list(classes)
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for label in wanted:
        members = torch.nonzero(labels == label).flatten()
        count = max(1, round(len(members) * fraction)) if len(members) else 0
        kept.append(members[torch.randperm(len(members), generator=generator)[:count]])
    indices = torch.cat(kept).sort().values
    subset = dataset.subset(indices)
    if classes is not None:
        mapping = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
        mapping[torch.as_tensor(wanted)] = torch.arange(len(wanted))
        subset.labels = mapping[subset.labels]
    return subset
