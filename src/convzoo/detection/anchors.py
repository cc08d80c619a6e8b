"""Anchors of the Region Proposal Network (Faster R-CNN, Ren et al. 2015, Sec. 3.1.1; lecture: "Faster R-CNN").

At every position of a feature map with stride S, the RPN places A reference boxes ("anchors"): the paper uses
3 scales (128^2, 256^2, 512^2 pixels) x 3 aspect ratios (1:2, 1:1, 2:1), so A = 9. With an FPN each level gets one
size (32 on P2 ... 512 on P6) and the 3 ratios. Boxes are ``(x1, y1, x2, y2)`` in absolute pixels.

Conventions, chosen to equal torchvision's ``AnchorGenerator`` bit for bit (so that a torchvision detector loaded
into convzoo gives identical detections):

* aspect ratio ``r = h / w`` and area ``size^2``: ``h = size * sqrt(r)``, ``w = size / sqrt(r)``;
* the cell anchors are centered on 0 and **rounded** to integer corners (round half to even), as torchvision
  does; ``rounded=False`` keeps the exact sizes. Deliberate difference from the paper's code (py-faster-rcnn's
  ``generate_anchors.py``): it rounds the sides at the base size 16 before scaling and counts pixels with "+1",
  so its 1:2 anchor of size 128 is 184 x 96 pixels centered at (7.5, 7.5); here (and in torchvision) it is
  182 x 90 centered at 0;
* order within a position: ratio-major, ``index = ratio_index * len(sizes) + size_index``;
* the anchors of position ``(i, j)`` are centered at ``(j * stride_x, i * stride_y)``, the top-left corner of the
  feature cell (torchvision), not its center ``((j + 0.5) * stride_x, ...)``; the RPN learns the offset.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float], rounded: bool = True,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The ``A = len(aspect_ratios) * len(sizes)`` anchors of one position, centered on 0 -> Tensor[A, 4] (xyxy).

    ``size`` is the square root of the area and ``ratio = h / w`` (so 0.5 is a wide box). The arithmetic runs in
    float32 as in torchvision, then the result is rounded (if ``rounded``) and cast to ``dtype``.
    """
    scales = torch.as_tensor(sizes, dtype=torch.float32, device=device)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32, device=device)
    if scales.ndim != 1 or ratios.ndim != 1 or (scales <= 0).any() or (ratios <= 0).any():
        raise ValueError(f"cell_anchors expects positive sizes and ratios, got {sizes} and {aspect_ratios}")
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    # [R, 1] * [1, S] -> [R * S]: ratio-major
    widths = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    heights = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    anchors = torch.stack([-widths, -heights, widths, heights], dim=1) / 2
    if rounded:
        anchors = anchors.round()
    return anchors.to(dtype)


def grid_anchors(feature_size: tuple[int, int], stride: float | tuple[float, float], cell: Tensor) -> Tensor:
    """Anchors of every position of a ``feature_size = (h, w)`` map -> Tensor[h * w * A, 4] (xyxy, image pixels).

    ``stride`` is ``(stride_y, stride_x)`` or one number, ``cell`` the Tensor[A, 4] of :func:`cell_anchors`. The
    output is position-major: rows ``(i * w + j) * A ... (i * w + j) * A + A - 1`` are the A anchors of position
    ``(i, j)``, in the order the RPN head's ``A`` channels per position use.
    """
    stride_y, stride_x = (stride, stride) if isinstance(stride, (int, float)) else stride
    height, width = feature_size
    shifts_x = torch.arange(width, dtype=cell.dtype, device=cell.device) * stride_x
    shifts_y = torch.arange(height, dtype=cell.dtype, device=cell.device) * stride_y
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1)  # [h * w, 4]
    # [h * w, 1, 4] + [1, A, 4] -> [h * w, A, 4] -> [h * w * A, 4]
    return (shifts[:, None, :] + cell[None, :, :]).reshape(-1, 4)


class AnchorGenerator(nn.Module):
    """Anchors for one or several feature maps (an FPN's levels), cached per map shape.

    ``sizes`` holds one tuple of sizes per level, e.g. ``((128, 256, 512),)`` for the paper's single map or
    ``((32,), (64,), (128,), (256,), (512,))`` for FPN; ``aspect_ratios`` is one tuple per level or a single tuple
    of numbers shared by all levels. The cell anchors are non-persistent buffers, so ``.to(device)`` moves them and
    state dicts stay free of them (as torchvision's, which keeps them outside the state dict too). The grids of the
    last ``cache_size`` distinct (level, shape, stride, device, dtype, inference mode) are kept; ``cache_size=0``
    caches nothing.
    """

    def __init__(self, sizes: Sequence[Sequence[float]] = ((128, 256, 512),),
                 aspect_ratios: Sequence[float] | Sequence[Sequence[float]] = (0.5, 1.0, 2.0),
                 rounded: bool = True, cache_size: int = 32) -> None:
        super().__init__()
        sizes = tuple(tuple(level) for level in sizes)
        if aspect_ratios and all(isinstance(r, (int, float)) for r in aspect_ratios):
            aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
        aspect_ratios = tuple(tuple(level) for level in aspect_ratios)
        if len(aspect_ratios) != len(sizes):
            raise ValueError(f"AnchorGenerator: {len(sizes)} levels of sizes but {len(aspect_ratios)} of ratios")
        self.sizes, self.aspect_ratios, self.rounded, self.cache_size = sizes, aspect_ratios, rounded, cache_size
        for level, (level_sizes, level_ratios) in enumerate(zip(sizes, aspect_ratios)):
            self.register_buffer(f"cell_anchors_{level}", cell_anchors(level_sizes, level_ratios, rounded),
                                 persistent=False)
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_levels(self) -> int:
        return len(self.sizes)

    def num_anchors_per_location(self) -> list[int]:
        """A for every level: the number of output channels per position the RPN head needs."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def cell(self, level: int) -> Tensor:
        """The Tensor[A, 4] cell anchors of ``level``, centered on 0."""
        return getattr(self, f"cell_anchors_{level}")

    def forward(self, image_size: tuple[int, int], feature_sizes: Sequence[tuple[int, int]],
                strides: Sequence[int | float | tuple[float, float]] | None = None) -> list[Tensor]:
        """Anchors per level: a list of Tensor[h_l * w_l * A_l, 4] (xyxy), see :func:`grid_anchors`.

        ``image_size = (H, W)`` is the size of the (padded) batch tensor; ``feature_sizes`` one ``(h, w)`` per level.
        ``strides`` default to torchvision's rule ``(H // h, W // w)`` per level (for FPN's P6, e.g. 800 // 13 = 61,
        not 64: pass the strides explicitly to get the exact ones). The returned tensors are cached and shared
        between calls: do not modify them in place.
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"AnchorGenerator has {self.num_levels} levels, got {len(feature_sizes)} feature maps")
        if strides is None:
            strides = [(image_size[0] // h, image_size[1] // w) for h, w in feature_sizes]
        anchors = []
        for level, (feature_size, stride) in enumerate(zip(feature_sizes, strides)):
            cell = self.cell(level)
            stride = (stride, stride) if isinstance(stride, (int, float)) else tuple(stride)
            # tensors made under inference_mode cannot enter autograd later: keep them apart from the others
            key = (level, tuple(feature_size), stride, cell.device, cell.dtype, torch.is_inference_mode_enabled())
            level_anchors = self._cache.get(key)
            if level_anchors is None:
                level_anchors = grid_anchors(tuple(feature_size), stride, cell)
                if self.cache_size > 0:
                    if len(self._cache) >= self.cache_size:
                        self._cache.pop(next(iter(self._cache)))  # drop the oldest entry
                    self._cache[key] = level_anchors
            anchors.append(level_anchors)
        return anchors

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, aspect_ratios={self.aspect_ratios}, rounded={self.rounded}"


__all__ = ["AnchorGenerator", "cell_anchors", "grid_anchors"]
