"""The multi-step LIF as one autograd op in vectorised PyTorch (``fused``): exact to Norse's step, fewer passes.

Forward, per step t (Norse's ``lif_box_feed_forward_step`` in its own operation order, so the spikes are
bit-identical)::

    u[t] = v[t-1] + a * ((I[t] + v_leak) - v[t-1])      a = dt * tau_mem_inv (rounded in the input's dtype)
    z[t] = u[t] - v_th > 0                              (== u[t] > v_th in IEEE arithmetic with subnormals)
    v[t] = v_reset where z[t] else u[t]                 (Norse: (1 - z) * u + z * v_reset, the same values)

with v[-1] = v_leak. Only the pre-reset membrane ``u`` and the spikes are kept for the backward. The backward
is the reverse recurrence of Norse's autograd graph, reset path included (d v[t] / d u[t] = (1 - z) +
(v_reset - u) * s, s the surrogate at h = u - v_th), folded into one multiply-add per step::

    gu[t] = g[t] * s[t] + (1 - a) * ((1 - z[t]) + (v_reset - u[t]) * s[t]) * gu[t+1]      dI[t] = a * gu[t]

Every other pass runs over the whole sequence at once. Parameters are constants here (the project's LIF has no
trainable neuron parameters); :func:`~neuromoco.train.models.lif_kernels.lif_multistep` sends a call whose
parameters require grad to Norse's loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from norse.torch.functional.lif_box import LIFBoxParameters

from neuromoco.train.models.lif_kernels.surrogates import SURROGATES


@dataclass(frozen=True)
class LIFConstants:
    """The neuron's constants as Python floats, each already rounded to the input's dtype (as Norse's tensors)."""

    a: float  # dt * tau_mem_inv, computed in the input's dtype like Norse's ``dt * p.tau_mem_inv``
    v_leak: float
    v_th: float
    v_reset: float
    alpha: float
    method: str

    @staticmethod
    def of(p: LIFBoxParameters, dt: float, dtype: torch.dtype) -> LIFConstants:
        """The constants of Norse's parameters ``p`` (0-d tensors) as Norse's step sees them for ``dtype`` inputs."""
        def r(t: torch.Tensor | float) -> float:
            return float(torch.as_tensor(t).detach().to("cpu", dtype))

        a = float(dt * torch.as_tensor(p.tau_mem_inv).detach().to("cpu", dtype))
        return LIFConstants(a=a, v_leak=r(p.v_leak), v_th=r(p.v_th), v_reset=r(p.v_reset), alpha=r(p.alpha),
                            method=p.method)


def lif_forward(x: torch.Tensor, c: LIFConstants) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and pre-reset membranes ``u``, both ``[T, ...]`` contiguous, for input currents ``x [T, ...]``."""
    xl = x + c.v_leak if c.v_leak != 0.0 else x  # x + 0.0 == x (up to the sign of zero, which no result sees)
    u = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    spikes = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    v = torch.full(x.shape[1:], c.v_leak, dtype=x.dtype, device=x.device)
    for t in range(x.shape[0]):
        ut = u[t]
        torch.sub(xl[t], v, out=ut)
        ut.mul_(c.a)
        ut.add_(v)
        torch.gt(ut, c.v_th, out=spikes[t])
        if t + 1 < x.shape[0]:
            v = torch.where(spikes[t], c.v_reset, ut)
    return spikes.to(x.dtype), u


def lif_backward(grad: torch.Tensor, u: torch.Tensor, spikes: torch.Tensor, c: LIFConstants) -> torch.Tensor:
    """Gradient of the input currents from the spikes' gradient ``grad``, membranes ``u`` and ``spikes``."""
    surrogate = SURROGATES[c.method]
    if surrogate is None:  # heaviside: the spikes carry no gradient
        return torch.zeros_like(u)
    s = surrogate(u - c.v_th, c.alpha)
    p = torch.sub(c.v_reset, u).mul_(s).add_(1.0).sub_(spikes).mul_(1.0 - c.a)  # (1-a) * dv[t]/du[t]
    gu = torch.mul(grad, s)
    del s
    for t in range(u.shape[0] - 2, -1, -1):
        gu[t].addcmul_(gu[t + 1], p[t])
    return gu.mul_(c.a)


class FusedLIF(torch.autograd.Function):
    """``spikes = FusedLIF.apply(x, constants)``: the whole sequence in one autograd node."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
        spikes, u = lif_forward(x, c)
        ctx.save_for_backward(u, spikes)
        ctx.constants = c
        return spikes

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        u, spikes = ctx.saved_tensors
        return lif_backward(grad, u, spikes, ctx.constants), None
