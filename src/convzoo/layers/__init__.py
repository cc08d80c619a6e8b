"""ndim-generic layers: convolution, pooling, BatchNorm (1D/2D/3D from the same code) and LRN."""

from torch import nn

from convzoo.layers.conv import avg_pool, channel_dropout, conv, conv_transpose, global_avg_pool, max_pool
from convzoo.layers.norm import BATCH_NORM_TYPES, FrozenBatchNorm, batch_norm, freeze_bn, precise_bn
from convzoo.layers.padding import as_tuple, output_size, pad_same, same_padding_1d


def local_response_norm(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.Module:
    """Krizhevsky et al.'s LRN across channels (VGG A-LRN, GoogLeNet), with the paper's ``alpha``.

    AlexNet: ``b = a / (k + alpha * sum_{n neighbours} a^2) ** beta``; PyTorch divides its ``alpha`` by ``size``,
    so the PyTorch module gets ``alpha * size``. Defaults are AlexNet's (k=2, n=5, alpha=1e-4, beta=0.75).
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


__all__ = [
    "BATCH_NORM_TYPES", "FrozenBatchNorm", "as_tuple", "avg_pool", "batch_norm", "channel_dropout", "conv",
    "conv_transpose", "freeze_bn", "global_avg_pool", "local_response_norm", "max_pool", "output_size", "pad_same",
    "precise_bn", "same_padding_1d",
]
