"""THE definition of ``reference-fixed``: a fixed-point plan run step by step in plain integer arithmetic.

This is what ``lava-fixed`` computes for one sample, written once with no fast path (the executor's kernels
must give these integers, and the tests hold them to it on every shipped graph). Step ``t`` of layer ``X``:

* every connection ``c`` into ``X`` sends ``a_out = int32(W_c @ x) << e_c`` (``>> -e_c`` for a negative
  exponent: floor), with ``W_c`` Lava's effective weights (:func:`synapse_weights`), the int32 dot product
  wrapping at ``2**31`` and ``<<`` wrapping too (:func:`.arith.weight_shift`); ``x`` is the source's output
  at ``t`` (feed-forward: graded ``round(x * input_scale)`` for the input, 0/1 spikes for a spiking layer, the
  voltage for a non-spiking one) or at ``t - 1`` (recurrent; nothing at the window's first step). Lava runs
  every connection one step late plus its added delay and every layer ``delay`` steps after the reference;
  the plan's delays cancel (checked: :func:`~neuromoco.deploy.loihi.plan.check_delays`), so in the
  reference's time every input carries its source's step ``t``;
* the activation ``a`` is the sum of the ``a_out`` plus the synaptic bias ``b0`` (every step) and ``b1``
  (from the second step);
* the neuron (:mod:`.arith`): ``u = wrap24(int32(decay(u, du) + (a << 6)))``, ``v = sat24(int32(decay(v, dv)
  + u + bias))``; a spiking layer sends ``s = v > vth << 6`` and resets ``v = 0`` where it spiked, a
  non-spiking one (an ``LI`` readout) sends ``v``. A window starts at ``u = 0, v = v0``.

The readout is what Lava's ``Recorder`` holds (a direct layer's output, or the sum of the readout
connections' ``a_out``) in NIR units (:func:`readout_units`, as the Lava runner's ``_host_output``).

Synapses are int64 sparse products (exact: no bound needed); the neuron state is float64 holding integers,
as :mod:`.arith` computes it (exact below ``2**53``; the states stay below ``2**37``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, check_delays
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.reference_fixed import arith
from neuromoco.errors import UserError


def payload(plan: LavaPlan, x: np.ndarray) -> np.ndarray:
    """The graded input Lava's ``RingBuffer`` sends for frames ``x`` ``[T, B, n_in]``: ``round(x * input_scale)``
    as int32, held in int64."""
    return plan.fixed_payload(x).astype(np.int32).astype(np.int64)


def synapse_weights(c: Conn) -> sp.csr_matrix | Kernel:
    """The weights Lava's bit-accurate synapse uses (clipped and truncated by sign mode, float64 holding
    integers): a kernel's (Lava's ``PlanConv``: the sign mode of the whole kernel) or a matrix's (``Dense`` /
    ``Sparse``: duplicates summed, zeros dropped)."""
    if c.kernel is not None:
        k = c.kernel
        flat = k.weight.reshape(-1)
        eff = arith.synapse_weights(flat, arith.sign_mode(flat[flat != 0]), num_weight_bits=8)
        return k.with_weight(eff.astype(np.float64).reshape(k.weight.shape))
    m = c.expanded()
    m.sum_duplicates()
    data = arith.synapse_weights(m.data, arith.sign_mode(m.data), num_weight_bits=8)
    w = sp.csr_matrix((data.astype(np.float64), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    w.eliminate_zeros()
    return w


@dataclass(frozen=True)
class Neuron:
    """A layer's constants as Lava's int32 Vars hold them, per neuron (``[n]`` int64)."""

    u_factor: np.ndarray  # 4096 - (du + 1)
    v_factor: np.ndarray  # 4096 - dv
    vth: np.ndarray  # vth << 6
    bias: np.ndarray  # bias_mant << bias_exp (>> for a negative exponent)
    b0: np.ndarray  # synaptic bias from the first step
    b1: np.ndarray  # synaptic bias from the second step
    v0: np.ndarray  # the voltage a window starts at

    @classmethod
    def from_plan(cls, lay: Layer) -> Neuron:
        def ints(a: np.ndarray) -> np.ndarray:  # what Lava's int32 Vars hold (astype truncates)
            return np.broadcast_to(np.asarray(a, dtype=np.float64), (lay.size,)).astype(np.int32).astype(np.int64)

        return cls(arith.u_factor(ints(lay.du)), arith.v_factor(ints(lay.dv)), arith.effective_threshold(ints(lay.vth)),
                   arith.effective_bias(ints(lay.bias_mant), ints(lay.bias_exp)), ints(lay.b0), ints(lay.b1),
                   ints(lay.v0))


def _int_matrix(c: Conn) -> sp.csr_matrix:
    """:func:`synapse_weights` as an int64 ``[n_target, n_source]`` matrix (a kernel expanded)."""
    w = synapse_weights(c)
    return sp.csr_matrix(w.matrix() if isinstance(w, Kernel) else w).astype(np.int64)


def a_out(w: sp.csr_matrix, weight_exp: int, x: np.ndarray) -> np.ndarray:
    """A synapse's output for inputs ``x`` ``[B, n_src]`` (int64): ``int32(x @ W.T) << weight_exp``, wrapped as
    Lava's int32 arithmetic wraps, floor for a negative exponent."""
    acc = torch.from_numpy(np.asarray(w @ x.T).T.copy())
    return arith.weight_shift(arith.wrap32(acc), weight_exp).numpy()


def neuron_step(n: Neuron, u: torch.Tensor, v: torch.Tensor, a: np.ndarray,
                spiking: bool) -> tuple[torch.Tensor, np.ndarray]:
    """One step of the neuron (``u`` new, ``v`` in place) for the activation ``a`` ``[B, n]``: its output,
    spikes (bool) or the voltage (int64)."""
    uf, vf = (torch.from_numpy(f.astype(np.float64)) for f in (n.u_factor, n.v_factor))
    u = arith.current_update(u, torch.from_numpy(a.astype(np.float64)), uf)
    arith.voltage_update_(v, u, vf, torch.from_numpy(n.bias.astype(np.float64)))
    if spiking:
        return u, arith.spike_and_reset_(v, torch.from_numpy(n.vth.astype(np.float64))).numpy()
    return u, v.numpy().astype(np.int64)


def run_layer(lay: Layer, outs: dict[str, np.ndarray], T: int, B: int,
              volts: np.ndarray | None = None) -> np.ndarray:
    """Layer ``lay`` over the window: its output ``[T, B, n]`` (bool spikes or int64 voltage) from its
    sources' outputs ``outs`` (layers earlier in the plan, and the input); the voltage after each step's reset
    into ``volts`` ``[T, B, n]`` where given."""
    n = Neuron.from_plan(lay)
    conns = [(c, _int_matrix(c)) for c in lay.conns]
    for c, _ in conns:
        if c.source not in outs and c.source != lay.name:
            what, later = ("a recurrent input from", "later") if c.recurrent else ("from", "later in the plan")
            raise UserError(f"{lay.name!r} receives {what} {c.source!r}, which runs {later}")
    out = np.zeros((T, B, lay.size), dtype=bool if lay.spiking else np.int64)
    u = torch.zeros((B, lay.size), dtype=torch.float64)
    v = torch.from_numpy(np.broadcast_to(n.v0.astype(np.float64), (B, lay.size)).copy())
    for t in range(T):
        a = np.broadcast_to(n.b0 + (n.b1 if t > 0 else 0), (B, lay.size)).copy()
        for c, w in conns:
            if c.recurrent and t == 0:
                continue  # the recurrent input is dropped at a window's first step
            src = out if c.source == lay.name else outs[c.source]
            a += a_out(w, c.weight_exp, src[t - 1 if c.recurrent else t].astype(np.int64))
        u, out[t] = neuron_step(n, u, v, a, lay.spiking)
        if volts is not None:
            volts[t] = v.numpy()
    return out


def readout_units(plan: LavaPlan, recorded: np.ndarray) -> np.ndarray:
    """What lava-fixed's runner returns for the recorded readout ``[T, B, n_out]`` (float64 holding integers),
    in NIR units: a direct layer's spikes, or its voltage back in volts; else the connections' summed
    ``a_out`` over the readout scale plus the host-side biases ``c0`` (every step) and ``c1`` (from the second)."""
    ro = plan.readout
    if ro.direct:
        lay = plan.layer(ro.direct)
        if lay.spiking:
            return recorded.astype(np.float64)
        return recorded / (64.0 * lay.scale) + lay.v_reset.reshape(1, 1, -1)  # the shifted origin, back to volts
    out = recorded / ro.scale
    if ro.c0 is not None:
        out = out + ro.c0.reshape(1, 1, -1)
    if ro.c1 is not None:
        out[1:] = out[1:] + ro.c1.reshape(1, 1, -1)
    return out.astype(np.float64)


def run(plan: LavaPlan, x: np.ndarray, record_spikes: bool = False, record_voltages: bool = False) -> RunResult:
    """The plan on frames ``x`` ``[T, B, n_in]`` (flat), every sample from a fresh state, step by step
    (``record_voltages``: every layer's voltage after each step's reset, int32 ``[T, B, *shape]``)."""
    check_delays(plan)  # a connection that would not meet its target on time: not what Lava ran
    T, B = x.shape[:2]
    outs: dict[str, np.ndarray] = {plan.input_name: payload(plan, x)}
    volts: dict[str, np.ndarray] = {}
    for lay in plan.layers:
        if record_voltages:
            volts[lay.name] = np.zeros((T, B, lay.size), dtype=np.int32)
        outs[lay.name] = run_layer(lay, outs, T, B, volts.get(lay.name))
    ro = plan.readout
    if ro.direct:
        recorded = outs[ro.direct].astype(np.float64)
    else:
        total = np.zeros((T, B, ro.size), dtype=np.int64)
        for c in ro.conns:
            w = _int_matrix(c)
            src = outs[c.source]
            for t in range(1 if c.recurrent else 0, T):  # Lava's Recorder sums the int32 a_out exactly
                total[t] += a_out(w, c.weight_exp, src[t - 1 if c.recurrent else t].astype(np.int64))
        recorded = total.astype(np.float64)
    spiking = [lay for lay in plan.layers if lay.spiking]
    counts = {lay.name: np.count_nonzero(outs[lay.name], axis=2).astype(np.int64) for lay in spiking}
    spikes = ({lay.name: outs[lay.name].astype(np.uint8).reshape(T, B, *lay.shape) for lay in spiking}
              if record_spikes else {})
    return RunResult(output=readout_units(plan, recorded), spike_counts=counts, spikes=spikes,
                     voltages={lay.name: volts[lay.name].reshape(T, B, *lay.shape) for lay in plan.layers
                               if lay.name in volts})
