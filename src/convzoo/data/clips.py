"""Moving-MNIST-style video clips (``--data moving-mnist[:MNIST_DIR]``): one handwritten digit gliding across a
black canvas, labelled by the digit and the direction of its motion; and the reader of a user's clip files for
``convzoo predict``.

A clip is uint8 Tensor[1, T, H, W] (one channel, T frames, H = W = the canvas side; 16 frames of 64 x 64 by
default, ``--frames`` and ``--image-size`` change them). Its digit, resized to 28/64 of the canvas side (MNIST's
28 px on the 64 px canvas of Srivastava et al. 2015, the Moving MNIST paper), moves in a straight line at a
constant speed of 1 to ``(H - digit) / (T - 1)`` px a frame (positions rounded to whole pixels) in one of
``DIRECTIONS``, starting where it stays whole on the canvas for every frame (Moving MNIST's digits bounce off the
edges; here they never reach one, so the direction is one label for the whole clip). The label is
``digit * 4 + direction``: 40 classes named ``"3-left"`` etc. (``CLIP_CLASSES``).

Clips are generated on the fly, deterministically per (split, index): the direction is ``index % 4`` (balanced),
the digit, start and speed come from ``numpy.random.default_rng((seed, index))``. A batch of 16 clips of
16 x 64 x 64 takes about 8 ms of CPU, 0.5% of a training step of R(2+1)D-18 at ``--width 8`` (measured by
``benchmarks/bench_clip_loading.py``, docs/volumes-video.md). The digits of each split are disjoint: MNIST's
training images without their last 5000 (train), those 5000 (dev) and MNIST's test images (test), so that test
digits are unseen; without a path, scikit-learn's bundled 8x8 digits (split 70/10/20 by a fixed permutation)
stand in for MNIST. ``CLIP_COUNTS`` clips per split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from convzoo.data.datasets import Batch, fixed_split
from convzoo.data.imagefolder import IMAGE_SUFFIXES, BadImageError, read_image
from convzoo.data.transforms import Standardize
from convzoo.data.voxels import read_npy

DIRECTIONS = ("right", "left", "down", "up")
# (dy, dx) of a unit step in each direction, rows growing downwards
STEPS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
CLIP_CLASSES = [f"{digit}-{direction}" for digit in range(10) for direction in DIRECTIONS]
FRAMES, CANVAS = 16, 64
DIGIT_FRACTION = 28 / 64  # MNIST's 28 px digits on Moving MNIST's 64 px canvas
CLIP_COUNTS = {"train": 20000, "dev": 1000, "test": 2000}
SPLIT_SEEDS = {"train": 21, "dev": 22, "test": 23}
STATISTICS_CLIPS = 256  # training clips whose pixels give the normalization's mean and std


def digit_size(canvas: int) -> int:
    """The side of a digit on a canvas of side ``canvas``: 28 on 64."""
    return max(1, round(canvas * DIGIT_FRACTION))


def check_clip_shape(frames: int, canvas: int) -> None:
    """A ValueError naming --frames and --image-size unless a digit moving 1 px a frame stays on the canvas."""
    if frames < 1 or canvas < 8:
        raise ValueError(f"--frames must be at least 1 and --image-size at least 8 for moving-mnist clips, got "
                         f"{frames} frames of {canvas} x {canvas}")
    room = canvas - digit_size(canvas)
    if frames - 1 > room:
        raise ValueError(f"--frames {frames} with --image-size {canvas}: a {digit_size(canvas)} px digit moving at "
                         f"least 1 px a frame leaves the canvas; at most {room + 1} frames at this size")


def render_clip(digit: np.ndarray, direction: int, start: tuple[float, float], speed: float, frames: int,
                canvas: int) -> np.ndarray:
    """Uint8[frames, canvas, canvas]: ``digit`` (uint8[d, d]) pasted at ``start + t * speed * step`` (top-left
    corner, (row, column), rounded) in frame t, where step is the unit step of ``DIRECTIONS[direction]``.
    The caller keeps every position inside the canvas (``clip_motion``)."""
    d = digit.shape[0]
    dy, dx = STEPS[DIRECTIONS[direction]]
    clip = np.zeros((frames, canvas, canvas), dtype=np.uint8)
    for t in range(frames):
        y, x = round(start[0] + dy * speed * t), round(start[1] + dx * speed * t)
        clip[t, y:y + d, x:x + d] = digit
    return clip


def clip_motion(rng: np.random.Generator, direction: int, frames: int, canvas: int) -> tuple[tuple[float, float],
                                                                                             float]:
    """(start (row, column), speed in px a frame) of a digit moving in ``DIRECTIONS[direction]`` that stays whole
    on the canvas: speed uniform in [1, room / (T - 1)], the start uniform where the path fits (room = canvas -
    digit side)."""
    room = canvas - digit_size(canvas)
    speed = rng.uniform(1.0, room / (frames - 1)) if frames > 1 else 1.0
    travel = speed * (frames - 1)
    along, across = rng.uniform(0, room - travel), rng.uniform(0, room)
    dy, dx = STEPS[DIRECTIONS[direction]]
    if dy + dx < 0:  # left and up start at the far side
        along = room - along
    return ((along, across) if dy else (across, along)), speed


class MovingDigitClips(Dataset):
    """``count`` clips of the digits ``digits`` (uint8 Tensor[N, d, d], d = ``digit_size(canvas)``) with their
    ``digit_labels``; item i -> (clip float32 Tensor[1, frames, canvas, canvas] normalized, label
    ``digit * 4 + i % 4``), the same for every epoch and process (seeded by (``seed``, i))."""

    def __init__(self, digits: torch.Tensor, digit_labels: torch.Tensor, count: int, seed: int, frames: int,
                 canvas: int, normalize: Standardize | None = None) -> None:
        if len(digits) == 0 or digits.shape[-1] != digit_size(canvas):
            raise ValueError(f"MovingDigitClips needs digits of {digit_size(canvas)} px, got {list(digits.shape)}")
        self.digits, self.digit_labels = digits.numpy(), digit_labels.numpy()
        self.count, self.seed, self.frames, self.canvas = count, seed, frames, canvas
        self.normalize = normalize or Standardize(0.0, 255.0)

    def __len__(self) -> int:
        return self.count

    def clip(self, index: int) -> tuple[np.ndarray, int]:
        """The raw clip uint8[frames, canvas, canvas] and its label."""
        rng = np.random.default_rng((self.seed, index))
        which, direction = int(rng.integers(len(self.digits))), index % len(DIRECTIONS)
        start, speed = clip_motion(rng, direction, self.frames, self.canvas)
        clip = render_clip(self.digits[which], direction, start, speed, self.frames, self.canvas)
        return clip, int(self.digit_labels[which]) * len(DIRECTIONS) + direction

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        clips, labels = zip(*(self.clip(int(i)) for i in indices))
        # (B, T, H, W) -> (B, 1, T, H, W)
        return self.normalize(torch.from_numpy(np.stack(clips)).unsqueeze(1)), torch.tensor(labels)

    def __getitem__(self, index: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One clip (Tensor[1, T, H, W], label), or a batch for a list of indices."""
        if isinstance(index, Sequence):
            return self.__getitems__(index)
        clips, labels = self.__getitems__([index])
        return clips[0], labels[0]


def resize_digits(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 Tensor[N, 1, h, w] -> uint8 Tensor[N, size, size] (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images[:, 0].contiguous()
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[:, 0].round().clamp_(0, 255).to(torch.uint8)


def digit_splits(path: Path | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The digits of each split, uint8 Tensor[N, 1, h, w] and labels: MNIST's (``path``, IDX files) or, without a
    path, scikit-learn's 8x8 digits (values 0..16 scaled to 0..255)."""
    if path is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
        labels = torch.from_numpy(digits.target).long()
        train, dev, test = fixed_split(len(images), [0.1, 0.2])
        return {name: (images[index], labels[index]) for name, index in zip(("train", "dev", "test"),
                                                                            (train, dev, test))}
    from convzoo.data.formats import read_mnist_folder

    arrays = read_mnist_folder(path)
    dev = min(5000, len(arrays["x_train"]) // 10)
    x, y = arrays["x_train"], arrays["y_train"]
    return {"train": (x[:-dev], y[:-dev]), "dev": (x[-dev:], y[-dev:]), "test": (arrays["x_test"], arrays["y_test"])}


def clip_splits(path: Path | None, frames: int = FRAMES, canvas: int = CANVAS,
                counts: dict[str, int] | None = None) -> tuple[dict[str, MovingDigitClips], dict]:
    """The train, dev and test clips and the preprocessing recipe of ``convzoo predict`` (``kind`` "clip": the
    frame size, the channels and the scalar mean and std of the raw uint8 pixels, from ``STATISTICS_CLIPS``
    training clips)."""
    check_clip_shape(frames, canvas)
    counts = {**CLIP_COUNTS, **(counts or {})}
    size = digit_size(canvas)
    splits = {name: MovingDigitClips(resize_digits(images, size), labels, counts[name], SPLIT_SEEDS[name], frames,
                                     canvas) for name, (images, labels) in digit_splits(path).items()}
    sample = torch.from_numpy(np.stack([splits["train"].clip(i)[0] for i in range(STATISTICS_CLIPS)])).double()
    mean, std = sample.mean().item(), sample.std().item()
    for dataset in splits.values():
        dataset.normalize = Standardize(mean, std)
    recipe = {"kind": "clip", "channels": 1, "frames": frames, "size": [canvas, canvas], "mean": mean, "std": std}
    return splits, recipe


def read_clip(path: Path, channels: int = 1) -> torch.Tensor:
    """A clip file as float32 Tensor[channels, T, H, W] of pixel values 0..255: an ``.npy`` of [T, H, W] (one
    channel) or [C, T, H, W], uint8 pixels or float intensities in [0, 1]; or a folder of frame images (sorted by
    name, all of one size, converted to grey or RGB as ``channels`` says). One-line errors name the file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{path}: a clip folder holds frame images ({', '.join(IMAGE_SUFFIXES)}); "
                                    "found none")
        frames = []
        for file in files:
            try:
                frames.append(read_image(file, "L" if channels == 1 else "RGB"))
            except BadImageError:
                raise BadImageError(f"{path}: cannot decode the frame {file.name}") from None
            if frames[-1].shape != frames[0].shape:
                raise ValueError(f"{path}: frames of one clip must have one size; {files[0].name} is "
                                 f"{frames[0].shape[2]}x{frames[0].shape[1]}, {file.name} "
                                 f"{frames[-1].shape[2]}x{frames[-1].shape[1]}")
        return torch.stack(frames, dim=1).float()  # T x (C, H, W) -> (C, T, H, W)
    array = read_npy(path, "clip")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[0] != channels or min(array.shape) < 1:
        raise ValueError(f"{path}: expected a clip [T, H, W] or [{channels}, T, H, W], got {array.dtype} "
                         f"{list(array.shape)}")
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32))
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)) or np.iscomplexobj(array):
        raise ValueError(f"{path}: a clip holds pixel values (uint8, or numbers in [0, 1]), got {array.dtype}")
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if not (0 <= low and high <= 1):  # also refuses NaN
        raise ValueError(f"{path}: a clip of {array.dtype} holds intensities in [0, 1] (or uint8 pixels), got "
                         f"values from {low} to {high}")
    return torch.from_numpy(array * 255)


def clip_input(path: Path, recipe: dict, min_frames: int = 1) -> torch.Tensor:
    """The network input float32 Tensor[C, T, H, W] of a clip file (``read_clip``) as the run's clips were made:
    frames resized to the recipe's size, standardized. A clip of fewer than ``min_frames`` frames (the model's
    temporal kernel) is refused; a longer or shorter one than the training clips is kept whole (global pooling)."""
    clip = read_clip(path, recipe["channels"])
    if clip.shape[1] < min_frames:
        raise ValueError(f"{path}: a clip of {clip.shape[1]} frame(s) is shorter than the model's temporal kernel "
                         f"of {min_frames} frames; give at least {min_frames} (this run was trained on "
                         f"{recipe['frames']})")
    size = tuple(recipe["size"])
    if tuple(clip.shape[2:]) != size:
        # (C, T, H, W) -> (T, C, H, W): the frames as a batch of images
        clip = F.interpolate(clip.transpose(0, 1), size=size, mode="bilinear", antialias=True, align_corners=False)
        clip = clip.clamp_(0, 255).transpose(0, 1)
    return Standardize(recipe["mean"], recipe["std"])(clip)
