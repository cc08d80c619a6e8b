"""Voxel occupancy grids for 3D object recognition: a generated ModelNet-like set (``--data voxels``) and a reader
of a user's voxelization (``--data voxels:DIR``).

The generated set: solids of ``VOXEL_CLASSES``, each an implicit function ``inside(x, y, z)`` in the solid's own
frame (about the unit ball), sampled at the voxel centres of a 32^3 grid over [-1, 1]^3 after a random rotation
(uniform over SO(3), from a normalized Gaussian quaternion), a random size (isotropic scale with up to 10% per-axis
jitter), a random shift and the dropout of a random fraction (0 to 30%) of the surface voxels (occupied voxels with
an empty 6-neighbour), as a range sensor misses some of the surface. Labels are balanced (``i mod K`` for sample
``i``, then shuffled) and each split comes from its own seed. Everything is vectorized over a chunk of grids:
``generate_voxels(2000)`` takes about 4 s on one core (measured: 3.9 s).

A user's folder: ``DIR/<class>/*.npy|*.npz`` (split 70/10/20 by a fixed permutation) or ``DIR/train/<class>/``
with ``DIR/test/<class>/`` (and optionally ``val/`` or ``dev/``; otherwise a tenth of train is the dev split). Each
file holds one grid [D, H, W] (or [1, D, H, W]) of occupancies in [0, 1]; an ``.npz`` holds one array or one
named ``voxels``. Files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from convzoo.data.formats import read_npz

GRID = 32
VOXEL_CLASSES = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid", "capsule", "ellipsoid", "tetrahedron",
                 "wedge", "hollow_box", "octahedron")
# Sizes of the generated train, dev and test splits, and the seeds they come from.
SPLIT_SIZES = {"train": 2400, "dev": 480, "test": 1200}
SPLIT_SEEDS = {"train": 1, "dev": 2, "test": 3}
MAX_SURFACE_DROPOUT = 0.3
VOXEL_SUFFIXES = (".npy", ".npz")

# The normals of the faces of a regular tetrahedron (pointing at the vertices of the dual one).
_TETRA_NORMALS = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float32) / np.sqrt(3)


def _radial(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(x * x + y * y)


def _cube(x, y, z):
    return np.maximum(np.maximum(np.abs(x), np.abs(y)), np.abs(z)) <= 0.6


def _hollow_box(x, y, z):
    # a closed shell of 0.15 units (2 to 4 voxels at the generated scales)
    box = np.maximum(np.maximum(np.abs(x), np.abs(y)), np.abs(z))
    return (box <= 0.65) & (box > 0.5)


def _tapered(x, y, z, half_width: np.ndarray):
    """Inside a solid whose cross-section at height z (|z| <= 0.75) has half width ``half_width`` * (0.75 - z) / 1.5."""
    return (np.abs(z) <= 0.75) & (half_width <= 0.75 * (0.75 - z) / 1.5)


SOLIDS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "cube": _cube,
    "sphere": lambda x, y, z: x * x + y * y + z * z <= 0.8 ** 2,
    "cylinder": lambda x, y, z: (_radial(x, y) <= 0.55) & (np.abs(z) <= 0.7),
    "cone": lambda x, y, z: _tapered(x, y, z, _radial(x, y)),
    "torus": lambda x, y, z: (_radial(x, y) - 0.6) ** 2 + z * z <= 0.25 ** 2,
    "pyramid": lambda x, y, z: _tapered(x, y, z, np.maximum(np.abs(x), np.abs(y))),
    # a segment from z = -0.45 to 0.45 thickened by 0.38
    "capsule": lambda x, y, z: x * x + y * y + np.maximum(np.abs(z) - 0.45, 0) ** 2 <= 0.38 ** 2,
    "ellipsoid": lambda x, y, z: (x / 0.9) ** 2 + (y / 0.5) ** 2 + (z / 0.32) ** 2 <= 1,
    "tetrahedron": lambda x, y, z: np.max(np.stack([n[0] * x + n[1] * y + n[2] * z for n in _TETRA_NORMALS]),
                                          axis=0) <= 0.33,
    # a triangular prism: the cone's triangle in (x, z), extruded along y
    "wedge": lambda x, y, z: _tapered(x, y, z, np.abs(x)) & (np.abs(y) <= 0.55),
    "hollow_box": _hollow_box,
    "octahedron": lambda x, y, z: np.abs(x) + np.abs(y) + np.abs(z) <= 0.95,
}


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Float32[n, 3, 3] rotations uniform over SO(3): unit quaternions from normalized 4D Gaussians (Shoemake)."""
    q = rng.standard_normal((n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1).astype(np.float32)


def surface(grids: np.ndarray) -> np.ndarray:
    """Bool[N, D, H, W]: the occupied voxels of ``grids`` (bool, same shape) with an empty 6-neighbour (outside
    the grid counts as empty)."""
    padded = np.pad(grids, ((0, 0), (1, 1), (1, 1), (1, 1)))
    interior = grids.copy()
    for axis in (1, 2, 3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[:, 1:-1, 1:-1, 1:-1]
    return grids & ~interior


def generate_voxels(n: int, seed: int = 0, size: int = GRID, chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random solids as (grids Bool[n, size, size, size], labels Int64[n] indexing ``VOXEL_CLASSES``).

    Deterministic for (``n``, ``seed``, ``size``); labels are balanced (counts differ by at most one).
    """
    if n < 1 or size < 8:
        raise ValueError(f"generate_voxels needs n >= 1 and size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    k = len(VOXEL_CLASSES)
    labels = rng.permutation(np.arange(n) % k)
    rotations = random_rotations(n, rng)
    scale = rng.uniform(0.6, 0.95, (n, 1)) * rng.uniform(0.9, 1.1, (n, 3))  # isotropic size, per-axis jitter
    shift = rng.uniform(-0.12, 0.12, (n, 3))
    dropout = rng.uniform(0.0, MAX_SURFACE_DROPOUT, n)
    # voxel centres in [-1, 1]: (size^3, 3)
    axis = (np.arange(size, dtype=np.float32) + 0.5) * (2 / size) - 1
    centres = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    grids = np.zeros((n, size ** 3), dtype=bool)
    for label, name in enumerate(VOXEL_CLASSES):
        index = np.flatnonzero(labels == label)
        for start in range(0, len(index), chunk):
            part = index[start:start + chunk]
            # the solid's frame: q = R^T (p - t) / s; (B, V, 3) = (V, 3) - (B, 1, 3), times R (row vectors)
            local = np.matmul(centres[None] - shift[part, None].astype(np.float32), rotations[part])
            local /= scale[part, None].astype(np.float32)
            grids[part] = SOLIDS[name](local[..., 0], local[..., 1], local[..., 2])
    grids = grids.reshape(n, size, size, size)
    drop = surface(grids) & (rng.random(grids.shape, dtype=np.float32) < dropout[:, None, None, None])
    return grids & ~drop, labels.astype(np.int64)


def voxel_arrays(sizes: dict[str, int] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The generated splits: name -> (grids uint8 Tensor[N, 1, 32, 32, 32], labels Tensor[N] int64)."""
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    splits = {}
    for name in ("train", "dev", "test"):
        grids, labels = generate_voxels(sizes[name], SPLIT_SEEDS[name])
        splits[name] = torch.from_numpy(grids).to(torch.uint8).unsqueeze(1), torch.from_numpy(labels)
    return splits


def read_npy(path: Path, what: str) -> np.ndarray:
    """The array of a numpy ``.npy`` file, read with ``allow_pickle=False``; a ValueError naming ``path`` and
    ``what`` it should hold when it is not one (corrupt, truncated, an object array, an archive)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        reason = "an array of Python objects, which convzoo never unpickles" if "pickle" in str(error) else error
        raise ValueError(f"{path} is not a numpy .npy {what} ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path} is not a numpy .npy {what} (an .npz archive)")
    return array


def read_voxel_file(path: Path) -> np.ndarray:
    """One grid file as a Float32 or Bool[D, H, W] array of occupancies in [0, 1]; a ValueError naming ``path``."""
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path)
        if "voxels" in arrays:
            grid = arrays["voxels"]
        elif len(arrays) == 1:
            grid = next(iter(arrays.values()))
        else:
            raise ValueError(f"{path}: an .npz voxel file holds one array or one named 'voxels', got "
                             f"{', '.join(map(repr, arrays)) or 'none'}")
    else:
        grid = read_npy(path, "voxel grid")
    if grid.ndim == 4 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.ndim != 3 or min(grid.shape) < 1:
        raise ValueError(f"{path}: expected a voxel grid [D, H, W] or [1, D, H, W], got {grid.dtype} "
                         f"{list(grid.shape)}")
    if not (grid.dtype == bool or np.issubdtype(grid.dtype, np.number)) or np.iscomplexobj(grid):
        raise ValueError(f"{path}: a voxel grid holds occupancies (numbers or booleans), got {grid.dtype}")
    if grid.dtype != bool:
        low, high = float(grid.min()), float(grid.max())
        if not (0 <= low and high <= 1):  # also refuses NaN
            raise ValueError(f"{path}: occupancies must lie in [0, 1], got values from {low} to {high}")
    return grid


def _class_files(root: Path) -> tuple[list[Path], list[int], list[str]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"{root} has no class subfolders (expected {root}/<class>/<grid>.npy)")
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in VOXEL_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no voxel files (.npy, .npz) in the class folder {root / name}")
        paths += files
        labels += [index] * len(files)
    return paths, labels, classes


def read_voxel_folder(root: Path, shape: tuple[int, ...] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``root/<class>/*.npy|*.npz`` as (grids Tensor[N, 1, D, H, W], uint8 if every grid is binary, else float32;
    labels Tensor[N] int64; sorted class names). Every grid must have the first one's shape (or ``shape``)."""
    paths, labels, classes = _class_files(root)
    grids = []
    for path in paths:
        grid = read_voxel_file(path)
        shape = shape or grid.shape
        if grid.shape != shape:
            raise ValueError(f"{path}: grid of shape {list(grid.shape)}, but the others are {list(shape)}")
        grids.append(grid)
    stacked = np.stack(grids)
    binary = stacked.dtype == bool or bool(np.isin(stacked, (0, 1)).all())
    tensor = torch.from_numpy(stacked.astype(np.uint8 if binary else np.float32)).unsqueeze(1)
    return tensor, torch.tensor(labels, dtype=torch.long), classes


def volume_input(path: Path, recipe: dict) -> torch.Tensor:
    """The network input float32 Tensor[1, D, H, W] of a grid file (``read_voxel_file``), standardized as the
    run's grids were (``recipe``: ``kind`` "volume", ``size`` [D, H, W], ``mean``, ``std``); a grid of another
    size than the run's is refused, naming both."""
    grid = read_voxel_file(path)
    if list(grid.shape) != list(recipe["size"]):
        raise ValueError(f"{path}: a grid of {'x'.join(map(str, grid.shape))} voxels, but this run was trained on "
                         f"{'x'.join(map(str, recipe['size']))}")
    return ((torch.from_numpy(grid.astype(np.float32)) - recipe["mean"]) / recipe["std"]).unsqueeze(0)
