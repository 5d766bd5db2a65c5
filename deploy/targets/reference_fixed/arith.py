"""Loihi 2 fixed-point primitives exactly as Lava 0.10's bit-accurate process models compute them.

Each function names the Lava code it reproduces (``lava/proc/{dense,sparse,lif}/models.py``,
``lava/utils/weightutils.py``, and the project's ``NirNeuron`` in :mod:`neuromoco.deploy.targets.lava.processes`,
which calls Lava's own ``subthr_dynamics``). Tensors hold the integers Lava keeps in int32 (float64 for the neuron
state, which holds every value here exactly; see below):

* synapse (``Dense`` / ``Sparse``, ``*BitAcc`` models): weights clipped to 8 bits by sign mode and, in
  mixed-sign mode, their lowest bit dropped (``(w >> 1) << 1``: floor, so ``-1 -> -2``); the int32 dot
  product (wraps at 2**31), then ``<< weight_exp`` (int32, wraps) or ``>> -weight_exp`` (arithmetic:
  rounds towards minus infinity);
* current: ``u * (4096 - (du + 1))`` shifted right by 12 *on the magnitude* (rounds towards zero), plus
  ``a << 6`` in int32, then Lava's one-sided 24-bit wrap (``> 2**23``: minus ``2**24``; ``<= -2**23``: plus
  ``2**24``; so ``2**23`` itself stays);
* voltage: ``v * (4096 - dv)`` likewise, plus ``u`` plus ``bias_mant << bias_exp`` (``>>`` for a negative
  exponent), saturated to ``[-(2**23 - 1), 2**23 - 1]``;
* spike: ``v > vth << 6``; reset: ``v = 0`` where spiked.
"""

from __future__ import annotations

import numpy as np
import torch

from neuromoco.deploy.loihi.constants import (  # noqa: F401 (the executor reads them as arith.*)
    ACT_SHIFT,
    DECAY_SHIFT,
    DECAY_UNITY,
    DM_OFFSET,
    DS_OFFSET,
    MAX_UV,
    UV_BITS,
    VTH_SHIFT,
)

INT32_MIN, INT32_SPAN = -(1 << 31), 1 << 32


# ------------------------------------------------------------------------------------------- synapses

def sign_mode(w: np.ndarray) -> str:
    """Lava's ``determine_sign_mode``: excitatory if ``min >= 0``, inhibitory if ``max <= 0``, else mixed.

    Lava takes the extremes over the whole matrix (a dense one's zeros, a sparse one's unstored zeros);
    a zero never changes the answer, so the stored values ``w`` suffice.
    """
    w = np.asarray(w)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def synapse_weights(w: np.ndarray, mode: str, num_weight_bits: int = 8) -> np.ndarray:
    """The weights Lava's bit-accurate ``Dense`` / ``Sparse`` use: ``clip_weights(.., num_bits=8)`` then
    ``truncate_weights(.., num_weight_bits)`` for sign mode ``mode`` (int64 result)."""
    w = np.asarray(w).astype(np.int32).astype(np.int64)  # Lava: weights.astype(np.int32)
    mixed, inhib = mode == "mixed", mode == "inhibitory"
    if inhib:
        w = -w
    lo, hi = (-(1 << 8)) * int(mixed), (1 << 8) - 1
    w = np.clip(w, lo, hi)
    drop = 8 - num_weight_bits + int(mixed)
    w = (w >> drop) << drop
    return -w if inhib else w


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Integers (int64, or float64 holding them exactly) as int32 arithmetic leaves them: wrap at 2**31."""
    if x.is_floating_point():
        return torch.remainder(x - INT32_MIN, float(INT32_SPAN)) + INT32_MIN
    return ((x - INT32_MIN) & (INT32_SPAN - 1)) + INT32_MIN


def weight_shift(acc: torch.Tensor, weight_exp: int, may_wrap: bool = True) -> torch.Tensor:
    """``a_buff`` of Lava's bit-accurate synapse from the int32 dot product ``acc``: ``<< weight_exp`` when
    it is positive (int32: wraps), else ``>> -weight_exp`` (an arithmetic shift: rounds negative values
    down). ``acc`` holds integers as int64 or float64 (exact below 2**53), or float32 where the caller has
    bounded the result below 2**24; ``may_wrap=False``: the caller has bounded ``|acc << weight_exp| < 2**31``."""
    if weight_exp > 0:
        if not may_wrap:
            return acc * float(1 << weight_exp) if acc.is_floating_point() else acc << weight_exp
        return wrap32(acc * float(1 << weight_exp) if acc.is_floating_point() else acc << weight_exp)
    if weight_exp < 0:
        if acc.is_floating_point():
            return torch.floor(acc * 2.0 ** weight_exp)  # exact: a power-of-two scaling, then floor
        return acc >> (-weight_exp)
    return acc


# -------------------------------------------------------------------------------------------- neurons
#
# The neuron state is held in float64 tensors: every value is an integer below 2**37 in magnitude, which
# float64 holds exactly, and then Lava's ``sign(p) * (|p| >> 12)`` is ``trunc(p / 4096)``, the 24-bit wrap
# and saturation are comparisons, and a step is a few in-place passes over the batch. (The executor's
# memoryless step uses float32 where its bounds make that exact too: see ``FixedLayer.state_dtype``.)

def decay(x: torch.Tensor, factor: torch.Tensor | float, out: torch.Tensor | None = None) -> torch.Tensor:
    """Lava's decay ``sign(x * factor) * (|x * factor| >> 12)`` (rounds towards zero), as
    ``trunc(x * (factor / 4096))`` on float64 integers (exact: the factor's division is a power of two).

    ``factor`` is ``4096 - (du + 1)`` for the current, ``4096 - dv`` for the voltage (0 to 4096); a uniform
    factor of 4096 (no decay) or 0 (full decay) is a copy or zeros."""
    if isinstance(factor, float) and factor in (0.0, float(DECAY_UNITY)):
        if out is None:
            return x.clone() if factor else torch.zeros_like(x)
        return out.copy_(x) if factor else out.zero_()
    scale = factor / float(DECAY_UNITY)
    out = torch.mul(x, scale, out=out) if out is not None else x * scale
    return out.trunc_()


def decay_(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """:func:`decay` in place."""
    return decay(x, factor, out=x)


def wrap24_(x: torch.Tensor) -> torch.Tensor:
    """Lava's one-sided current wrap, in place: ``x > 2**23`` becomes ``x - 2**24``, ``x <= -2**23`` becomes
    ``x + 2**24`` (``2**23`` itself stays; values past ``3 * 2**23`` are wrapped once only, as Lava does)."""
    lo, hi = torch.aminmax(x)
    if hi.item() > MAX_UV:
        x.sub_(torch.gt(x, MAX_UV).to(x.dtype).mul_(2 * MAX_UV))
        lo = x.min()  # a wrapped value lies above -2**23: the second rule cannot catch it
    if lo.item() <= -MAX_UV:
        x.add_(torch.le(x, -MAX_UV).to(x.dtype).mul_(2 * MAX_UV))
    return x


def current_update(u: torch.Tensor, a: torch.Tensor, factor: torch.Tensor | float, *,
                   may_wrap32: bool = True) -> torch.Tensor:
    """New current (a new tensor) from ``u`` and the step's activation ``a`` (the synapses' ``a_out`` plus
    the synaptic biases): the decayed current plus ``a << 6`` in int32, then the 24-bit wrap.

    ``may_wrap32=False`` skips the int32 wrap where the caller has bounded ``|decayed + a << 6| < 2**31``."""
    if isinstance(factor, float) and factor == 0.0:  # du = 4095: no current memory
        pre = torch.mul(a, float(1 << ACT_SHIFT))
        if pre.shape != u.shape:
            pre = pre.expand(u.shape).clone()
    else:
        pre = decay(u, factor).add_(a, alpha=1 << ACT_SHIFT)
    if may_wrap32:
        pre = wrap32(pre)
    return wrap24_(pre)


def voltage_update_(v: torch.Tensor, u: torch.Tensor, factor: torch.Tensor | float, bias: torch.Tensor | None,
                    *, may_wrap32: bool = True) -> torch.Tensor:
    """New voltage, in ``v``: decayed voltage plus current plus effective bias, saturated to 24 bits."""
    if not (isinstance(factor, float) and factor == float(DECAY_UNITY)):  # dv = 0 (IF): no decay
        decay(v, factor, out=v)
    v.add_(u)
    if bias is not None:
        v.add_(bias)
    if may_wrap32:
        v.copy_(wrap32(v))
    return v.clamp_(-MAX_UV + 1, MAX_UV - 1)


def spike_and_reset_(v: torch.Tensor, vth_eff: torch.Tensor) -> torch.Tensor:
    """Spikes ``v > vth << 6`` (a bool tensor); the spiking neurons' voltage is set to zero in place."""
    s = torch.gt(v, vth_eff)
    v.masked_fill_(s, 0)
    return s


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """Lava's ``scale_bias``: ``bias_mant << bias_exp``, or ``>> -bias_exp`` for a negative exponent."""
    mant = np.asarray(bias_mant).astype(np.int32).astype(np.int64)
    exp = np.asarray(bias_exp).astype(np.int32).astype(np.int64)
    return np.where(exp >= 0, mant << np.maximum(exp, 0), mant >> np.maximum(-exp, 0))


def u_factor(du: np.ndarray) -> np.ndarray:
    """``4096 - (du + 1)``: what multiplies the current before the 12-bit shift."""
    return DECAY_UNITY - (np.asarray(du).astype(np.int64) + DS_OFFSET)


def v_factor(dv: np.ndarray) -> np.ndarray:
    """``4096 - dv``: what multiplies the voltage before the 12-bit shift."""
    return DECAY_UNITY - (np.asarray(dv).astype(np.int64) + DM_OFFSET)


def effective_threshold(vth: np.ndarray) -> np.ndarray:
    """``vth << 6``."""
    return np.asarray(vth).astype(np.int64) << VTH_SHIFT
