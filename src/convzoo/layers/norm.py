"""Batch Normalization in 1D/2D/3D, frozen BN, precise BN (lecture: "Batch Normalization").

Momentum convention: PyTorch's. During training the population statistics are updated as
``running = (1 - momentum) * running + momentum * batch_statistic`` with ``momentum = 0.1`` by default.
Keras/TensorFlow call the complementary number "momentum" (a decay): ``keras_momentum = 1 - momentum``, so
Keras' default 0.99 is ``momentum=0.01`` here. ``batch_norm(..., decay=0.99)`` accepts the Keras number directly.
At inference BN uses these exponential moving averages (EMA) of the mean and the (unbiased) variance.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
BATCH_NORM_TYPES = (nn.modules.batchnorm._BatchNorm,)


def batch_norm(ndim: int, num_features: int, momentum: float = 0.1, eps: float = 1e-5,
               decay: float | None = None) -> nn.Module:
    """A BatchNorm over ``num_features`` channels of Tensor[N, C, *spatial] with ``ndim`` spatial axes.

    ``momentum`` is PyTorch's (weight of the new batch); ``decay`` is Keras' momentum (``1 - momentum``).
    """
    if ndim not in _BATCH_NORM:
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
    if decay is not None:
        momentum = 1.0 - decay
    return _BATCH_NORM[ndim](num_features, eps=eps, momentum=momentum)


class FrozenBatchNorm(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, for any number of spatial axes.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``; all four are buffers, so neither an
    optimizer nor ``model.train()`` changes them. State-dict keys equal ``nn.BatchNorm*d``'s.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), value))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # a plain BatchNorm's counter has no meaning here
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        shape = (1, -1) + (1,) * (x.dim() - 2)  # broadcast over N and every spatial axis
        return x * scale.reshape(shape).to(x.dtype) + shift.reshape(shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def freeze_bn(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``model`` (in place) by a FrozenBatchNorm with its current statistics.

    Used when fine-tuning with small batches (Faster/Mask R-CNN) or training only a head. Returns ``model``.
    """
    for name, child in list(model.named_children()):
        if isinstance(child, BATCH_NORM_TYPES):
            frozen = FrozenBatchNorm(child.num_features, child.eps)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.track_running_stats:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
            setattr(model, name, frozen.to(next(iter(child.buffers()), frozen.weight).device))
        else:
            freeze_bn(child)
    return model


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Iterable[torch.Tensor], num_batches: int = 200) -> int:
    """Recompute BN population statistics as exact averages over ``num_batches`` batches (precise BN).

    The EMA statistics lag behind the weights; this runs the model in training mode without gradients, with
    ``momentum=None`` (cumulative average), over inputs from ``batches`` (each a Tensor or a tuple whose first item
    is the input), then restores each layer's momentum and the model's mode. Returns the number of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORM_TYPES) and m.track_running_stats]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    try:
        for batch in batches:
            if used >= num_batches:
                break
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    if used == 0:
        raise ValueError("precise_bn got no batches")
    return used
