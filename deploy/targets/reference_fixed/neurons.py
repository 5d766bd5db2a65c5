"""The neuron update of :mod:`.definition` as batched kernels over ``[B, n]``, each exact where it is chosen.

* :func:`run_steps`: the general step (any ``du``, recurrent inputs), float64 state;
* :func:`run_currents_at_once`: no current memory (``du = 4095``, no recurrent input): the currents of every
  step in one pass, then the voltage step by step;
* :func:`run_memoryless`: the same where ``|a << 6| < 2**23`` (no wrap can happen): four to six in-place passes
  per step, in float32 where :meth:`.layer.FixedLayer.state_dtype` proves it exact, the feed-forward input
  computed a chunk of steps at a time.

Each writes the layer's output per step into ``record`` ``[T, B, n]``: spikes (bool) or the voltage; and, given
``volts`` ``[T, B, n]``, the voltage after the step's reset (Lava's ``v``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neuromoco.deploy.targets.reference_fixed import arith
from neuromoco.deploy.targets.reference_fixed.layer import FixedLayer

#: the feed-forward activation of steps ``t0 .. t1 - 1`` (``[t1 - t0, B, n]``), or None: no input
StepsInput = Callable[[int, int], torch.Tensor | None]
#: the recurrent activation at step ``t`` from the layer's output at ``t - 1``, or None
RecurrentInput = Callable[[int, torch.Tensor], torch.Tensor | None]


def emit(lay: FixedLayer, v: torch.Tensor, out: torch.Tensor, volts: torch.Tensor | None = None) -> None:
    """The step's output into ``out``: spikes ``v > vth << 6`` (and their reset), or the voltage; the voltage
    after the reset into ``volts`` where given."""
    if lay.spiking:
        torch.gt(v, lay.vth, out=out)
        v.masked_fill_(out, 0)
    else:
        out.copy_(v)
    if volts is not None:
        volts.copy_(v)


def run_steps(lay: FixedLayer, ff: torch.Tensor | None, rec: RecurrentInput | None, record: torch.Tensor,
              may_wrap32: bool, volts: torch.Tensor | None = None) -> None:
    """The definition's step, batched: ``ff`` the feed-forward activation ``[T, B, n]`` (float64; None: zero),
    ``rec`` the recurrent one; ``may_wrap32=False`` where the caller bounds ``|a << 6|`` so no int32 wrap can
    happen."""
    T, B, n = record.shape
    v = lay.v0.expand(B, n).clone()  # a window starts at u = 0, v = v0
    u = torch.zeros((B, n), dtype=torch.float64, device=record.device)
    zero = torch.zeros((n,), dtype=torch.float64, device=record.device)
    for t in range(T):
        a = ff[t] if ff is not None else zero
        if lay.b0 is not None:
            a = a + lay.b0
        if t > 0:  # the recurrent input and its bias are dropped at a window's first step
            r = rec(t, record[t - 1]) if rec is not None else None
            if r is not None:
                a = a + r
            if lay.b1 is not None:
                a = a + lay.b1
        u = arith.current_update(u, a, lay.u_factor, may_wrap32=may_wrap32)
        arith.voltage_update_(v, u, lay.v_factor, lay.bias, may_wrap32=may_wrap32)
        emit(lay, v, record[t], None if volts is None else volts[t])


def run_currents_at_once(lay: FixedLayer, ff: torch.Tensor | None, record: torch.Tensor, may_wrap32: bool,
                         volts: torch.Tensor | None = None) -> None:
    """A layer with ``du = 4095`` and no recurrent input (:attr:`.layer.FixedLayer.memoryless`): the current is
    this step's input alone, computed for all steps at once (``ff`` float64 ``[T, B, n]``, None: zero)."""
    T, B, n = record.shape
    v = lay.v0.expand(B, n).clone()  # a window starts at u = 0, v = v0
    a_all = ff if ff is not None else torch.zeros((T, B, n), dtype=torch.float64, device=record.device)
    if lay.b0 is not None:
        a_all = a_all + lay.b0
    if lay.b1 is not None:
        a_all = a_all.clone()
        a_all[1:] += lay.b1
    u_all = arith.current_update(a_all, a_all, 0.0, may_wrap32=may_wrap32)  # (u not read)
    if lay.bias is not None:  # v + u + bias, added once for all steps (exact: any wrap comes after)
        u_all.add_(lay.bias)
    for t in range(T):
        arith.voltage_update_(v, u_all[t], lay.v_factor, None, may_wrap32=may_wrap32)
        emit(lay, v, record[t], None if volts is None else volts[t])


def run_memoryless(lay: FixedLayer, inputs: StepsInput, a_max: float, record: torch.Tensor, chunk_bytes: int,
                   volts: torch.Tensor | None = None) -> None:
    """A memoryless layer whose ``|a << 6|`` stays below ``2**23`` (``|a| <= a_max``): the current is ``a << 6``
    exactly (neither wrap can happen), so a step is ``v = decay(v) + (ff << 6) + bias + (b0 + b1) << 6`` then
    the saturation (skipped where :meth:`.layer.FixedLayer.voltage_bound` shows it never acts) and the spikes.

    The state is float32 when that is exact (:meth:`.layer.FixedLayer.state_dtype`): a decay by a power of two
    and sums below ``2**24``, or past it only where the saturation maps any rounding to the same value.
    ``inputs(t0, t1)`` is asked for chunks of about ``chunk_bytes`` (the products' output is used while it is in
    cache, and never all held)."""
    T, B, n = record.shape
    dtype = lay.state_dtype(a_max)
    k = lay.constants(dtype)
    v = k.v0.expand(B, n).clone()  # a window starts at u = 0, v = v0
    const = k.const0, k.const  # bias + (b0 [+ b1]) << 6, at the first step and after
    act = float(1 << arith.ACT_SHIFT)
    lo, hi = float(-arith.MAX_UV + 1), float(arith.MAX_UV - 1)
    saturates = lay.voltage_bound(act * a_max + lay.bias_max) >= hi
    chunk = max(1, chunk_bytes // (4 * B * n))
    for t0 in range(0, T, chunk):
        ff = inputs(t0, min(T, t0 + chunk))  # float32 adds into a float64 v exactly (no conversion pass)
        for t in range(t0, min(T, t0 + chunk)):
            arith.decay_(v, lay.v_factor)
            if ff is not None:
                v.add_(ff[t - t0], alpha=act)
            c = const[0] if t == 0 else const[1]
            if c is not None:
                v.add_(c)
            if saturates:
                v.clamp_(lo, hi)
            if lay.spiking:
                torch.gt(v, k.vth, out=record[t])
                v.masked_fill_(record[t], 0)
            else:
                record[t].copy_(v)
            if volts is not None:
                volts[t].copy_(v)
