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
``sign_split`` puts a mixed-sign connection's positive and negative weights on two single-sign synapse
processes (the same synapses, each with its own exponent and all 8 bits), which doubles the weight precision
and holds every mixed-sign grid exactly. Lava shifts a negative exponent's sum down (towards minus
infinity), which biases the current by up to -1 unit on every step the synapse receives anything: a connection
keeps exponent 0 where its largest weight still spans :data:`UNSHIFTED_MIN_LEVELS` steps there, and a 16-bit
weight's second (residual) synapse is added only where it pays (:data:`RESIDUAL_MIN_STEP`).
The error of every quantized quantity is reported per layer (``Layer.report``, ``LavaPlan.report``), and what
no scale can map exactly (a decay off the 12-bit grid, a residual synapse left out) is named in its
``notes``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, TypeAlias, cast

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.loihi.constants import (
    ACT_SHIFT,
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    DECAY_UNITY,
    MANT_MIXED,
    MANT_SINGLE,
    STATE_MAX,
    VTH_MAX,
    WEIGHT_EXP_MIN,
)
from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer
from neuromoco.errors import UserError

#: significant bits of ``sigma * vth`` where the 24-bit state bound lowers a scale (:func:`scales`)
HELD_BITS = 6
#: a residual synapse with a negative exponent is added only where the first piece's grid step is at least this
#: many integer units: its shift's bias (about -1/2 unit per step) is then small next to the layer's drive. On the
#: recurrent fixtures (benchmarks/fixed_point_recurrent.py) a residual below a step of 8 cost more spike-count
#: accuracy than the rounding it removed (braille_cubalif, one scale per layer: -0.64 % vs +0.20 % without)
RESIDUAL_MIN_STEP = 8
#: a connection's (first) synapse takes exponent 0 instead of a negative one wherever its largest weight still
#: spans this many grid steps at 0: a negative exponent buys one or two mantissa bits but shifts the sum down
#: (a bias of about -1/2 unit per step). Measured: rnn_cubalif's recurrent connection at exponent -1 lost 0.17 %
#: of the spikes, at 0 (largest mantissa 127) 0.02 %
UNSHIFTED_MIN_LEVELS = 64


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


class WeightGrid(NamedTuple):
    """How every connection's weights are cut into 8-bit pieces (the plan options ``weight_bits``,
    ``sign_split`` and ``min_weight_exp``)."""

    parts: int  # pieces per weight: 1 (8-bit) or 2 (16-bit)
    sign_split: bool  # mixed-sign connections as an excitatory and an inhibitory process
    min_exp: int  # the lowest weight exponent (0: no down-shifted, floored sums)


def quantize_plan(plan: LavaPlan, per_neuron: bool = True, weight_bits: int = 8,
                  sign_split: bool = False, min_weight_exp: int = WEIGHT_EXP_MIN) -> None:
    """Turn a float plan into Loihi 2 fixed point in place, recording the error of every quantity.

    ``per_neuron``: every neuron gets its own scale (its threshold mantissa absorbs it), so every row of
    a weight matrix uses the full 8-bit mantissa, like per-channel int8 quantization; otherwise one scale
    per layer, which keeps Lava's own ``LIFReset`` (one threshold per process) usable.
    ``weight_bits``: 8 (Loihi's synapse) or 16 (every weight split over two 8-bit synapses where the second
    one pays, see :data:`RESIDUAL_MIN_STEP`). ``sign_split``: mixed-sign connections as an excitatory and an
    inhibitory process (see the module docstring). ``min_weight_exp``: the lowest weight exponent a connection
    may take; 0 keeps every synaptic sum exact (a negative exponent's sum is shifted down, flooring it), the
    grid quantization-aware training records.
    """
    if weight_bits not in (8, 16):
        raise UserError(f"Lava fixed-point weight_bits must be 8 or 16, not {weight_bits!r}")
    if not WEIGHT_EXP_MIN <= min_weight_exp <= 0:
        raise UserError(f"Lava fixed-point min_weight_exp must be in {WEIGHT_EXP_MIN}..0, not {min_weight_exp!r}")
    grid = WeightGrid(weight_bits // 8, bool(sign_split), int(min_weight_exp))
    for lay in plan.layers:
        _quantize_layer(lay, plan, per_neuron, grid)
    plan.report = {"readout": _quantize_readout(plan, per_neuron, grid)}


def _graded_input_scaled(conns: list[Conn], plan: LavaPlan) -> None:
    """Graded input arrives as ``round(x * input_scale)``: its weights absorb ``1 / input_scale``."""
    for c in conns:
        if c.source == plan.input_name and c.kernel is not None:
            c.kernel = c.kernel.with_weight(c.kernel.weight / plan.input_scale)
        elif c.source == plan.input_name:
            c.matrix = sp.csr_matrix(c.held_matrix() / plan.input_scale)


def _quantize_layer(lay: Layer, plan: LavaPlan, per_neuron: bool, grid: WeightGrid) -> None:
    _graded_input_scaled(lay.conns, plan)
    vth = lay.vth if lay.spiking else None
    step_input = row_bound(lay.conns, plan, lay.size) + np.abs(lay.b0) + np.abs(lay.b1)
    bound = channel_shared(state_bound(step_input, lay.bias_mant, lay.du, lay.dv, vth), lay.shape)
    sigma = channel_uniform(scales(row_max(lay.conns, lay.size), vth, bound, per_neuron), lay.conns)
    lay.scale = sigma
    rep: dict[str, Any] = {"scale_min": float(sigma.min()), "scale_max": float(sigma.max()), "connections": {}}
    lay.conns = _quantized_conns(lay.conns, sigma, grid, rep)
    unit = float(1 << ACT_SHIFT) * sigma  # integer v units per volt
    du_i = np.clip(np.round(lay.du * DECAY_UNITY) - 1, 0, DECAY_UNITY - 1)
    dv_i = np.clip(np.round(lay.dv * DECAY_UNITY), 0, DECAY_UNITY - 1)
    rep["du_abs_error"] = float(np.abs((du_i + 1) / DECAY_UNITY - lay.du).max())
    rep["dv_abs_error"] = float(np.abs(dv_i / DECAY_UNITY - lay.dv).max())
    notes = rep.setdefault("notes", [])
    notes += [n for n in (decay_note("du", lay.du, du_i + 1, "tau_syn"),
                          decay_note("dv", lay.dv, dv_i, "tau_mem")) if n]
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


def decay_note(what: str, real: np.ndarray, q: np.ndarray, tau: str) -> str | None:
    """What a 12-bit decay loses, for the export's notes: ``what`` (``du`` / ``dv``) = dt / ``tau`` is ``real``
    per neuron and runs as ``q / 4096`` (``q``: the effective integer, for ``du`` Lava's ``du + 1``). None when
    every neuron's decay is on the grid. The worst neuron is named by its relative error of ``d`` and of
    ``1 - d`` (what the state keeps per step; the one that matters when tau is close to dt)."""
    real, q = np.asarray(real, dtype=np.float64), np.asarray(q, dtype=np.float64)
    eff = q / DECAY_UNITY
    rel = np.abs(eff - real) / np.maximum(real, 1e-300)
    keep = np.abs((1 - eff) - (1 - real)) / np.maximum(1 - real, 1e-300)
    worst = np.maximum(np.where(real > 0, rel, 0.0), np.where(real < 1, keep, 0.0))
    i = int(np.argmax(worst))
    if worst[i] <= 1e-6:  # on the grid (up to the float rounding of dt / tau)
        return None
    if real[i] <= 0 or real[i] >= 1:
        kept = ""
    else:
        kept = f", 1 - {what} {(1 - eff[i]) / (1 - real[i]) - 1:+.4%}"
    if real[i] > 0:
        change = f"relative error {eff[i] / real[i] - 1:+.4%}{kept}"
    else:
        change = f"no {tau} beyond 4096 dt{kept}"
    return (f"{what} = dt/{tau} = {real[i]:.6g} rounds to {int(q[i])}/4096 = {eff[i]:.6g} ({change}): "
            f"12-bit decays cannot hold it")


def _quantize_readout(plan: LavaPlan, per_neuron: bool, grid: WeightGrid) -> dict[str, Any]:
    ro = plan.readout
    if not ro.conns:
        return {"direct": ro.direct}
    _graded_input_scaled(ro.conns, plan)
    ro.scale = channel_uniform(scales(row_max(ro.conns, ro.size), None, np.zeros(ro.size), per_neuron), ro.conns)
    rep: dict[str, Any] = {"scale_min": float(ro.scale.min()), "scale_max": float(ro.scale.max()),
                           "connections": {}}
    ro.conns = _quantized_conns(ro.conns, ro.scale, grid, rep)
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


def split_weights(real: Any, parts: int = 1, fixed: list[tuple[int, bool]] | None = None,
                  min_exp: int = WEIGHT_EXP_MIN) -> tuple[Any, list[tuple[Any, int, bool]]]:
    """The Loihi weight grid: ``real`` (weights times their row's scale, numpy or torch) as the sum of at most
    ``parts`` pieces ``mant * 2**exp`` (8-bit mantissas, :func:`mantissa`); each piece rounds what the pieces
    before it left. Returns ``(total, [(mant, exp, mixed), ...])``.

    The exponent and sign mode of each piece are chosen from ``real`` (:func:`weight_exponent`), or given
    (``fixed``: what a plan chose, as quantization-aware training uses between grid updates). Chosen, the
    first piece takes exponent 0 rather than a negative one where that leaves its largest weight
    :data:`UNSHIFTED_MIN_LEVELS` grid steps, and a residual piece with a negative exponent is left out unless
    the piece before it has a grid step of at least :data:`RESIDUAL_MIN_STEP` units (:func:`residual_pays`).
    No chosen piece goes below ``min_exp`` (0: every sum exact, no down-shift; a residual that would need a
    lower exponent is left out).
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
            if pieces and (exp < min_exp or not residual_pays(pieces[-1][1], pieces[-1][2], exp)):
                break
            exp = max(exp, min_exp)
            if not pieces and exp < 0 and float(abs(rest).max()) >= UNSHIFTED_MIN_LEVELS * (2 if mixed else 1):
                exp = 0  # enough levels without the down-shift's bias (see UNSHIFTED_MIN_LEVELS)
        else:
            exp, mixed = fixed[i]
        mant = mantissa(rest / 2.0 ** exp, mixed)
        pieces.append((mant, exp, mixed))
        total = mant * 2.0 ** exp if total is None else total + mant * 2.0 ** exp
        rest = real - total
    return (real * 0 if total is None else total), pieces


def residual_pays(exp: int, mixed: bool, residual_exp: int) -> bool:
    """Whether a residual synapse at ``residual_exp`` improves on the piece before it (exponent ``exp``).

    A negative exponent makes Lava's synapse shift its integer sum down (``>>``: towards minus infinity), so
    the residual biases the current by -(1 - 2**residual_exp) / 2 units on average on every step it receives
    anything; it is worth that only where the first piece's rounding is larger, i.e. its grid step
    (``2**exp``, doubled in mixed-sign mode) is at least :data:`RESIDUAL_MIN_STEP` units."""
    return residual_exp >= 0 or 2.0 ** exp * (2 if mixed else 1) >= RESIDUAL_MIN_STEP


Weights: TypeAlias = sp.csr_matrix | Kernel


class _Entries:
    """The stored weights of a matrix (its synapses) or a kernel (its taps) as one flat array, the target row
    whose scale each one takes, and the same structure rebuilt around other values."""

    def __init__(self, w: Weights, sigma: np.ndarray) -> None:
        self.w = w
        if isinstance(w, Kernel):
            self.values = w.weight.reshape(-1)
            per_channel = sigma[::w.positions]  # one scale per channel (see channel_uniform)
            self.sigma = np.repeat(per_channel, w.weight[0].size)
        else:
            self.values = w.data
            self.sigma = sigma[np.repeat(np.arange(w.shape[0]), np.diff(w.indptr))]

    def rebuild(self, values: np.ndarray) -> Weights:
        if isinstance(self.w, Kernel):
            return self.w.with_weight(values.reshape(self.w.weight.shape))
        q = sp.csr_matrix((values.copy(), self.w.indices.copy(), self.w.indptr.copy()), shape=self.w.shape)
        q.eliminate_zeros()
        return q

    @property
    def stored(self) -> int:
        return int(np.count_nonzero(self.values))


def quantize_conn(m: Weights, sigma: np.ndarray, parts: int = 1, sign_split: bool = False,
                  min_exp: int = WEIGHT_EXP_MIN) -> tuple[list[tuple[Weights, int]], dict[str, Any]]:
    """Integer mantissas and exponents of ``diag(sigma) @ m`` (``m`` a matrix, or a kernel whose rows share
    their channel's scale): 8-bit, one exponent per connection.

    ``parts = 2`` splits every weight over two 8-bit synapses (the second carries the rounding residual
    of the first at a finer exponent, where it pays: :func:`residual_pays`), as one may on Loihi to get more
    weight precision at twice the synapses. ``sign_split``: a mixed-sign ``m`` becomes its positive and its
    negative weights, each quantized on its own (single-sign: all 8 bits, its own exponent). Returns
    ``[(mantissas, exponent), ...]`` (the positive part's pieces first) and the error report of their sum
    (over the stored weights: a matrix's synapses, a kernel's taps). ``min_exp``: the lowest exponent a
    piece may take (:func:`split_weights`).
    """
    m = m if isinstance(m, Kernel) else sp.csr_matrix(m)
    e = _Entries(m, sigma)
    if sign_split and e.stored and e.values.min() < 0 < e.values.max():
        halves: list[list[tuple[Weights, int]]] = []
        reps: list[dict[str, Any]] = []
        for part in (np.maximum(e.values, 0), np.minimum(e.values, 0)):
            half, r = quantize_conn(e.rebuild(part), sigma, parts, min_exp=min_exp)
            halves.append(half)
            reps.append(r)
        if isinstance(m, Kernel):  # the same taps in every piece
            total = sum(q.weight.reshape(-1) * 2.0 ** x for half in halves for q, x in half)
            err = (total / e.sigma - e.values)[e.values != 0]
        else:
            # m is a matrix, so are its pieces
            tm = sum((cast(sp.csr_matrix, q).astype(np.float64) * 2.0 ** x for half in halves for q, x in half),
                     sp.csr_matrix(m.shape))
            err = sp.csr_matrix(sp.diags(1.0 / sigma) @ tm - m).data  # total's synapses are m's or fewer
        nz = e.values[e.values != 0]
        rep = {"sign_mode": "split", "weight_exp": reps[0]["weight_exp"],
               "weight_exp_inhibitory": reps[1]["weight_exp"],
               "mantissa_min": reps[1]["mantissa_min"], "mantissa_max": reps[0]["mantissa_max"],
               "synapses_per_weight": max(r["synapses_per_weight"] for r in reps), "sign_processes": 2,
               "rel_weight_error": float(np.linalg.norm(err) / max(float(np.linalg.norm(nz)), 1e-300)),
               "max_abs_weight_error_rel_to_max": float(np.abs(err).max(initial=0.0) / np.abs(nz).max()),
               "weights_rounded_to_zero": float((reps[0]["weights_rounded_to_zero"] * int((nz > 0).sum())
                                                 + reps[1]["weights_rounded_to_zero"] * int((nz < 0).sum()))
                                                / nz.size)}
        for r in reps:
            if "residual_left_out" in r:
                rep["residual_left_out"] = r["residual_left_out"]
        return halves[0] + halves[1], rep | {"parts": [len(halves[0]), len(halves[1])]}
    keep = e.values != 0
    real = e.values * e.sigma
    if not e.stored or not np.any(real):
        return [(e.rebuild(np.zeros_like(e.values)), 0)], {"sign_mode": "null"}
    out: list[tuple[Weights, int]] = []
    total, pieces = split_weights(real, parts, min_exp=min_exp)
    modes, exps, mants = [], [], []
    for mant, exp, mixed in pieces:
        out.append((e.rebuild(mant), exp))
        modes.append("mixed" if mixed else ("excitatory" if mant.max() > 0 else "inhibitory"))
        exps.append(exp)
        mants.append(mant)
    err = (total / e.sigma - e.values)[keep]
    nz = e.values[keep]
    rep = {"sign_mode": modes[0], "weight_exp": exps[0], "mantissa_min": int(mants[0][keep].min()),
           "mantissa_max": int(mants[0][keep].max()), "synapses_per_weight": len(out),
           "rel_weight_error": float(np.linalg.norm(err) / max(float(np.linalg.norm(nz)), 1e-300)),
           "max_abs_weight_error_rel_to_max": float(np.abs(err).max() / np.abs(nz).max()),
           "weights_rounded_to_zero": float(np.mean(total[keep] == 0))}
    if len(out) > 1:
        rep["residual_weight_exp"] = exps[1:]
    elif parts > 1 and bool(np.any(total != real)):
        rest = real - total
        rest_exp = weight_exponent(float(np.abs(rest).max()), bool(rest.min() < 0 < rest.max()))
        step = 2.0 ** exps[0] * (2 if modes[0] == "mixed" else 1)
        rep["residual_left_out"] = (f"it would need exponent {rest_exp}, below min_weight_exp {min_exp}"
                                    if rest_exp < min_exp else
                                    f"it would need exponent {rest_exp}, whose down-shift biases the current by up "
                                    f"to -1 unit per step, and the first synapse's step is only {step:g} units")
    return out, rep


def _quantized_conns(conns: list[Conn], sigma: np.ndarray, grid: WeightGrid, rep: dict[str, Any]
                     ) -> list[Conn]:
    """Every connection as its 8-bit piece(s); their error reports go into ``rep["connections"]``.

    The pieces after the first are marked: ``residual_of`` (a 16-bit weight's second synapse) or
    ``sign_part_of`` (the inhibitory process of a sign-split connection; its own residual is ``residual_of``)."""
    out = []
    for c in conns:
        pieces, report = quantize_conn(c.weights, sigma, grid.parts, grid.sign_split, grid.min_exp)
        key = c.source + (" (recurrent)" if c.recurrent else "")
        rep["connections"][key] = report
        if "residual_left_out" in report:
            rep.setdefault("notes", []).append(f"{key}: 16-bit residual synapse left out: "
                                               f"{report['residual_left_out']}")
        first_neg = report.get("parts", [len(pieces)])[0]
        for i, (q, e) in enumerate(pieces):
            mark = report if i == 0 else {("sign_part_of" if i == first_neg else "residual_of"): c.source}
            q_conn = c.with_weights(q)
            q_conn.weight_exp, q_conn.report = e, mark
            out.append(q_conn)
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
        out = np.maximum(out, c.row_abs_max())
    return out


def row_bound(conns: list[Conn], plan: LavaPlan, n: int) -> np.ndarray:
    """Worst-case |input| of one step per neuron in volts: every spike source of one sign firing together
    (excitatory and inhibitory synapses cannot both be at their extreme), graded input at its largest
    magnitude on every synapse."""
    pos, neg, graded = np.zeros(n), np.zeros(n), np.zeros(n)
    for c in conns:
        p, q = c.row_sums()
        if c.source == plan.input_name:
            graded += (p + q) * plan.input_max * plan.input_scale
        else:
            pos += p
            neg += q
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


def channel_shared(bound: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A conv layer's state bound, the largest of each output channel for all its neurons.

    The neurons of one channel share one kernel: where the 24-bit state bound lowers a scale, it lowers it
    alike for the whole channel, so the channel keeps one weight grid (one that quantization-aware training
    can train onto) instead of one per border position."""
    if len(shape) < 2 or bound.size != int(np.prod(shape)):
        return bound
    per_channel = bound.reshape(shape[0], -1).max(axis=1, keepdims=True)
    return np.broadcast_to(per_channel, (shape[0], bound.size // shape[0])).reshape(-1).copy()


def channel_uniform(sigma: np.ndarray, conns: list[Conn]) -> np.ndarray:
    """Scales that a layer fed through a kernel can use: one per output channel (the smallest of the channel's
    neurons, so no neuron's limit is passed), since the channel's neurons share its kernel's mantissas."""
    k = next((c.kernel for c in conns if c.kernel is not None), None)
    if k is None:
        return sigma
    per_channel = sigma.reshape(k.out_shape[0], -1).min(axis=1)
    return k.per_neuron(per_channel)


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
    # where the limit binds, the scale drops below it onto a coarse grid of sigma * vth: integers with
    # HELD_BITS significant bits (at most 1/32 below the limit). The threshold mantissa is then exact, and the
    # scale does not move with the small changes of the row's own weights (the limit sums their magnitudes)
    # that projecting them onto this very grid makes, so quantization-aware training can train onto it.
    lv = np.maximum(limit * vth, 1.0)
    step = 2.0 ** np.maximum(np.floor(np.log2(lv)) - (HELD_BITS - 1), 0.0)
    held = np.floor(lv / step + 1e-9) * step / vth
    return np.where(sigma > limit, np.maximum(held, np.minimum(limit, 1.0 / vth)), sigma)
