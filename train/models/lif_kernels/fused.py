"""The multi-step LIF as one autograd op in vectorised PyTorch (``fused``): exact to Norse's step, fewer passes.

Forward, per step t (Norse's ``lif_box_feed_forward_step`` in its own operation order, so the spikes are
bit-identical)::

    u[t] = v[t-1] + a * ((I[t] + v_leak) - v[t-1])      a = dt * tau_mem_inv (rounded in the input's dtype)
    z[t] = u[t] > v_th                                  (Norse: u - v_th > 0, the same in IEEE arithmetic)
    v[t] = (1 - z[t]) * u[t] + z[t] * v_reset           (Norse's reset_value)

with v[-1] = v_leak. Only the pre-reset membrane ``u`` and the spikes are kept for the backward, which is the
reverse recurrence of Norse's autograd graph, reset path included (d v[t] / d u[t] = (1 - z) + (v_reset - u) s,
s the surrogate at h = u - v_th), one multiply-add per step::

    gu[t] = g[t] s[t] + (1 - a) ((1 - z[t]) + (v_reset - u[t]) s[t]) gu[t+1]          dI[t] = a gu[t]

The neuron's parameters are constants here (the project's LIF trains none);
:func:`~neuromoco.train.models.lif_kernels.lif_multistep` sends a call whose parameters require grad to Norse's
loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from norse.torch.functional.lif_box import LIFBoxParameters

from neuromoco.train.models.lif_kernels.surrogates import SURROGATE_DENOMINATORS, SURROGATES


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


def lif_forward(x: torch.Tensor, c: LIFConstants) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Spikes ``[T, ...]`` (contiguous) and the pre-reset membranes ``u``, one tensor per step, for input currents
    ``x [T, ...]``.

    Only arithmetic kernels, no boolean masks: on CPU ``torch.where``/``masked_fill`` and bool<->float casts
    cost 5-30x a vectorised ``sub`` (measured, 1M float32). The spikes come from ``torch.gt(..., out=float)``;
    the reset gives the values of Norse's ``(1 - z) * u + z * v_reset`` (``u * z`` and ``z * v_reset`` are exact
    for z in {0, 1}). ``u`` is kept
    as one-step tensors: the allocator reuses those, while a fresh sequence-sized buffer costs its first touch
    (page faults, about ten vectorised passes' worth on CPU, measured).
    """
    xl = x + c.v_leak if c.v_leak != 0.0 else x  # x + 0.0 == x (up to the sign of zero, which no result sees)
    u: list[torch.Tensor] = []
    spikes = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    v = torch.full(x.shape[1:], c.v_leak, dtype=x.dtype, device=x.device)
    for t in range(x.shape[0]):
        zt = spikes[t]
        ut = torch.sub(xl[t], v)
        u.append(ut)
        ut.mul_(c.a)
        ut.add_(v)
        torch.gt(ut, c.v_th, out=zt)  # u - v_th > 0 <=> u > v_th (IEEE subtraction with subnormals is exact at 0)
        if t + 1 < x.shape[0]:  # u - u z: the values of Norse's (1 - z) u, in one kernel (u z is exact)
            torch.addcmul(ut, ut, zt, value=-1.0, out=v)
            if c.v_reset != 0.0:
                v.add_(zt, alpha=c.v_reset)
    return spikes, u


def lif_backward(grad: torch.Tensor, u: Sequence[torch.Tensor], spikes: torch.Tensor,
                 c: LIFConstants) -> torch.Tensor:
    """Gradient of the input currents from the spikes' gradient ``grad``, membranes ``u`` (per step) and ``spikes``.

    Step by step from the last, in two one-step buffers reused throughout: the only sequence-sized allocation is
    the result.
    """
    surrogate = SURROGATES[c.method]
    gx = torch.zeros_like(spikes) if surrogate is None else torch.empty_like(spikes)
    if surrogate is None:  # heaviside: the spikes carry no gradient
        return gx
    denominator = SURROGATE_DENOMINATORS.get(c.method)  # s = 1 / d: divide, as Norse does, one kernel less
    h, p = torch.empty_like(u[0]), torch.empty_like(u[0])
    r = torch.empty_like(u[0]) if c.v_reset != 0.0 else None
    product, product_ = (torch.mul, p.addcmul_) if denominator is None else (torch.div, p.addcdiv_)
    steps = len(u)
    for t in range(steps - 1, -1, -1):
        torch.sub(u[t], c.v_th, out=h)
        s = surrogate(h, c.alpha) if denominator is None else denominator(h, c.alpha)
        product(grad[t], s, out=gx[t])  # the spike's own gradient through the surrogate
        if t + 1 < steps:  # plus the next step's, through v[t] = (1 - z) u + z v_reset: dv/du = 1 - z + (v_reset - u) s
            torch.sub(1.0, spikes[t], out=p)
            if r is None:
                product_(u[t], s, value=-1.0)
            else:
                product_(torch.sub(c.v_reset, u[t], out=r), s)
            gx[t].addcmul_(gx[t + 1], p, value=1.0 - c.a)
    return gx.mul_(c.a)


class FusedLIF(torch.autograd.Function):
    """``spikes = FusedLIF.apply(x, constants)``: the whole sequence in one autograd node."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: LIFConstants) -> torch.Tensor:
        spikes, u = lif_forward(x, c)
        ctx.save_for_backward(spikes, *u)
        ctx.constants = c
        return spikes

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        spikes, *u = ctx.saved_tensors
        return lif_backward(grad, u, spikes, ctx.constants), None
