"""Loihi 2 fixed point: a float :class:`~.plan.LavaPlan` in Lava's bit-accurate integer formats.

Per neuron layer a real scale ``sigma`` maps volts to integer units: weights become ``mant * 2**exp``
with an 8-bit mantissa and one exponent per connection (mixed-sign weights: even mantissas in
[-256, 254], since Lava's bit-accurate synapse drops the lowest bit in mixed-sign mode; single-sign:
[0, 255] or [-255, 0]); the threshold is ``round(sigma * vth)`` (17 bits, shifted left by 6 in the
neuron), the bias ``round(64 * sigma * bias)`` as a 13-bit mantissa with a 3-bit exponent, decays are
12-bit (``du * 4096 - 1`` because Lava's current decay adds one, ``dv * 4096``), graded input is
``round(x * input_scale)``. ``sigma`` puts every row's largest weight at the full mantissa (254 after the
connection's exponent), lowered only where the worst-case input could overflow the 24-bit current or
voltage (:func:`state_bound`); the exponent is the largest that keeps all but 1 % of the rows at the full
mantissa, up to the one that gives every threshold 12 bits. (Weights are where the error is: a threshold
of 9 bits or more, 6 more bits in the voltage, errs far less than an 8-bit weight.)
The error of every quantized quantity is reported per layer (``Layer.report``, ``LavaPlan.report``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.targets.lava.plan import Conn, LavaPlan, Layer
from neuromoco.errors import UserError

# Loihi 2 / Lava bit widths
MANT_MIXED = 254  # largest even mantissa of a mixed-sign 8-bit weight
MANT_SINGLE = 255
VTH_MAX = (1 << 17) - 1
STATE_MAX = 1 << 23
ACT_SHIFT = 6
BIAS_MANT_MAX = 4095
BIAS_EXP_MAX = 7
DECAY_UNITY = 4096


def check_fixed_point(plan: LavaPlan) -> None:
    """Refuse, naming the node, what Loihi's fixed-point neuron cannot represent."""
    names = {lay.name: lay for lay in plan.layers}
    for lay in plan.layers:
        for c in lay.conns:
            src = names.get(c.source)
            if src is not None and not src.spiking:
                raise UserError(f"node {c.source!r} ({src.kind}) is non-spiking and feeds {lay.name!r}: the "
                                "Lava fixed-point target supports LI / CubaLI only as the readout")
        for what, a in (("du", lay.du), ("dv", lay.dv)):
            if np.any(a < 0) or np.any(a > 1):
                raise UserError(f"node {lay.name!r} ({lay.kind}): decay {what} = dt/tau outside [0, 1] "
                                f"({a.min():g}..{a.max():g}); dt is larger than a time constant")
        if lay.spiking and np.any(lay.vth <= 0):
            raise UserError(f"node {lay.name!r} ({lay.kind}): v_threshold - v_reset must be > 0 for "
                            "Loihi's unsigned threshold")


def quantize_plan(plan: LavaPlan, per_neuron: bool = True, weight_bits: int = 8) -> None:
    """Turn a float plan into Loihi 2 fixed point in place, recording the error of every quantity.

    ``per_neuron``: every neuron gets its own scale (its threshold mantissa absorbs it), so every row of
    a weight matrix uses the full 8-bit mantissa, like per-channel int8 quantization; otherwise one scale
    per layer, which keeps Lava's own ``LIFReset`` (one threshold per process) usable.
    ``weight_bits``: 8 (Loihi's synapse) or 16 (every weight split over two 8-bit synapses).
    """
    if weight_bits not in (8, 16):
        raise UserError(f"Lava fixed-point weight_bits must be 8 or 16, not {weight_bits!r}")
    parts = weight_bits // 8
    for lay in plan.layers:
        _quantize_layer(lay, plan, per_neuron, parts)
    plan.report = {"readout": _quantize_readout(plan, per_neuron, parts)}


def _graded_input_scaled(conns: list[Conn], plan: LavaPlan) -> None:
    """Graded input arrives as ``round(x * input_scale)``: its weights absorb ``1 / input_scale``."""
    for c in conns:
        if c.source == plan.input_name:
            c.matrix = sp.csr_matrix(c.matrix / plan.input_scale)


def _quantize_layer(lay: Layer, plan: LavaPlan, per_neuron: bool, parts: int) -> None:
    _graded_input_scaled(lay.conns, plan)
    vth = lay.vth if lay.spiking else None
    step_input = row_bound(lay.conns, plan, lay.size) + np.abs(lay.b0) + np.abs(lay.b1)
    bound = state_bound(step_input, lay.bias_mant, lay.du, lay.dv, vth)
    sigma = scales(row_max(lay.conns, lay.size), vth, bound, per_neuron)
    lay.scale = sigma
    rep: dict[str, Any] = {"scale_min": float(sigma.min()), "scale_max": float(sigma.max()), "connections": {}}
    lay.conns = _quantized_conns(lay.conns, sigma, parts, rep)
    unit = float(1 << ACT_SHIFT) * sigma  # integer v units per volt
    du_i = np.clip(np.round(lay.du * DECAY_UNITY) - 1, 0, DECAY_UNITY - 1)
    dv_i = np.clip(np.round(lay.dv * DECAY_UNITY), 0, DECAY_UNITY - 1)
    rep["du_abs_error"] = float(np.abs((du_i + 1) / DECAY_UNITY - lay.du).max())
    rep["dv_abs_error"] = float(np.abs(dv_i / DECAY_UNITY - lay.dv).max())
    if lay.spiking:
        vth_i = np.clip(np.round(lay.vth * sigma), 1, VTH_MAX)
        rep["vth_mantissa"] = [int(vth_i.min()), int(vth_i.max())]
        rep["vth_rel_error"] = float((np.abs(vth_i / sigma - lay.vth) / lay.vth).max())
    else:
        vth_i = np.full(lay.size, VTH_MAX, dtype=np.float64)
    mant, bexp, berr = split_bias(lay.bias_mant * unit)
    rep["bias_abs_error_volts"] = float((berr / unit).max(initial=0.0))
    b0, b1 = np.round(lay.b0 * sigma), np.round(lay.b1 * sigma)
    rep["synaptic_bias_abs_error_volts"] = float(max(np.abs(b0 / sigma - lay.b0).max(initial=0.0),
                                                     np.abs(b1 / sigma - lay.b1).max(initial=0.0)))
    v0 = np.round(lay.v0 * unit)
    if np.abs(v0).max(initial=0) >= STATE_MAX:
        raise UserError(f"node {lay.name!r} ({lay.kind}): v_reset is too large for Loihi's 24-bit voltage "
                        "at this layer's scale")
    lay.du, lay.dv, lay.vth = du_i, dv_i, vth_i
    lay.bias_mant, lay.bias_exp, lay.b0, lay.b1, lay.v0 = mant, bexp, b0, b1, v0
    lay.report = rep


def _quantize_readout(plan: LavaPlan, per_neuron: bool, parts: int) -> dict[str, Any]:
    ro = plan.readout
    if not ro.conns:
        return {"direct": ro.direct}
    _graded_input_scaled(ro.conns, plan)
    ro.scale = scales(row_max(ro.conns, ro.size), None, np.zeros(ro.size), per_neuron)
    rep: dict[str, Any] = {"scale_min": float(ro.scale.min()), "scale_max": float(ro.scale.max()),
                           "connections": {}}
    ro.conns = _quantized_conns(ro.conns, ro.scale, parts, rep)
    return rep


# ------------------------------------------------------------------------------- weights and biases

def mantissa(x: Any, mixed: bool) -> Any:
    """Round real mantissas to what Lava's bit-accurate synapse keeps (even values when mixed-sign).

    ``x``: a numpy array or a torch tensor (quantization-aware training rounds with this very function;
    both round half to even)."""
    if mixed:
        return (2.0 * (x / 2.0).round()).clip(-256, MANT_MIXED)
    return x.round().clip(-MANT_SINGLE, MANT_SINGLE)


def weight_exponent(max_abs: float, mixed: bool) -> int:
    """The connection's exponent: the smallest that puts its largest ``|real|`` within the mantissa range."""
    top = MANT_MIXED if mixed else MANT_SINGLE
    return math.ceil(math.log2(max_abs / top) - 1e-9)  # a last-bit excess is not a new bit


def split_weights(real: Any, parts: int = 1, fixed: list[tuple[int, bool]] | None = None
                  ) -> tuple[Any, list[tuple[Any, int, bool]]]:
    """The Loihi weight grid: ``real`` (weights times their row's scale, numpy or torch) as the sum of at most
    ``parts`` pieces ``mant * 2**exp`` (8-bit mantissas, :func:`mantissa`); each piece rounds what the pieces
    before it left. Returns ``(total, [(mant, exp, mixed), ...])``.

    The exponent and sign mode of each piece are chosen from ``real`` (:func:`weight_exponent`), or given
    (``fixed``: what a plan chose, as quantization-aware training uses between grid updates).
    """
    pieces: list[tuple[Any, int, bool]] = []
    total = None
    rest = real
    for i in range(parts if fixed is None else len(fixed)):
        if fixed is None:
            if not bool((rest != 0).any()):
                break
            mixed = bool(rest.min() < 0 < rest.max())
            exp = weight_exponent(float(abs(rest).max()), mixed)
        else:
            exp, mixed = fixed[i]
        mant = mantissa(rest / 2.0 ** exp, mixed)
        pieces.append((mant, exp, mixed))
        total = mant * 2.0 ** exp if total is None else total + mant * 2.0 ** exp
        rest = real - total
    return (real * 0 if total is None else total), pieces


def quantize_conn(m: sp.csr_matrix, sigma: np.ndarray, parts: int = 1
                  ) -> tuple[list[tuple[sp.csr_matrix, int]], dict[str, Any]]:
    """Integer mantissas and exponents of ``diag(sigma) @ m``: 8-bit, one exponent per connection.

    ``parts = 2`` splits every weight over two 8-bit synapses (the second carries the rounding residual
    of the first at a finer exponent), as one may on Loihi to get more weight precision at twice the
    synapses. Returns ``[(mantissas, exponent), ...]`` and the error report of their sum.
    """
    m = sp.csr_matrix(m)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    real = m.data * sigma[rows]
    if real.size == 0 or not np.any(real):
        return [(sp.csr_matrix(m.shape), 0)], {"sign_mode": "null"}
    out: list[tuple[sp.csr_matrix, int]] = []
    total, pieces = split_weights(real, parts)
    modes, exps, mants = [], [], []
    for mant, exp, mixed in pieces:
        q = sp.csr_matrix((mant.copy(), m.indices.copy(), m.indptr.copy()), shape=m.shape)  # own copy
        q.eliminate_zeros()
        out.append((q, exp))
        modes.append("mixed" if mixed else ("excitatory" if mant.max() > 0 else "inhibitory"))
        exps.append(exp)
        mants.append(mant)
    err = total / sigma[rows] - m.data
    rep = {"sign_mode": modes[0], "weight_exp": exps[0], "mantissa_min": int(mants[0].min()),
           "mantissa_max": int(mants[0].max()), "synapses_per_weight": len(out),
           "rel_weight_error": float(np.linalg.norm(err) / max(np.linalg.norm(m.data), 1e-300)),
           "max_abs_weight_error_rel_to_max": float(np.abs(err).max() / np.abs(m.data).max()),
           "weights_rounded_to_zero": float(np.mean((total == 0) & (m.data != 0)))}
    if len(out) > 1:
        rep["residual_weight_exp"] = exps[1:]
    return out, rep


def _quantized_conns(conns: list[Conn], sigma: np.ndarray, parts: int, rep: dict[str, Any]) -> list[Conn]:
    """Every connection as its 8-bit piece(s); their error reports go into ``rep["connections"]``."""
    out = []
    for c in conns:
        pieces, report = quantize_conn(c.matrix, sigma, parts)
        rep["connections"][c.source + (" (recurrent)" if c.recurrent else "")] = report
        out += [Conn(c.source, q, c.recurrent, e, report if i == 0 else {"residual_of": c.source})
                for i, (q, e) in enumerate(pieces)]
    return out


def split_bias(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` (integer units) as 13-bit mantissa << 3-bit exponent per neuron; returns mant, exp, error."""
    mag = np.abs(x)
    exp = np.zeros(x.shape)
    big = mag > BIAS_MANT_MAX
    exp[big] = np.ceil(np.log2(mag[big] / BIAS_MANT_MAX))
    exp = np.clip(exp, 0, BIAS_EXP_MAX)
    mant = np.clip(np.round(x / 2.0 ** exp), -BIAS_MANT_MAX, BIAS_MANT_MAX)
    return mant, exp, np.abs(mant * 2.0 ** exp - x)


# ------------------------------------------------------------------------------------------- scales

def row_max(conns: list[Conn], n: int) -> np.ndarray:
    """Per neuron, the largest |weight| over all its connections."""
    out = np.zeros(n)
    for c in conns:
        if c.nnz:
            out = np.maximum(out, np.asarray(abs(c.matrix).max(axis=1).todense()).ravel())
    return out


def row_bound(conns: list[Conn], plan: LavaPlan, n: int) -> np.ndarray:
    """Worst-case |input| of one step per neuron in volts: every spike source of one sign firing together
    (excitatory and inhibitory synapses cannot both be at their extreme), graded input at its largest
    magnitude on every synapse."""
    pos, neg, graded = np.zeros(n), np.zeros(n), np.zeros(n)
    for c in conns:
        m = sp.csr_matrix(c.matrix)
        if c.source == plan.input_name:
            graded += np.asarray(abs(m).sum(axis=1)).ravel() * plan.input_max * plan.input_scale
        else:
            pos += np.asarray(m.maximum(0).sum(axis=1)).ravel()
            neg -= np.asarray(m.minimum(0).sum(axis=1)).ravel()
    return np.maximum(pos, neg) + graded


def state_bound(step_input: np.ndarray, bias: np.ndarray, du: np.ndarray, dv: np.ndarray,
                vth: np.ndarray | None) -> np.ndarray:
    """Worst-case |current| and |voltage| in volts from a worst-case input per step: the current settles at
    most at ``input / du``, the voltage at ``(current + |bias|) / dv`` below zero and one threshold more
    above (it resets on crossing). Decays under 1/2 count as 1/2, as integrators must be bounded somewhere."""
    du = np.maximum(np.broadcast_to(du, step_input.shape), 0.5)
    dv = np.maximum(np.broadcast_to(dv, step_input.shape), 0.5)
    current = step_input / du
    above = 0.0 if vth is None else np.where(np.isfinite(vth), vth, 0.0)
    return np.maximum(current, (current + np.abs(bias)) / dv + above)


def scales(rowmax: np.ndarray, vth: np.ndarray | None, bound: np.ndarray, per_neuron: bool) -> np.ndarray:
    """Integer activation units per volt, per neuron (see the module docstring).

    Every row (neuron) wants its largest weight at the largest mantissa, ``MANT_MIXED * 2**e`` with ``e`` the
    connection's exponent; a row's scale may not pass its ``limit`` (no 24-bit state overflows on the
    worst-case input) nor put its threshold past 17 bits. ``e`` is the largest exponent (at most the one
    that gives the threshold 12 bits) at which at most one row in a hundred is held below the full mantissa by
    those limits: a larger ``e`` only buys threshold bits, and costs every limited row mantissa bits.
    """
    if not per_neuron:  # one scale for the layer: the same rule on the layer's extremes
        rowmax = np.full_like(rowmax, rowmax.max(initial=0.0))
        bound = np.full_like(bound, bound.max(initial=0.0))
        vth = None if vth is None else np.full_like(vth, vth.max())
    has_w = rowmax > 0
    limit = np.where(bound > 0, (STATE_MAX >> ACT_SHIFT) / np.where(bound > 0, bound, 1.0), np.inf)
    if vth is None:
        sigma = np.where(has_w, MANT_MIXED / np.where(has_w, rowmax, 1.0), 1.0)
        return np.minimum(sigma, limit)
    limit = np.minimum(limit, VTH_MAX / vth)
    if not np.any(has_w):
        return np.minimum(4096.0 / vth, limit)
    c_threshold = float(np.max(4096.0 * rowmax[has_w] / vth[has_w]))  # 12-bit threshold everywhere
    e_threshold = max(0, math.ceil(math.log2(c_threshold / MANT_MIXED) - 1e-12))
    room = limit[has_w] * rowmax[has_w] / MANT_MIXED  # 2**e at which the row's own limit binds
    room = room[np.isfinite(room)]
    e_rows = math.floor(math.log2(max(float(np.percentile(room, 1)), 1.0))) if room.size else e_threshold
    c = MANT_MIXED * 2.0 ** min(e_threshold, max(0, e_rows))
    sigma = np.where(has_w, c / np.where(has_w, rowmax, 1.0), 4096.0 / vth)
    return np.minimum(sigma, limit)
