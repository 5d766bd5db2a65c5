"""The canonical, Loihi-mappable LIF neuron used by every model, as a multi-step module.

It is Norse's box LIF (``LIFBoxCell`` / ``lif_box_feed_forward_step``, no synaptic current, i.e. du = 1):

    v[t] = v[t-1] + dt/tau_mem * (I[t] + v_leak - v[t-1])
    s[t] = v[t] > v_th            (surrogate gradient in training: Norse's SuperSpike)
    v[t] = v_reset where s[t]

which is Loihi's CUBA neuron with du = 1, dv = dt/tau_mem and the input scaled by dt/tau_mem. NIR writes
it as ``nir.LIF(tau=tau_mem, r=1, v_leak, v_threshold, v_reset)`` with dt in the model card; the reference
executor in ``deploy/`` evaluates the same expression in the same order, so spikes match bit for bit.

The module takes a whole sequence ``[T, N, ...]`` (multi-step mode): the stateless layers around it run on all
time steps at once, only the neuron's state is sequential. ``LIFConfig.impl`` picks how the sequence is computed
(:mod:`neuromoco.train.models.lif_kernels`): Norse's step in a loop (the definition), one fused op with its own
backward, C loops built at first use on CPU, or Triton kernels on CUDA, which give the same spikes bit for bit and
the same gradients to rounding; ``auto`` is the fastest exact one for the device. :func:`set_lif_impl` sets it on
a built model (the train commands' ``--lif-impl``); it changes no weight, no state dict and no export.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from norse.torch.functional.lif_box import LIFBoxParameters
from torch import nn

from neuromoco.train.models.lif_kernels import IMPLS, fused_constants, lif_multistep, resolve_impl

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


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
    impl: str = "auto"  # how the sequence is computed: auto, norse, fused, native, triton (lif_kernels.IMPLS)


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
        # the fused kernels' constants per input dtype, computed here so that torch.compile traces no .item()
        self._constants = {dtype: fused_constants(self.p, config.dt, dtype) for dtype in FLOAT_DTYPES}

    def _params_on(self, ref: torch.Tensor) -> LIFBoxParameters:
        if self.p.tau_mem_inv.device != ref.device or self.p.tau_mem_inv.dtype != ref.dtype:
            self.p = LIFBoxParameters(*(t.to(ref) if isinstance(t, torch.Tensor) else t for t in self.p))
        return self.p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: input current ``[T, N, ...]``; returns spikes of the same shape (0/1 floats)."""
        impl = resolve_impl(self.config.impl, x.device)
        if impl == "norse":
            return lif_multistep(x, self._params_on(x), self.config.dt, "norse")
        constants = self._constants.get(x.dtype)
        p = self._params_on(x) if constants is None else self.p
        return lif_multistep(x, p, self.config.dt, impl, constants)

    def forward_pooled(self, x: torch.Tensor, pool: nn.Module) -> torch.Tensor | None:
        """This LIF followed by ``pool`` as one native op (the full-size spikes never written), or None where that
        op does not apply: ``pool`` is not a 2x2 stride-2 :class:`SumPool2d`, ``x`` is not ``[T, B, C, H, W]`` on
        CPU in float32/float64 with SuperSpike, the implementation is not ``native`` (``auto`` on CPU where the
        library is built), a hook watches either module, or ``torch.compile`` is tracing. The result is what
        ``pool(self(x))`` gives, gradients included."""
        from neuromoco.train.models.layers import SumPool2d

        if (not isinstance(pool, SumPool2d) or not pool.is_fast_2x2 or x.dim() != 5 or x.device.type != "cpu"
                or torch.compiler.is_compiling() or _hooked(self) or _hooked(pool)):
            return None
        constants = self._constants.get(x.dtype)
        if constants is None or resolve_impl(self.config.impl, x.device) != "native":
            return None
        from neuromoco.train.models.lif_kernels.native import NativeLIFSumPool, serves

        if not serves(x, constants):
            return None
        t, b, c, h, w = x.shape
        out: torch.Tensor = NativeLIFSumPool.apply(x.reshape(t, b * c, h, w), constants)
        return out.reshape(t, b, c, h // 2, w // 2)

    def extra_repr(self) -> str:
        c = self.config
        return f"tau_mem={c.tau_mem}, dt={c.dt}, v_th={c.v_threshold}, v_reset={c.v_reset}"


def _hooked(m: nn.Module) -> bool:
    """Whether a forward hook (the module's own or a global one) would expect to see this module run."""
    from torch.nn.modules import module as torch_module

    return bool(m._forward_hooks or m._forward_pre_hooks or torch_module._global_forward_hooks
                or torch_module._global_forward_pre_hooks)


def set_lif_impl(model: nn.Module, impl: str) -> int:
    """Compute every LIF of ``model`` with ``impl`` (auto, norse, fused, native, triton); returns how many it set."""
    if impl not in IMPLS:
        raise ValueError(f"unknown LIF implementation {impl!r}: choose one of {', '.join(IMPLS)}")
    count = 0
    for m in model.modules():
        if isinstance(m, LIF):
            m.config = replace(m.config, impl=impl)
            count += 1
    return count
