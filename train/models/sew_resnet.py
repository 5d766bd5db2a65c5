"""SEW-ResNet-18 (Fang et al., NeurIPS 2021) with ADD spike-element-wise connections, on the canonical LIF.

ResNet-18 layout: a 7x7 stride-2 conv-BN-LIF stem and 3x3 stride-2 max-pool, four stages of two basic blocks
(64-128-256-512 channels, stride 2 from the second stage), adaptive average pooling to one value per channel,
so the features are ``[T, B, 512]``. A block computes ``SN(BN(conv(SN(BN(conv(x)))))) + identity`` (ADD), the
identity being ``SN(BN(conv1x1(x)))`` where the shape changes, as in the SEW-ResNet code. Not deployable
(max-pooling, and the ADD of two spike trains gives non-binary activations).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neuromoco.train.models.base import SpikingEncoder
from neuromoco.train.models.layers import TimeDistributed
from neuromoco.train.models.neurons import LIF, LIFConfig


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> TimeDistributed:
    return TimeDistributed(nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)))


class SEWBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, lif: LIFConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), LIF(lif), _conv_bn(cout, cout, 3), LIF(lif))
        self.downsample = (nn.Sequential(_conv_bn(cin, cout, 1, stride), LIF(lif))
                           if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.downsample(x)  # ADD connect function


class SEWResNet(SpikingEncoder):
    def __init__(self, input_shape: Sequence[int] = (2, 128, 128), layers: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512), lif: LIFConfig | None = None) -> None:
        super().__init__()
        lif = lif or LIFConfig()
        self.input_shape = tuple(int(v) for v in input_shape)
        self.stem = nn.Sequential(_conv_bn(self.input_shape[0], widths[0], 7, 2), LIF(lif),
                                  TimeDistributed(nn.MaxPool2d(3, 2, 1)))
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths, strict=False)):  # (lengths not checked here)
            for j in range(n):
                stages.append(SEWBasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1, lif))
                cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = TimeDistributed(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        self.feature_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))


def sew_resnet18(input_shape: Sequence[int] = (2, 128, 128), **kw) -> SEWResNet:
    return SEWResNet(input_shape, layers=(2, 2, 2, 2), **kw)
