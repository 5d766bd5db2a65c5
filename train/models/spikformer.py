"""Spikformer (Zhou et al., ICLR 2023) in its DVS configuration, on the project's canonical LIF.

Spikformer-2-256 for 2x128x128 event frames: a spiking patch splitting (SPS) of four conv-BN-LIF stages
(32-64-128-256 channels), each followed by a 3x3 stride-2 max-pool, down to 8x8 tokens, plus a conv-BN-LIF
relative position embedding added to the tokens; then two encoder blocks of spiking self-attention (16 heads,
scale 0.125, attention LIF threshold 0.5) and a spiking MLP (ratio 4), each residual; the features are the
mean over tokens, per time step. LIF: tau 2 (dt/tau = 0.5), threshold 1, hard reset to 0, as the paper's
SpikingJelly neurons. Not deployable (max-pooling, spike-spike products in the attention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neuromoco.train.models.base import SpikingEncoder
from neuromoco.train.models.layers import TimeDistributed
from neuromoco.train.models.neurons import LIF, LIFConfig

ATTN_LIF = LIFConfig(v_threshold=0.5)


def _conv_bn(cin: int, cout: int, dims: int = 2, k: int = 3) -> TimeDistributed:
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False) if dims == 2 else nn.Conv1d(cin, cout, 1)
    return TimeDistributed(nn.Sequential(conv, nn.BatchNorm2d(cout) if dims == 2 else nn.BatchNorm1d(cout)))


class SPS(nn.Module):
    """Spiking patch splitting: ``[T,B,C,H,W] -> [T,B,D,N]`` tokens."""

    def __init__(self, in_channels: int, dim: int, stages: int = 4) -> None:
        super().__init__()
        widths = [dim // 2 ** (stages - 1 - i) for i in range(stages)]  # 32-64-128-256 for dim 256
        blocks: list[nn.Module] = []
        c = in_channels
        for wdt in widths:
            blocks += [_conv_bn(c, wdt), LIF(), TimeDistributed(nn.MaxPool2d(3, 2, 1))]
            c = wdt
        self.proj = nn.Sequential(*blocks)
        self.rpe = nn.Sequential(_conv_bn(dim, dim), LIF())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        x = x + self.rpe(x)
        return x.flatten(3)


class SSA(nn.Module):
    """Spiking self-attention over tokens ``[T,B,D,N]`` (no softmax; scale 0.125)."""

    def __init__(self, dim: int, heads: int, scale: float = 0.125) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads, self.scale = heads, scale
        self.q = nn.Sequential(_conv_bn(dim, dim, dims=1), LIF())
        self.k = nn.Sequential(_conv_bn(dim, dim, dims=1), LIF())
        self.v = nn.Sequential(_conv_bn(dim, dim, dims=1), LIF())
        self.attn_lif = LIF(ATTN_LIF)
        self.proj = nn.Sequential(_conv_bn(dim, dim, dims=1), LIF())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, d, n = x.shape
        h = self.heads

        def split(z: torch.Tensor) -> torch.Tensor:  # [T,B,D,N] -> [T,B,h,N,D/h]
            return z.transpose(-1, -2).reshape(t, b, n, h, d // h).permute(0, 1, 3, 2, 4)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        y = (q @ k.transpose(-2, -1)) @ v * self.scale
        y = y.permute(0, 1, 3, 2, 4).reshape(t, b, n, d).transpose(-1, -2)
        return self.proj(self.attn_lif(y.contiguous()))


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(_conv_bn(dim, hidden, dims=1), LIF(), _conv_bn(hidden, dim, dims=1), LIF())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attn = SSA(dim, heads)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(SpikingEncoder):
    def __init__(self, input_shape: Sequence[int] = (2, 128, 128), dim: int = 256, depth: int = 2,
                 heads: int = 16, mlp_ratio: float = 4.0, sps_stages: int = 4) -> None:
        super().__init__()
        self.input_shape = tuple(int(v) for v in input_shape)
        self.sps = SPS(self.input_shape[0], dim, sps_stages)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.feature_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sps(x)
        for blk in self.blocks:
            x = blk(x)
        return x.mean(-1)  # [T,B,D]: mean over tokens, per time step


def spikformer_2_256(input_shape: Sequence[int] = (2, 128, 128), **kw) -> Spikformer:
    return Spikformer(input_shape, **{"dim": 256, "depth": 2, "heads": 16, "mlp_ratio": 4.0, **kw})
