"""Stateless layers in multi-step form: ``[T, B, ...]`` in, ``[T, B, ...]`` out, all time steps at once."""

from __future__ import annotations

import torch
from torch import nn


class TimeDistributed(nn.Module):
    """Apply a stateless module to every time step by folding T into the batch: ``[T,B,...] -> [T*B,...]``.

    BatchNorm inside therefore normalises over time steps and samples together (as in tdBN / SpikingJelly's
    multi-step mode). The NIR exporter unwraps it and exports ``module`` itself.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = self.module(x.reshape(t * b, *x.shape[2:]))
        return y.reshape(t, b, *y.shape[1:])


class SumPool2d(nn.Module):
    """Sum pooling (NIR's SumPool2d): average pooling times the window area, exact for spike counts."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size = nn.modules.utils._pair(kernel_size)
        self.stride = nn.modules.utils._pair(stride if stride is not None else kernel_size)
        self.padding = nn.modules.utils._pair(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                                        count_include_pad=True, divisor_override=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Residual(nn.Module):
    """SEW-ResNet's ADD connection in multi-step form: ``body(x) + shortcut(x)`` (``x`` itself without a shortcut).

    Both branches see the same ``[T, B, ...]`` input, and their outputs (spike tensors in a SEW block) are
    summed. The NIR exporter opens it into two paths whose last nodes both feed the next node: NIR adds up
    the edges into a node, so the ADD needs no node of its own.
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
