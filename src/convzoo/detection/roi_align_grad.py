"""RoIAlign with torchvision's forward and a fast CPU backward built from separable bilinear weights.

torchvision's CPU ``roi_align`` backward scatters one sample at a time (single-threaded atomic adds): on a 128-px
Mask R-CNN step it took 190 ms of 820 (23%), six times its own forward. RoIAlign with a fixed ``sampling_ratio``
is *separable*: bin ``(i, j)`` of a RoI averages ``s x s`` bilinear samples on a product grid, so

    out[r, c, i, j] = sum_{y, x} A_y[r, i, y] * F[b_r, c, y, x] * A_x[r, j, x]

where ``A_y[r, i, y]`` is the mean over the bin's ``s`` sample rows of the 1-D bilinear ("tent") weight of row
``y`` (torchvision's clamping: a sample outside ``[-1, H]`` is 0, others are clamped to ``[0, H - 1]``). The
gradient of the features is then two matrix products per image, ``A_y^T (dOut A_x)``, which BLAS runs in
milliseconds. Its cost grows with the map's area, so it is used only for small maps (``MAX_CELLS``); the forward
is always torchvision's own kernel, so outputs are bit-identical to ``torchvision.ops.roi_align``.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor

# the dense backward costs ~H*W/(S*s^2) times the scatter's multiply-adds but runs as BLAS. Used up to
# 128 * S * s^2 cells: 60 x 60 for 7x7 bins, 85 x 85 for 14x14 (s = 2); benchmarks/bench_roi_align.py measured
# 0.26-0.45 of torchvision's time inside the limit (32 x 32 and 80 x 80 maps, 2 CPU cores)
MAX_CELLS_PER_BIN_SAMPLE = 128


def axis_weights(start: Tensor, length: Tensor, bins: int, samples: int, cells: int, aligned: bool) -> Tensor:
    """1-D RoIAlign weights Tensor[R, bins, cells]: row ``[r, i]`` averages the bilinear weights of the ``samples``
    points of bin ``i`` of the segment ``[start, start + length)`` (Tensor[R], in cell coordinates)."""
    if not aligned:
        length = length.clamp(min=1.0)  # legacy RoIAlign widens RoIs narrower than one cell
    offsets = (torch.arange(bins * samples, dtype=start.dtype, device=start.device) + 0.5) / (bins * samples)
    points = start[:, None] + length[:, None] * offsets  # [R, bins * samples]
    valid = (points >= -1.0) & (points <= cells)
    points = points.clamp(0, cells - 1)
    grid = torch.arange(cells, dtype=start.dtype, device=start.device)
    weights = (1 - (grid - points[:, :, None]).abs()).clamp(min=0) * valid[:, :, None]
    return weights.view(len(start), bins, samples, cells).mean(2)


def roi_weights(rois: Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                aligned: bool, height: int, width: int) -> tuple[Tensor, Tensor]:
    """``A_y`` Tensor[K, h, H] and ``A_x`` Tensor[K, w, W] of Tensor[K, 5] rois ``(batch_index, x1, y1, x2, y2)``."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, 1:] * spatial_scale - offset).unbind(1)
    return (axis_weights(y1, y2 - y1, output_size[0], sampling_ratio, height, aligned),
            axis_weights(x1, x2 - x1, output_size[1], sampling_ratio, width, aligned))


def separable_roi_align_backward(grad_output: Tensor, rois: Tensor, feature_shape: torch.Size,
                                 output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                                 aligned: bool) -> Tensor:
    """The gradient Tensor[B, C, H, W] of RoIAlign's features from ``grad_output`` Tensor[K, C, h, w]."""
    batch, channels, height, width = feature_shape
    weights_y, weights_x = roi_weights(rois.to(grad_output.dtype), output_size, spatial_scale, sampling_ratio,
                                       aligned, height, width)
    grad = grad_output.new_zeros(feature_shape)
    image_of_roi = rois[:, 0].to(torch.int64)
    for image in range(batch):
        index = torch.nonzero(image_of_roi == image).squeeze(1)
        if len(index) == 0:
            continue
        # [R, C, h, w] @ [R, 1, w, W] -> [R, C, h, W]; then sum over (r, i) of A_y[r, i, y] -> [y, C * W]
        rows = torch.matmul(grad_output[index], weights_x[index][:, None])
        rows = rows.transpose(1, 2).reshape(-1, channels * width)
        grad[image] = (weights_y[index].reshape(-1, height).T @ rows).view(height, channels, width).transpose(0, 1)
    return grad


class _RoIAlignSeparableGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.feature_shape, ctx.args = features.shape, (output_size, spatial_scale, sampling_ratio, aligned)
        return torchvision.ops.roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: Tensor):
        (rois,) = ctx.saved_tensors
        grad = separable_roi_align_backward(grad_output.contiguous(), rois, ctx.feature_shape, *ctx.args)
        return grad, None, None, None, None, None


def use_separable_grad(features: Tensor, output_size: tuple[int, int], sampling_ratio: int) -> bool:
    """The separable backward applies: a CPU map that needs a gradient, fixed sampling, and a small enough map."""
    small = features.shape[-2] * features.shape[-1] <= MAX_CELLS_PER_BIN_SAMPLE * max(output_size) * sampling_ratio ** 2
    return (features.device.type == "cpu" and features.requires_grad and torch.is_grad_enabled()
            and sampling_ratio > 0 and small)


def roi_align(features: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """torchvision's RoIAlign of ``features`` Tensor[B, C, H, W] at Tensor[K, 5] ``rois`` -> Tensor[K, C, h, w];
    on the CPU with small maps its gradient comes from :func:`separable_roi_align_backward`."""
    if use_separable_grad(features, output_size, sampling_ratio):
        return _RoIAlignSeparableGrad.apply(features, rois.detach(), output_size, spatial_scale, sampling_ratio,
                                            aligned)
    return torchvision.ops.roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)
