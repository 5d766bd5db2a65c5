"""Deployable spiking CNNs: stages of conv - BatchNorm - LIF - pooling, then flatten.

Built only from operators that NIR (and so every deploy target) expresses: ``nn.Conv2d`` (no bias: the
BatchNorm after it carries the offset, and is folded into the conv at export), ``nn.BatchNorm2d``, the
canonical :class:`~neuromoco.train.models.neurons.LIF`, ``SumPool2d`` (default: spike counts stay integers, which suits
fixed-point targets) or ``nn.AvgPool2d``, and ``nn.Flatten``. The encoder's features are the flattened spikes
of the last stage, pooled: ``[T, B, C_last * h * w]``.

Two sizes, named by stage count and input size (one conv per stage: not VGG's stacked convs):

* ``cnn3-34``  — 34x34 input (N-MNIST, the embedded dataset): 3 stages of 16-32-32 channels, 34 -> 17 -> 8 -> 4,
  512 features; about 14k encoder parameters, trains on a 2-core CPU in minutes.
* ``cnn5-128`` — 128x128 input (DVS128 Gesture, CIFAR10-DVS, N-Caltech101 resized): 5 stages of
  16-32-64-128-128 channels, 128 -> 4, 2048 features.

Their earlier names ``vgg34`` and ``vgg128`` stay accepted as aliases (old checkpoints and cards carry them).

And one for inputs without useful 2-D structure:

* ``mlp2-256`` — flatten, two linear-BN-LIF blocks of 256: 1-D sensors (SHD-style audio spikes framed as
  ``[P, 1, W]``) or any small input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neuromoco.train.models.base import SpikingEncoder, run_multistep
from neuromoco.train.models.layers import SumPool2d, TimeDistributed
from neuromoco.train.models.neurons import LIF, LIFConfig


class DeployableCNN(SpikingEncoder):
    deployable = True

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (16, 32, 32), kernel_size: int = 3,
                 pool: str = "sum", lif: LIFConfig | None = None) -> None:
        super().__init__()
        if pool not in ("sum", "avg"):
            raise ValueError(f"pool must be 'sum' or 'avg', not {pool!r}")
        c, h, w = (int(v) for v in input_shape)
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2, bias=False),
                       nn.BatchNorm2d(out), LIF(lif or LIFConfig()),
                       SumPool2d(2) if pool == "sum" else nn.AvgPool2d(2)]
            c, h, w = out, h // 2, w // 2
            if h < 1 or w < 1:
                raise ValueError(f"input {list(input_shape)} is too small for {len(channels)} pooling stages")
        layers.append(nn.Flatten())
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.feature_shape = (c, h, w)
        self.feature_dim = c * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_multistep(self.layers, x)

    def deploy_modules(self) -> list[nn.Module]:
        return [m if isinstance(m, LIF) else TimeDistributed(m) for m in self.layers]


def cnn3_34(input_shape: Sequence[int] = (2, 34, 34), **kw) -> DeployableCNN:
    kw.setdefault("channels", (16, 32, 32))
    return DeployableCNN(input_shape, **kw)


def cnn5_128(input_shape: Sequence[int] = (2, 128, 128), **kw) -> DeployableCNN:
    kw.setdefault("channels", (16, 32, 64, 128, 128))
    return DeployableCNN(input_shape, **kw)


class DeployableMLP(SpikingEncoder):
    """Flatten, then blocks of linear (no bias) - BatchNorm - LIF: for inputs with no useful 2-D structure.

    A 1-D sensor (SHD's 700 cochlea channels, framed as ``[P, 1, W]``) or any small input: every operator
    has an exact NIR form (BatchNorm is folded into the linear layer at export), so it deploys like the CNNs.
    """

    deployable = True

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (256, 256),
                 lif: LIFConfig | None = None) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("an MLP needs at least one hidden layer")
        width = 1
        for v in input_shape:
            width *= int(v)
        layers: list[nn.Module] = [nn.Flatten()]
        for out in hidden:
            layers += [nn.Linear(width, int(out), bias=False), nn.BatchNorm1d(int(out)), LIF(lif or LIFConfig())]
            width = int(out)
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.feature_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_multistep(self.layers, x)

    def deploy_modules(self) -> list[nn.Module]:
        return [m if isinstance(m, LIF) else TimeDistributed(m) for m in self.layers]


def mlp2_256(input_shape: Sequence[int] = (2, 34, 34), **kw) -> DeployableMLP:
    kw.setdefault("hidden", (256, 256))
    return DeployableMLP(input_shape, **kw)
