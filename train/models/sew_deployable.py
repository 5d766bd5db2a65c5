"""Deployable SEW-ResNets (Fang et al., NeurIPS 2021): residual spiking networks with an exact NIR form.

Built only from operators every deploy target runs: ``nn.Conv2d`` (no bias) + ``nn.BatchNorm2d`` (folded into
the conv at export), the canonical :class:`~neuromoco.train.models.neurons.LIF`, ``SumPool2d`` (default) or
``nn.AvgPool2d``, ``nn.Flatten``, and SEW's ADD connection as a :class:`~neuromoco.train.models.layers.Residual`:

    stem   x -> conv-BN -> [pool] -> LIF                        (spikes; a pool before the neuron keeps them 0/1)
    block  s -> LIF(BN(conv3x3(LIF(BN(conv3x3(s)))))) + shortcut(s)      (ADD of spike tensors)
           shortcut = s itself, or LIF(BN(conv1x1(s))) where the block changes stride or width (as in SEW-ResNet)
    head   pool -> flatten -> features [T, B, D]                (the classifier adds its linear readout per step)

In NIR the ADD is two edges into the next node (the reference executor, ONNX and Lava sum a node's inputs),
so no max pooling, no adder node and no graded spikes are needed: every neuron still emits 0/1 spikes.
After consecutive identity blocks the sum carries every block's output since the last downsampling block
(``s + b1(s) + b2(s + b1(s))``...), which the export writes as one edge per term.

Two sizes, named like the CNNs by weight-layer count (shortcut convs not counted, as for ResNets) and input:

* ``sew-resnet8-34``   — 34x34 (N-MNIST, the embedded dataset): a 4x4 stride-2 valid stem conv (34 -> 16; the
  linear map of a 3x3 conv followed by 2x2 sum pooling, as one operator, so every neuron layer is fed by one
  conv's weights and ``--qat loihi`` can put them on the Loihi grid), one block per stage at 16-32-64
  channels (16 -> 8 -> 4), 2x2 sum pooling: 256 features; about 78k encoder parameters, trains on a 2-core
  CPU in minutes.
* ``sew-resnet18-128`` — 128x128 DVS data, ResNet-18's layout: a 9x9 stride-4 stem conv (128 -> 32; the linear
  map of ResNet-18's 7x7 stride-2 conv followed by 2x2 sum pooling, as one operator, like ``sew-resnet8-34``'s,
  so ``--qat loihi`` can put it on the Loihi grid), four stages of two blocks at 64-128-256-512 channels
  (32 -> 16 -> 8 -> 4), global pooling over the 4x4 map (a sum with ``pool="sum"``, the default, which QAT
  can train onto the grid; an average with ``"avg"``): 512 features, 11.2M encoder parameters (the
  training-only ``sew-resnet18`` has the same blocks with max pooling and a 7x7 stem: 4,096 fewer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neuromoco.train.models.base import SpikingEncoder
from neuromoco.train.models.layers import Residual, SumPool2d, TimeDistributed
from neuromoco.train.models.neurons import LIF, LIFConfig


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None) -> TimeDistributed:
    p = k // 2 if padding is None else padding
    return TimeDistributed(nn.Sequential(nn.Conv2d(cin, cout, k, stride, p, bias=False), nn.BatchNorm2d(cout)))


def _pool(kind: str, k: int | tuple[int, int]) -> nn.Module:
    return SumPool2d(k) if kind == "sum" else nn.AvgPool2d(k)


def _out(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def sew_block(cin: int, cout: int, stride: int, lif: LIFConfig) -> Residual:
    """One SEW basic block with the ADD connect function (identity shortcut when the shape is kept)."""
    body = nn.Sequential(_conv_bn(cin, cout, 3, stride), LIF(lif), _conv_bn(cout, cout, 3), LIF(lif))
    shortcut = (nn.Sequential(_conv_bn(cin, cout, 1, stride, 0), LIF(lif))
                if stride != 1 or cin != cout else None)
    return Residual(body, shortcut)


class DeployableSEWResNet(SpikingEncoder):
    """Stem, SEW blocks, pooled features (see the module docstring); ``forward(x [T,B,C,H,W]) -> [T,B,D]``.

    ``readout_pool``: the final pooling window, an int, or ``"global"`` for one value per channel (``pool``
    over the whole map: a sum, which quantization-aware training supports, or an average).
    """

    deployable = True

    def __init__(self, input_shape: Sequence[int], layers: Sequence[int] = (1, 1, 1),
                 widths: Sequence[int] = (16, 32, 64), stem_kernel: int = 3, stem_stride: int = 1,
                 stem_padding: int = 0, stem_pool: int = 2, readout_pool: int | str = 2, pool: str = "sum",
                 lif: LIFConfig | None = None) -> None:
        super().__init__()
        if pool not in ("sum", "avg"):
            raise ValueError(f"pool must be 'sum' or 'avg', not {pool!r}")
        if len(layers) != len(widths) or not layers:
            raise ValueError("layers and widths need one entry per stage")
        lif = lif or LIFConfig()
        c, h, w = (int(v) for v in input_shape)
        self.input_shape = (c, h, w)
        stem: list[nn.Module] = [_conv_bn(c, widths[0], stem_kernel, stem_stride, stem_padding)]
        h, w = _out(h, stem_kernel, stem_stride, stem_padding), _out(w, stem_kernel, stem_stride, stem_padding)
        if stem_pool > 1:
            stem.append(TimeDistributed(_pool(pool, stem_pool)))
            h, w = h // stem_pool, w // stem_pool
        stem.append(LIF(lif))
        self.stem = nn.Sequential(*stem)
        blocks: list[nn.Module] = []
        cin = widths[0]
        for i, (n, width) in enumerate(zip(layers, widths, strict=True)):  # equal lengths: checked above
            for j in range(int(n)):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(sew_block(cin, int(width), stride, lif))
                cin = int(width)
                h, w = _out(h, 3, stride, 1), _out(w, 3, stride, 1)
            if h < 1 or w < 1:
                raise ValueError(f"input {list(input_shape)} is too small for {len(layers)} stages")
        self.blocks = nn.Sequential(*blocks)
        if readout_pool == "global":
            head: list[nn.Module] = [_pool(pool, (h, w))]
            h = w = 1
        else:
            k = int(readout_pool)
            if h < k or w < k:
                raise ValueError(f"input {list(input_shape)} is too small: {h}x{w} before the {k}x{k} readout pool")
            head = [_pool(pool, k)] if k > 1 else []
            h, w = h // k, w // k
        self.head = TimeDistributed(nn.Sequential(*head, nn.Flatten()))
        self.feature_shape = (cin, h, w)
        self.feature_dim = cin * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def deploy_modules(self) -> list[nn.Module]:
        return [self.stem, self.blocks, self.head]


def sew_resnet8_34(input_shape: Sequence[int] = (2, 34, 34), **kw) -> DeployableSEWResNet:
    for k, v in {"layers": (1, 1, 1), "widths": (16, 32, 64), "stem_kernel": 4, "stem_stride": 2,
                 "stem_padding": 0, "stem_pool": 1, "readout_pool": 2}.items():
        kw.setdefault(k, v)
    return DeployableSEWResNet(input_shape, **kw)


def sew_resnet18_128(input_shape: Sequence[int] = (2, 128, 128), **kw) -> DeployableSEWResNet:
    for k, v in {"layers": (2, 2, 2, 2), "widths": (64, 128, 256, 512), "stem_kernel": 9, "stem_stride": 4,
                 "stem_padding": 3, "stem_pool": 1, "readout_pool": "global"}.items():
        kw.setdefault(k, v)
    return DeployableSEWResNet(input_shape, **kw)
