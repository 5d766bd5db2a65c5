"""The canonical, Loihi-mappable LIF neuron used by every model, as a multi-step module.

It is Norse's box LIF (``LIFBoxCell`` / ``lif_box_feed_forward_step``, no synaptic current, i.e. du = 1):

    v[t] = v[t-1] + dt/tau_mem * (I[t] + v_leak - v[t-1])
    s[t] = v[t] > v_th            (surrogate gradient in training: Norse's SuperSpike)
    v[t] = v_reset where s[t]

which is Loihi's CUBA neuron with du = 1, dv = dt/tau_mem and the input scaled by dt/tau_mem. NIR writes
it as ``nir.LIF(tau=tau_mem, r=1, v_leak, v_threshold, v_reset)`` with dt in the model card; the reference
executor in ``deploy/`` evaluates the same expression in the same order, so spikes match bit for bit.

The module takes a whole sequence ``[T, N, ...]`` and loops over T (multi-step mode): the stateless layers
around it run on all time steps at once, only the neuron's state is sequential.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from norse.torch.functional.lif_box import (
    LIFBoxFeedForwardState,
    LIFBoxParameters,
    lif_box_feed_forward_step,
)
from torch import nn


@dataclass(frozen=True)
class LIFConfig:
    """Hyper-parameters of the canonical LIF (defaults give dt/tau = 0.5, as Spikformer's tau = 2)."""

    tau_mem: float = 2e-3  # membrane time constant in seconds
    dt: float = 1e-3  # simulation step in seconds (stated in the model card)
    v_threshold: float = 1.0  # spike when v > v_threshold
    v_reset: float = 0.0  # reset to this value (zero: Loihi's reset)
    v_leak: float = 0.0  # resting potential
    surrogate: str = "super"  # Norse surrogate gradient method
    alpha: float = 100.0  # surrogate sharpness


class LIF(nn.Module):
    """Multi-step canonical LIF over ``[T, N, ...]`` built on Norse's ``lif_box_feed_forward_step``."""

    def __init__(self, config: LIFConfig = LIFConfig()) -> None:
        super().__init__()
        self.config = config
        self.p = LIFBoxParameters(
            tau_mem_inv=torch.as_tensor(1.0 / config.tau_mem),
            v_leak=torch.as_tensor(config.v_leak),
            v_th=torch.as_tensor(config.v_threshold),
            v_reset=torch.as_tensor(config.v_reset),
            method=config.surrogate,
            alpha=torch.as_tensor(config.alpha),
        )

    def _params_on(self, ref: torch.Tensor) -> LIFBoxParameters:
        if self.p.tau_mem_inv.device != ref.device or self.p.tau_mem_inv.dtype != ref.dtype:
            self.p = LIFBoxParameters(*(t.to(ref) if isinstance(t, torch.Tensor) else t for t in self.p))
        return self.p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: input current ``[T, N, ...]``; returns spikes of the same shape (0/1 floats)."""
        p = self._params_on(x)
        state = LIFBoxFeedForwardState(v=torch.zeros_like(x[0]) + p.v_leak)
        out = []
        for xt in x.unbind(0):  # unbind, not x[t]: indexing makes each backward step allocate a full zero tensor
            z, state = lif_box_feed_forward_step(xt, state, p, dt=self.config.dt)
            out.append(z)
        return torch.stack(out)

    def extra_repr(self) -> str:
        c = self.config
        return f"tau_mem={c.tau_mem}, dt={c.dt}, v_th={c.v_threshold}, v_reset={c.v_reset}"
