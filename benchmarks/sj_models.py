"""The project's benchmark networks rebuilt from SpikingJelly's multi-step modules, for spikingjelly_compare.py.

Each builder mirrors one registry model layer for layer and in the same module order, so the two state dicts
line up and :func:`copy_weights` can give the SpikingJelly network the project's weights: stateless layers are
``spikingjelly.activation_based.layer`` modules with ``step_mode='m'``, neurons ``neuron.LIFNode(tau=2.0,
decay_input=True, v_reset=0.0, detach_reset=False, step_mode='m')`` (``v += (x - v) / 2``, hard reset to 0:
the project's LIF with dt/tau = 0.5), sum pooling ``layer.AvgPool2d(2, divisor_override=1)``. Only the glue
that is no layer (SEW's ADD, Spikformer's attention products) is plain torch, written as the project writes it.

SpikingJelly fires at ``v >= v_th``, Norse at ``v > v_th``. Spikformer's attention neuron (threshold 0.5) gets
inputs that are multiples of 1/8, so membranes land exactly on the threshold and the two would differ. Every
SpikingJelly neuron here therefore gets the next float32 above the project's threshold, with which ``v >= th'``
is ``v > th`` for every float32 ``v``: the same neuron, at no cost.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def next_float32_above(v: float) -> float:
    """The smallest float32 greater than ``v`` (as a Python float, exactly representable)."""
    t = torch.tensor(v, dtype=torch.float32)
    return float(torch.nextafter(t, torch.tensor(float("inf"), dtype=torch.float32)))


def _lif(surrogate_fn: Any, v_threshold: float = 1.0) -> nn.Module:
    from spikingjelly.activation_based import neuron

    # SpikingJelly 2.0 dropped LIFNode's ``backend`` argument (its dispatch picks the kernel); 0.0.0.0.14 has it
    backend = {"backend": "torch"} if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters else {}
    return neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=next_float32_above(v_threshold), v_reset=0.0,
                          surrogate_function=surrogate_fn, detach_reset=False, step_mode="m", **backend)


class SJClassifier(nn.Module):
    """Encoder + ``Linear`` readout per step, logits = mean over T (as the project's ``SpikingClassifier``)."""

    def __init__(self, encoder: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer

        self.encoder = encoder
        self.head = layer.Linear(features, num_classes, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)).mean(0)


def sj_cnn3_34(surrogate_fn: Any, num_classes: int = 10, channels=(16, 32, 32), input_shape=(2, 34, 34)) -> nn.Module:
    """cnn3-34: conv3x3 (no bias) - BN - LIF - 2x2 sum pooling for 16-32-32 channels, flatten, readout."""
    from spikingjelly.activation_based import layer

    c, h, w = input_shape
    mods: list[nn.Module] = []
    for out in channels:
        mods += [layer.Conv2d(c, out, 3, padding=1, bias=False, step_mode="m"),
                 layer.BatchNorm2d(out, step_mode="m"), _lif(surrogate_fn),
                 layer.AvgPool2d(2, divisor_override=1, step_mode="m")]
        c, h, w = out, h // 2, w // 2
    mods.append(layer.Flatten(step_mode="m"))
    return SJClassifier(nn.Sequential(*mods), c * h * w, num_classes)


class _Add(nn.Module):
    """SEW's ADD connect function: ``body(x) + shortcut(x)`` (``x`` itself without a shortcut)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None) -> list[nn.Module]:
    from spikingjelly.activation_based import layer

    p = k // 2 if padding is None else padding
    return [layer.Conv2d(cin, cout, k, stride, p, bias=False, step_mode="m"), layer.BatchNorm2d(cout, step_mode="m")]


def sj_sew_resnet8_34(surrogate_fn: Any, num_classes: int = 10, input_shape=(2, 34, 34)) -> nn.Module:
    """sew-resnet8-34: 4x4 stride-2 stem conv-BN-LIF, SEW blocks 16-32-64 (ADD), 2x2 sum pooling, readout."""
    from spikingjelly.activation_based import layer

    c, h, _ = input_shape
    stem = nn.Sequential(*_conv_bn(c, 16, 4, 2, 0), _lif(surrogate_fn))
    h = (h - 4) // 2 + 1
    blocks: list[nn.Module] = []
    cin = 16
    for i, width in enumerate((16, 32, 64)):
        stride = 2 if i > 0 else 1
        body = nn.Sequential(*_conv_bn(cin, width, 3, stride), _lif(surrogate_fn), *_conv_bn(width, width, 3),
                             _lif(surrogate_fn))
        shortcut = (nn.Sequential(*_conv_bn(cin, width, 1, stride, 0), _lif(surrogate_fn))
                    if stride != 1 or cin != width else None)
        blocks.append(_Add(body, shortcut))
        cin, h = width, (h + 2 - 3) // stride + 1
    head = nn.Sequential(layer.AvgPool2d(2, divisor_override=1, step_mode="m"), layer.Flatten(step_mode="m"))
    h //= 2
    return SJClassifier(nn.Sequential(stem, nn.Sequential(*blocks), head), cin * h * h, num_classes)


class _SPS(nn.Module):
    def __init__(self, cin: int, dim: int, surrogate_fn: Any, stages: int = 4) -> None:
        super().__init__()
        from spikingjelly.activation_based import layer

        mods: list[nn.Module] = []
        for i in range(stages):
            width = dim // 2 ** (stages - 1 - i)
            mods += [*_conv_bn(cin, width, 3), _lif(surrogate_fn), layer.MaxPool2d(3, 2, 1, step_mode="m")]
            cin = width
        self.proj = nn.Sequential(*mods)
        self.rpe = nn.Sequential(*_conv_bn(dim, dim, 3), _lif(surrogate_fn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return (x + self.rpe(x)).flatten(3)


def _conv1d_bn(dim: int, out: int, surrogate_fn: Any) -> list[nn.Module]:
    from spikingjelly.activation_based import layer

    return [layer.Conv1d(dim, out, 1, step_mode="m"), layer.BatchNorm1d(out, step_mode="m"), _lif(surrogate_fn)]


class _SSA(nn.Module):
    def __init__(self, dim: int, heads: int, surrogate_fn: Any, scale: float = 0.125) -> None:
        super().__init__()
        self.heads, self.scale = heads, scale
        self.q = nn.Sequential(*_conv1d_bn(dim, dim, surrogate_fn))
        self.k = nn.Sequential(*_conv1d_bn(dim, dim, surrogate_fn))
        self.v = nn.Sequential(*_conv1d_bn(dim, dim, surrogate_fn))
        self.attn_lif = _lif(surrogate_fn, 0.5)
        self.proj = nn.Sequential(*_conv1d_bn(dim, dim, surrogate_fn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, d, n = x.shape
        h = self.heads

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.transpose(-1, -2).reshape(t, b, n, h, d // h).permute(0, 1, 3, 2, 4)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        y = (q @ k.transpose(-2, -1)) @ v * self.scale
        y = y.permute(0, 1, 3, 2, 4).reshape(t, b, n, d).transpose(-1, -2)
        return self.proj(self.attn_lif(y.contiguous()))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, surrogate_fn: Any) -> None:
        super().__init__()
        self.attn = _SSA(dim, heads, surrogate_fn)
        self.mlp = nn.Sequential(*_conv1d_bn(dim, 4 * dim, surrogate_fn), *_conv1d_bn(4 * dim, dim, surrogate_fn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class _Spikformer(nn.Module):
    def __init__(self, cin: int, dim: int, depth: int, heads: int, surrogate_fn: Any) -> None:
        super().__init__()
        self.sps = _SPS(cin, dim, surrogate_fn)
        self.blocks = nn.ModuleList(_Block(dim, heads, surrogate_fn) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sps(x)
        for blk in self.blocks:
            x = blk(x)
        return x.mean(-1)


def sj_spikformer_2_256(surrogate_fn: Any, num_classes: int = 10, input_shape=(2, 34, 34)) -> nn.Module:
    """spikformer-2-256: SPS (32-64-128-256, max pooling) + RPE, two SSA + MLP blocks, token mean, readout."""
    return SJClassifier(_Spikformer(input_shape[0], 256, 2, 16, surrogate_fn), 256, num_classes)


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cnn3-34": sj_cnn3_34,
    "sew-resnet8-34": sj_sew_resnet8_34,
    "spikformer-2-256": sj_spikformer_2_256,
}


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and BatchNorm buffers in module order (the two state dicts have the same layout)."""
    a, b = src.state_dict(), dst.state_dict()
    if [v.shape for v in a.values()] != [v.shape for v in b.values()]:
        raise AssertionError(f"state dicts differ: {list(a)} vs {list(b)}")
    dst.load_state_dict(dict(zip(b, (v.clone() for v in a.values()), strict=True)))
