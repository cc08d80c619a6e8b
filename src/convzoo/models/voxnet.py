"""VoxNet (Maturana & Scherer 2015, "VoxNet: A 3D Convolutional Neural Network for Real-Time Object Recognition",
IROS): a 3D network on 32^3 occupancy grids.

Sec. 3.3 of the paper, as Conv(filters, kernel, stride), Pool(m), FC(units):
Conv(32, 5, 2) - Conv(32, 3, 1) - Pool(2) - FC(128) - FC(K), valid padding, so a 32^3 grid becomes 14^3, 12^3, 6^3.
The convolutions use leaky ReLUs of slope 0.1 (Sec. 3.3), FC(128) a ReLU; dropout 0.2 after the first convolution,
0.3 after the pooling and 0.4 after FC(128), the rates of the authors' code (``dimatura/voxnet``,
``scripts/config/shapenet10.py``). Initialization as there: He normal for the convolutions (for leaky ReLU 0.1),
N(0, 0.01) for the linear layers.

Parameters for a 32^3 input, 1 channel, K classes (weights + biases):
conv1 32 * 1 * 5^3 + 32 = 4,032; conv2 32 * 32 * 3^3 + 32 = 27,680; fc1 32 * 6^3 * 128 + 128 = 884,864;
fc2 128 * K + K: 1,290 for K = 10 (917,866 in all) and 5,160 for K = 40 (921,736, the paper's ModelNet40 net).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convzoo.layers import conv, max_pool
from convzoo.models.base import Classifier, FeatureInfo
from convzoo.registry import register_model

LEAKY_SLOPE = 0.1  # Sec. 3.3


class VoxNet(Classifier):
    """VoxNet for ``in_chans`` x D x H x W grids (``input_size`` = (D, H, W), 32^3 by default: FC(128) is sized
    for it, so inputs must have exactly that size); ``ndim`` must be 3 (it exists so that the classification task
    can pass the number of spatial axes of its data)."""

    ndim = 3
    first_conv = "conv1"
    classifier_name = "fc2"

    def __init__(self, *, num_classes: int = 10, in_chans: int = 1, ndim: int = 3,
                 input_size: Sequence[int] = (32, 32, 32), drop_rates: Sequence[float] = (0.2, 0.3, 0.4)) -> None:
        super().__init__()
        if ndim != 3:
            raise ValueError(f"voxnet is a 3D network (inputs [N, C, D, H, W]): ndim must be 3, got {ndim}")
        input_size = tuple(input_size)
        # Conv(5, 2) valid: (s - 5) // 2 + 1, Conv(3, 1) valid: s - 2, Pool(2): s // 2. 32 -> 14 -> 12 -> 6.
        pooled = tuple(((s - 5) // 2 + 1 - 2) // 2 for s in input_size)
        if len(input_size) != 3 or min(pooled) < 1:
            raise ValueError(f"voxnet needs a 3D input_size of at least 10 voxels a side, got {list(input_size)}")
        if len(drop_rates) != 3 or not all(0 <= p < 1 for p in drop_rates):
            raise ValueError(f"drop_rates are 3 dropout probabilities in [0, 1), got {list(drop_rates)}")
        self.in_chans, self.num_classes, self.num_features = in_chans, num_classes, 128
        self.default_input_size = (in_chans, *input_size)
        self.conv1 = conv(3, in_chans, 32, 5, 2, padding="valid")
        self.drop1 = nn.Dropout(drop_rates[0])
        self.conv2 = conv(3, 32, 32, 3, 1, padding="valid")
        self.pool = max_pool(3, 2)
        self.drop2 = nn.Dropout(drop_rates[1])
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.fc1 = nn.Linear(32 * pooled[0] * pooled[1] * pooled[2], 128)
        self.drop3 = nn.Dropout(drop_rates[2])
        self.fc2 = nn.Linear(128, num_classes)
        self.feature_info = [FeatureInfo("conv1", 32, 2), FeatureInfo("pool", 32, 4)]
        for module in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(module.bias)
        for module in (self.fc1, self.fc2):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if tuple(x.shape[2:]) != self.default_input_size[1:]:
            raise ValueError(f"VoxNet expects grids of {'x'.join(map(str, self.default_input_size[1:]))} voxels "
                             f"(its FC(128) is sized for them; build it with input_size=...), got input shape "
                             f"{list(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.act(self.conv1(x)))  # (N, 32, 14, 14, 14) for 32^3
        return self.drop2(self.pool(self.act(self.conv2(x))))  # (N, 32, 12, 12, 12) -> (N, 32, 6, 6, 6)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop3(torch.relu(self.fc1(torch.flatten(x, 1))))  # (N, 32 * 6^3) -> (N, 128)
        return x if pre_logits else self.fc2(x)


@register_model
def voxnet(**kwargs) -> VoxNet:
    """VoxNet (Maturana & Scherer 2015): Conv(32, 5, 2), Conv(32, 3, 1), Pool(2), FC(128), FC(K) on 32^3 grids;
    917,866 parameters for 10 classes (921,736 for ModelNet40's 40)."""
    return VoxNet(**kwargs)
