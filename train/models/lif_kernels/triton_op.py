"""The multi-step LIF as two Triton kernels (``triton``): one launch per direction, the loop over T inside.

Each program owns a block of neurons and walks the sequence, keeping v (forward) or the running gradient
(backward) in registers: the same equations and operation order as :mod:`.fused` (module docstring there),
SuperSpike surrogate. Floating-point contraction is switched off at launch (``enable_fp_fusion=False``): an FMA
in ``v + a * (I - v)`` would round once where Norse's two kernels round twice, and spikes would differ.

Registered as ``torch.library`` custom ops (``neuromoco::lif_fwd``, ``neuromoco::lif_bwd``) with fake
implementations and autograd, so ``torch.compile`` traces a model through them without graph breaks. float32
only (:func:`~neuromoco.train.models.lif_kernels.lif_multistep` sends other dtypes, float16 under AMP included,
and other surrogates to ``fused``). Meant for CUDA; on CPU it runs only under Triton's interpreter
(``TRITON_INTERPRET=1``, the tests). Import this module lazily: importing Triton costs time and needs the package.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

BLOCK = 1024
DTYPES = (torch.float32,)  # Triton passes Python floats as float32: exact constants for float32 only


@triton.jit
def _lif_fwd_kernel(x_ptr, u_ptr, z_ptr, n, steps, a, v_leak, v_th, v_reset, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.full([BLOCK], v_leak, tl.float32)  # a builtin: jit helpers (tl.zeros) fail in the interpreter
    for t in range(steps):
        x = tl.load(x_ptr + t * n + offs, mask=mask, other=0.0)
        dv = a * ((x + v_leak) - v)
        u = v + dv
        z = ((u - v_th) > 0.0).to(tl.float32)  # Norse's heaviside(v - v_th), as it writes it
        tl.store(u_ptr + t * n + offs, u, mask=mask)
        tl.store(z_ptr + t * n + offs, z, mask=mask)
        v = (1.0 - z) * u + z * v_reset


@triton.jit
def _lif_bwd_kernel(g_ptr, u_ptr, z_ptr, gx_ptr, n, steps, a, v_th, v_reset, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    gnext = tl.full([BLOCK], 0.0, tl.float32)  # d loss / d u[t+1]
    for i in range(steps):
        t = steps - 1 - i
        g = tl.load(g_ptr + t * n + offs, mask=mask, other=0.0)
        u = tl.load(u_ptr + t * n + offs, mask=mask, other=0.0)
        z = tl.load(z_ptr + t * n + offs, mask=mask, other=0.0)
        q = tl.abs(u - v_th) + 1.0
        s = 1.0 / (q * q)  # SuperSpike: 1 / (|h| + 1)^2
        gu = g * s + ((1.0 - z) + (v_reset - u) * s) * ((1.0 - a) * gnext)
        tl.store(gx_ptr + t * n + offs, a * gu, mask=mask)
        gnext = gu


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


@torch.library.custom_op("neuromoco::lif_fwd", mutates_args=())
def lif_fwd(x: torch.Tensor, a: float, v_leak: float, v_th: float, v_reset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and pre-reset membranes ``[T, ...]`` of input currents ``x [T, ...]`` (float32)."""
    x = x.contiguous()
    u, z = torch.empty_like(x), torch.empty_like(x)
    steps = x.shape[0]
    n = x.numel() // max(steps, 1)
    if x.numel():
        _lif_fwd_kernel[_grid(n)](x, u, z, n, steps, a, v_leak, v_th, v_reset, BLOCK=BLOCK,
                                  enable_fp_fusion=False)
    return z, u


@lif_fwd.register_fake
def _(x: torch.Tensor, a: float, v_leak: float, v_th: float, v_reset: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(
        x, memory_format=torch.contiguous_format)


@torch.library.custom_op("neuromoco::lif_bwd", mutates_args=())
def lif_bwd(grad: torch.Tensor, u: torch.Tensor, z: torch.Tensor, a: float, v_th: float,
            v_reset: float) -> torch.Tensor:
    """Gradient of the input currents (SuperSpike surrogate, reset path included)."""
    grad = grad.contiguous()
    gx = torch.empty_like(u)
    steps = u.shape[0]
    n = u.numel() // max(steps, 1)
    if u.numel():
        _lif_bwd_kernel[_grid(n)](grad, u, z, gx, n, steps, a, v_th, v_reset, BLOCK=BLOCK, enable_fp_fusion=False)
    return gx


@lif_bwd.register_fake
def _(grad: torch.Tensor, u: torch.Tensor, z: torch.Tensor, a: float, v_th: float, v_reset: float) -> torch.Tensor:
    return torch.empty_like(u)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, a, _, v_th, v_reset = inputs
    z, u = output
    ctx.save_for_backward(u, z)
    ctx.constants = (a, v_th, v_reset)


def _backward(ctx: Any, grad_z: torch.Tensor, grad_u: torch.Tensor | None) -> tuple[Any, ...]:
    u, z = ctx.saved_tensors
    a, v_th, v_reset = ctx.constants
    return lif_bwd(grad_z, u, z, a, v_th, v_reset), None, None, None, None


torch.library.register_autograd("neuromoco::lif_fwd", _backward, setup_context=_setup_context)


def lif_triton(x: torch.Tensor, a: float, v_leak: float, v_th: float, v_reset: float) -> torch.Tensor:
    """Spikes ``[T, ...]``: the forward kernel, differentiable through the backward kernel."""
    spikes, _ = torch.ops.neuromoco.lif_fwd(x, a, v_leak, v_th, v_reset)
    out: torch.Tensor = spikes
    return out
