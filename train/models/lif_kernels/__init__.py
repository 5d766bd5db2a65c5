"""Implementations of the multi-step canonical LIF over ``[T, N, ...]``, all exact to Norse's step.

* ``norse``: the definition, a loop over T of Norse's ``lif_box_feed_forward_step`` (one autograd graph per step).
* ``fused``: one autograd op in vectorised PyTorch (:mod:`.fused`), the same float arithmetic forward, the
  reverse recurrence backward; CPU's ``auto`` where no C compiler is found, and the form ``torch.compile`` traces.
* ``native``: the same recurrences as two C loops (:mod:`.native`), one pass over memory per direction, built at
  first use with the system's C compiler; CPU, float32/float64, SuperSpike (or heaviside); anything else goes to
  ``fused``. The fastest exact implementation measured on CPU (benchmarks/lif_kernels.py).
* ``triton``: two Triton kernels, one launch per direction with the loop over T inside (:mod:`.triton_op`),
  registered as ``torch.library`` ops; CUDA only (on CPU under ``TRITON_INTERPRET=1``, for the tests); float32
  and the SuperSpike surrogate, anything else goes to ``fused``.

``auto`` picks ``native`` on CPU (``fused`` where the library cannot be built) and ``fused`` on CUDA: the Triton
kernels are tested here only through Triton's interpreter, and become CUDA's ``auto`` once a GPU run has confirmed
their spikes and timed them. Under ``torch.compile`` every implementation but ``norse`` and ``triton`` runs as the
``fused`` custom op (one opaque node for dynamo).
:func:`lif_multistep` sends any call it cannot serve exactly (a neuron parameter that requires grad, a surrogate
the fused op does not know) to Norse's loop.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step

from neuromoco.train.models.lif_kernels.fused import FusedLIF, LIFConstants
from neuromoco.train.models.lif_kernels.surrogates import SURROGATES

IMPLS = ("auto", "norse", "fused", "native", "triton")


def resolve_impl(impl: str, device: torch.device | str) -> str:
    """The concrete implementation ``impl`` means on ``device`` (``auto``: the fastest exact one there)."""
    if impl not in IMPLS:
        raise ValueError(f"unknown LIF implementation {impl!r}: choose one of {', '.join(IMPLS)}")
    if impl == "triton":
        if torch.device(device).type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("--lif-impl triton runs on CUDA only (on CPU: TRITON_INTERPRET=1, for tests); "
                             "use auto, fused or norse")
        if importlib.util.find_spec("triton") is None:
            raise ValueError("--lif-impl triton needs the triton package (installed with CUDA builds of torch)")
    if impl in ("auto", "native") and torch.compiler.is_compiling():
        return "fused"  # what a traced model runs (the fused custom op); the library was checked before tracing
    if impl == "native":
        from neuromoco.train.models.lif_kernels import native

        if torch.device(device).type != "cpu":
            raise ValueError("--lif-impl native runs on CPU only; use auto, fused or norse (or triton on CUDA)")
        why = native.unavailable_reason()
        if why is not None:
            raise ValueError(f"--lif-impl native: {why}; use auto, fused or norse")
    if impl == "auto":
        if torch.device(device).type == "cpu":
            from neuromoco.train.models.lif_kernels import native

            return "native" if native.available() else "fused"
        return "fused"
    return impl


def norse_loop(x: torch.Tensor, p: LIFBoxParameters, dt: float) -> torch.Tensor:
    """The definition: Norse's step over T from v = v_leak; spikes ``[T, N, ...]``."""
    state = LIFBoxFeedForwardState(v=torch.zeros_like(x[0]) + p.v_leak)
    out = []
    for xt in x.unbind(0):  # unbind, not x[t]: indexing makes each backward step allocate a full zero tensor
        z, state = lif_box_feed_forward_step(xt, state, p, dt=dt)
        out.append(z)
    return torch.stack(out)


def fused_constants(p: LIFBoxParameters, dt: float, dtype: torch.dtype) -> LIFConstants | None:
    """The fused op's constants for ``p``, or None where only Norse's loop is exact (a parameter that requires
    grad, a surrogate or reset the fused op does not know)."""
    params = (p.tau_mem_inv, p.v_leak, p.v_th, p.v_reset, p.alpha)
    if (p.method not in SURROGATES or getattr(p.reset_method, "__name__", "") != "reset_value"
            or any(isinstance(t, torch.Tensor) and t.requires_grad for t in params)):
        return None
    return LIFConstants.of(p, dt, dtype)


def lif_multistep(x: torch.Tensor, p: LIFBoxParameters, dt: float, impl: str = "auto",
                  constants: LIFConstants | None = None) -> torch.Tensor:
    """Spikes of the canonical LIF for input currents ``x [T, N, ...]``.

    ``p`` as Norse's step takes it (on x's device and dtype for ``norse``); ``constants``: the fused op's, when
    the caller has them cached (else computed from ``p``).
    """
    impl = resolve_impl(impl, x.device)
    c = constants if constants is not None else (fused_constants(p, dt, x.dtype) if impl != "norse" else None)
    if impl == "norse" or c is None:
        return norse_loop(x, p, dt)
    if impl == "triton" and x.dtype == torch.float32 and c.method == "super":
        from neuromoco.train.models.lif_kernels.triton_op import lif_triton

        return lif_triton(x, c.a, c.v_leak, c.v_th, c.v_reset)
    if impl == "native" and not torch.compiler.is_compiling():
        from neuromoco.train.models.lif_kernels.native import NativeLIF, serves

        if serves(x, c):
            spikes: torch.Tensor = NativeLIF.apply(x, c)
            return spikes
    if torch.compiler.is_compiling():  # one opaque custom op for dynamo instead of the unrolled loop over T
        from neuromoco.train.models.lif_kernels.fused_op import lif_fused_compilable

        return lif_fused_compilable(x, c)
    out: torch.Tensor = FusedLIF.apply(x, c)
    return out
