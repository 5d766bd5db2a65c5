"""Stateless layers in multi-step form: ``[T, B, ...]`` in, ``[T, B, ...]`` out, all time steps at once."""

from __future__ import annotations

from typing import Any

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


class _SumPool2x2(torch.autograd.Function):
    """2x2 stride-2 sum pooling as four strided adds, with a one-copy backward.

    On CPU ``avg_pool2d(divisor_override=1)`` and its backward (which zero-fills, then scatters) took a fifth of
    a cnn3-34 training step (torch.profiler); this is about 2.5x faster forward. The sum runs in the order
    ``avg_pool2d`` accumulates a window (row by row), so float32/float64 results are bit-identical (tested on
    random floats, not only spikes); odd sizes drop the last row/column as the pooling does.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        ctx.in_shape = x.shape
        return ((x[..., 0:h:2, 0:w:2] + x[..., 0:h:2, 1:w:2]) + x[..., 1:h:2, 0:w:2]) + x[..., 1:h:2, 1:w:2]

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        shape = ctx.in_shape
        h, w = g.shape[-2:]
        gx = g.repeat_interleave(2, -1).repeat_interleave(2, -2)  # faster on CPU than expand + reshape (measured)
        if (2 * h, 2 * w) != tuple(shape[-2:]):  # odd sizes: the dropped row/column gets no gradient
            gx = nn.functional.pad(gx, (0, shape[-1] - 2 * w, 0, shape[-2] - 2 * h))
        return gx


class _NativeSumPool2x2(torch.autograd.Function):
    """:class:`_SumPool2x2` in the native C library (one pass each way, the same sums in the same order)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        from neuromoco.train.models.lif_kernels.native import native_sum_pool

        ctx.in_shape = x.shape
        return native_sum_pool(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        from neuromoco.train.models.lif_kernels.native import native_sum_pool_backward

        return native_sum_pool_backward(g, ctx.in_shape)


def _native_pooling(x: torch.Tensor) -> bool:
    """Whether the native library pools ``x`` (a CPU float32/float64 tensor, the library built), outside tracing."""
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    from neuromoco.train.models.lif_kernels import native

    return native.available()


class SumPool2d(nn.Module):
    """Sum pooling (NIR's SumPool2d): average pooling times the window area, exact for spike counts.

    The common 2x2 window, stride 2, no padding, in float32/float64 runs in the native C library on CPU where it is
    built (:mod:`~neuromoco.train.models.lif_kernels.native`), else as :class:`_SumPool2x2` (the same values, faster
    than ``avg_pool2d`` on CPU); anything else through ``avg_pool2d``.
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size = nn.modules.utils._pair(kernel_size)
        self.stride = nn.modules.utils._pair(stride if stride is not None else kernel_size)
        self.padding = nn.modules.utils._pair(padding)

    @property
    def is_fast_2x2(self) -> bool:
        """The common 2x2 window, stride 2, no padding (the fast paths' case)."""
        return self.kernel_size == (2, 2) and self.stride == (2, 2) and self.padding == (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_fast_2x2 and x.dim() >= 3 and x.dtype in (torch.float32, torch.float64):
            out: torch.Tensor = (_NativeSumPool2x2 if _native_pooling(x) else _SumPool2x2).apply(x)
            return out
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
