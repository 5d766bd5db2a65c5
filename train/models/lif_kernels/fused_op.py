"""The ``fused`` LIF as ``torch.library`` custom ops, for ``torch.compile``: one opaque node per direction.

Eager training calls :class:`~neuromoco.train.models.lif_kernels.fused.FusedLIF` directly (it keeps the
membranes as one-step tensors the allocator reuses). Under ``torch.compile`` dynamo would trace into that
autograd Function and unroll its loop over T into the graph: on CPU that took minutes to compile a cnn3-34 and
ran slower than eager (measured). :func:`lif_fused_compilable` is what a traced model calls instead: the same
``lif_forward`` / ``lif_backward`` (so the same spikes and gradients), the membranes stacked into one tensor for
the backward, with fake implementations so dynamo sees shapes and no graph break.
"""

from __future__ import annotations

from typing import Any

import torch

from neuromoco.train.models.lif_kernels.fused import LIFConstants, lif_backward, lif_forward


def _constants(a: float, v_leak: float, v_th: float, v_reset: float, alpha: float, method: str) -> LIFConstants:
    return LIFConstants(a=a, v_leak=v_leak, v_th=v_th, v_reset=v_reset, alpha=alpha, method=method)


@torch.library.custom_op("neuromoco::lif_fused_fwd", mutates_args=())
def lif_fused_fwd(x: torch.Tensor, a: float, v_leak: float, v_th: float, v_reset: float, alpha: float,
                  method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and pre-reset membranes ``[T, ...]`` of input currents ``x [T, ...]``."""
    spikes, u = lif_forward(x, _constants(a, v_leak, v_th, v_reset, alpha, method))
    return spikes, torch.stack(u)


@lif_fused_fwd.register_fake
def _(x: torch.Tensor, a: float, v_leak: float, v_th: float, v_reset: float, alpha: float,
      method: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.empty(x.shape, dtype=x.dtype, device=x.device),
            torch.empty(x.shape, dtype=x.dtype, device=x.device))


@torch.library.custom_op("neuromoco::lif_fused_bwd", mutates_args=())
def lif_fused_bwd(grad: torch.Tensor, u: torch.Tensor, spikes: torch.Tensor, a: float, v_leak: float, v_th: float,
                  v_reset: float, alpha: float, method: str) -> torch.Tensor:
    """Gradient of the input currents from the spikes' gradient (the fused op's reverse recurrence)."""
    return lif_backward(grad, u.unbind(0), spikes, _constants(a, v_leak, v_th, v_reset, alpha, method))


@lif_fused_bwd.register_fake
def _(grad: torch.Tensor, u: torch.Tensor, spikes: torch.Tensor, a: float, v_leak: float, v_th: float,
      v_reset: float, alpha: float, method: str) -> torch.Tensor:
    return torch.empty(u.shape, dtype=u.dtype, device=u.device)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    spikes, u = output
    ctx.save_for_backward(u, spikes)
    ctx.constants = inputs[1:]


def _backward(ctx: Any, grad_z: torch.Tensor, grad_u: torch.Tensor | None) -> tuple[Any, ...]:
    u, spikes = ctx.saved_tensors
    return (torch.ops.neuromoco.lif_fused_bwd(grad_z.contiguous(), u, spikes, *ctx.constants),
            None, None, None, None, None, None)


torch.library.register_autograd("neuromoco::lif_fused_fwd", _backward, setup_context=_setup_context)


def lif_fused_compilable(x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
    """Spikes ``[T, ...]`` through the custom ops (what a model traced by ``torch.compile`` runs)."""
    spikes, _ = torch.ops.neuromoco.lif_fused_fwd(x, c.a, c.v_leak, c.v_th, c.v_reset, c.alpha, c.method)
    out: torch.Tensor = spikes
    return out
