"""From a NIR graph to a Lava network plan: neuron layers, composed connections, delays, fixed point.

The plan is what ``deploy export --target lava`` writes (:func:`save_plan`, one HDF5 file) and what the
runner builds Lava processes from (:mod:`neuromoco.deploy.targets.lava_run`). Nothing in it depends on the number
of time steps or samples of a run.

How a graph becomes a plan
--------------------------
* *Units* are the nodes with a state or an external value: the Input node and every neuron node
  (LIF, IF, CubaLIF, LI, CubaLI). *Targets* are the neuron nodes and the Output node.
* Everything between units is stateless and linear (Affine, Linear, Conv1d, Conv2d, SumPool2d,
  AvgPool2d, Flatten, Scale, and sums of several edges). Lava has no process for a chain such as
  ``conv -> avgpool -> LIF``, so every target's input is composed into one linear map per source unit:
  each stateless node becomes a sparse matrix (``scipy.sparse``, float64; conv and pooling from a few
  PyTorch probes, see :func:`_colored_probe`) and the matrices are multiplied along the graph, the bias
  terms carried separately. Each composed map becomes one Lava ``Sparse`` (or ``Dense``) process. Along
  the way every path counts the recurrent edges it crosses (0 or 1).
* Neuron constants come from :func:`neuromoco.deploy.semantics.loihi_form` (Loihi's CUBA form, voltage origin
  shifted by ``v_reset``); its input gain is folded into the rows of the incoming maps.
* Every Lava connection process delays by one step (``Dense``/``Sparse`` send at ``t`` what they
  accumulated at ``t-1``). A target's *delay* ``d`` is how many steps after the reference it runs:
  ``d(Input) = 0`` and for every incoming path from unit ``S`` with ``r`` recurrent edges
  ``d(X) = d(S) + 1 - r``. A self-recurrent neuron (``r = 1`` from itself) is consistent by itself: the
  one-step delay of Lava's connection is exactly NIR's recurrent delay. Paths that disagree (a skip
  connection around layers, a cycle through two neuron layers) are refused with a message.
* Biases: a constant input to a neuron with ``du = 1`` is a membrane bias (Lava's ``bias_mant``); with
  ``du < 1`` it is a synaptic bias ``b0`` of the custom neuron; a bias that reaches a neuron through a
  recurrent edge starts one step late (``b1``). A bias in front of the Output is added on the host.

Fixed point (Loihi 2)
---------------------
Per neuron layer a real scale ``sigma`` maps volts to integer units: weights become ``mant * 2**exp``
with an 8-bit mantissa and one exponent per connection (mixed-sign weights: even mantissas in
[-256, 254], since Lava's bit-accurate synapse drops the lowest bit in mixed-sign mode; single-sign:
[0, 255] or [-255, 0]); the threshold is ``round(sigma * vth)`` (17 bits, shifted left by 6 in the
neuron), the bias ``round(64 * sigma * bias)`` as a 13-bit mantissa with a 3-bit exponent, decays are
12-bit (``du * 4096 - 1`` because Lava's current decay adds one, ``dv * 4096``), graded input is
``round(x * input_scale)``. ``sigma`` puts every row's largest weight at the full mantissa (254 after the
connection's exponent), lowered only where the worst-case input could overflow the 24-bit current or
voltage (:func:`_state_bound`); the exponent is the largest that keeps all but 1 % of the rows at the full
mantissa, up to the one that gives every threshold 12 bits. (Weights are where the error is: a threshold
of 9 bits or more, 6 more bits in the voltage, errs far less than an 8-bit weight.)
The error of every quantized quantity is reported per layer (:attr:`LavaPlan.report`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from neuromoco.deploy.graph import (
    check_graph,
    conv_geometry,
    flatten_dims,
    node_io_shapes,
    normalize_graph,
    pool_geometry,
    structure,
)
from neuromoco.deploy.semantics import NEURON_TYPES, SPIKING_TYPES, discretize, loihi_form
from neuromoco.errors import UserError

FORMAT = "neuromoco-lava-plan"
FORMAT_VERSION = 1
LINEAR_TYPES = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten,
                nir.Scale)
_NO_LOIHI = {
    "Threshold": "a stateless threshold (spike when the input exceeds a value, no membrane) has no Loihi "
                 "neuron counterpart",
}
PROBE_ELEMENTS = 1 << 23  # float64 elements per probing chunk (64 MiB)

# Loihi 2 / Lava bit widths
MANT_MIXED = 254  # largest even mantissa of a mixed-sign 8-bit weight
MANT_SINGLE = 255
VTH_MAX = (1 << 17) - 1
STATE_MAX = 1 << 23
ACT_SHIFT = 6
BIAS_MANT_MAX = 4095
BIAS_EXP_MAX = 7
DECAY_UNITY = 4096


@dataclass
class Conn:
    """One Lava connection process: ``matrix`` ``[n_target, n_source]`` from unit ``source``."""

    source: str
    matrix: sp.csr_matrix  # float64: gain-folded real weights (float) or integer mantissas (fixed)
    recurrent: bool = False
    weight_exp: int = 0  # fixed point: a_out = (mant @ s) << weight_exp
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)


@dataclass
class Layer:
    """A neuron node as a Lava neuron process (``LIFReset`` when it fits, else :class:`NirNeuron`)."""

    name: str
    kind: str  # NIR type name
    shape: tuple[int, ...]
    delay: int
    spiking: bool
    du: np.ndarray  # float: decay in [0, 1]; fixed: 12-bit integer as Lava wants it
    dv: np.ndarray
    vth: np.ndarray  # float: volts (shifted origin); fixed: 17-bit mantissa (inf / max when not spiking)
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    b0: np.ndarray  # synaptic bias from the first window step (fixed: activation units)
    b1: np.ndarray  # synaptic bias from the second window step (through a recurrent edge)
    v0: np.ndarray  # voltage at a window's start (shifted origin)
    v_reset: np.ndarray  # to turn a non-spiking layer's voltage back into NIR volts
    conns: list[Conn] = field(default_factory=list)
    scale: np.ndarray | float = 1.0  # fixed point, per neuron: integer activation units per volt (v: 64x)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def stock(self) -> bool:
        """Whether Lava's own ``LIFReset`` runs this layer (uniform parameters, reset to zero, no extras)."""
        uniform = all(np.all(a == a.flat[0]) for a in (self.du, self.dv, self.vth))
        return (self.spiking and uniform and not np.any(self.v0) and not np.any(self.b0)
                and not np.any(self.b1) and not any(c.recurrent for c in self.conns))

    @property
    def recurrent(self) -> bool:
        return any(c.recurrent for c in self.conns)


@dataclass
class Readout:
    """What the Output node receives: a neuron's output directly, or connections plus a host-side bias."""

    delay: int
    shape: tuple[int, ...]
    direct: str | None = None  # a layer whose output (spikes or voltage) is the graph's output
    conns: list[Conn] = field(default_factory=list)
    c0: np.ndarray | None = None  # bias from the first step
    c1: np.ndarray | None = None  # bias from the second step (through a recurrent edge)
    scale: np.ndarray | float = 1.0  # fixed point, per output: a_out / scale is the real value

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class LavaPlan:
    precision: str  # "float" | "fixed"
    dt: float | None
    input_name: str
    input_shape: tuple[int, ...]
    layers: list[Layer]
    readout: Readout
    input_scale: float = 1.0  # fixed point: graded payload = round(x * input_scale)
    input_max: float = 15.0  # fixed point: the largest input value the scales were chosen for
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def depth(self) -> int:
        return max([self.readout.delay, *(lay.delay for lay in self.layers)])

    def layer(self, name: str) -> Layer:
        return next(lay for lay in self.layers if lay.name == name)

    @property
    def spiking_layers(self) -> list[str]:
        return [lay.name for lay in self.layers if lay.spiking]


# =============================================================================================== compile

def compile_graph(graph: nir.NIRGraph, dt: float | None, *, precision: str = "float",
                  input_shape: list[int] | None = None, input_scale: float = 1.0,
                  input_max: float = 15.0, per_neuron_scale: bool = True, weight_bits: int = 8) -> LavaPlan:
    """Check ``graph`` and turn it into a :class:`LavaPlan` (``precision`` ``"float"`` or ``"fixed"``).

    Raises :class:`UserError` naming the node for anything Lava cannot run.
    """
    if precision not in ("float", "fixed"):
        raise UserError(f"Lava precision must be float or fixed, not {precision!r}")
    g = normalize_graph(graph)
    check_graph(g, input_shape=input_shape)
    for name, node in g.nodes.items():
        kind = type(node).__name__
        if kind in _NO_LOIHI:
            raise UserError(f"node {name!r} ({kind}) cannot run on Lava: {_NO_LOIHI[kind]}")
        if not isinstance(node, (nir.Input, nir.Output, *LINEAR_TYPES, *NEURON_TYPES)):
            raise UserError(f"node {name!r} ({kind}) has no Lava mapping")
    st = structure(g)
    io = node_io_shapes(g, input_shape)
    units = [n for n in st.order if n == st.input or isinstance(g.nodes[n], NEURON_TYPES)]
    neurons = [n for n in units if n != st.input]
    targets = [*neurons, st.output]
    stateless = [n for n in st.order if n not in units and n != st.output]
    lin_order = _stateless_order(g, st, stateless)

    pairs = _structural_pairs(g, st, units, targets, lin_order)
    delays = _delays(st, units, targets, pairs)
    ops = {n: _LinearOp(g.nodes[n], n, io[n][0], io[n][1]) for n in stateless}
    size = {n: int(np.prod(io[n][1])) for n in units}
    target_size = {t: int(np.prod(io[t][0] if t == st.output else io[t][1])) for t in targets}
    mats, biases = _compose(st, units, targets, lin_order, ops, size, target_size)

    layers: list[Layer] = []
    for name in neurons:
        node = g.nodes[name]
        shape = tuple(io[name][1])
        if isinstance(node, nir.IF) or dt is not None:
            n = discretize(node, float(dt) if dt is not None else 1.0)
        else:
            raise UserError(f"node {name!r} ({type(node).__name__}) needs dt: give it in the model card")
        lf = loihi_form(n, v_init=0.0)  # the reference starts every sample at v = 0, i = 0
        full = lambda a, shape=shape: np.broadcast_to(np.asarray(a, dtype=np.float64), shape).reshape(-1).copy()
        gain = full(lf.input_gain)
        conns = [Conn(src, sp.csr_matrix(sp.diags(gain) @ m), recurrent=bool(r))
                 for (src, r), m in mats[name].items()]
        du, dv, bias = full(lf.du), full(lf.dv), full(lf.bias)
        b0 = gain * biases[name].get(0, np.zeros(len(gain)))
        b1 = gain * biases[name].get(1, np.zeros(len(gain)))
        if np.all(du == 1.0) and np.any(b0):  # no current filter: a constant input is a membrane bias
            bias, b0 = bias + b0, np.zeros_like(b0)
        spiking = isinstance(node, SPIKING_TYPES)
        vth = full(lf.vth) if spiking else np.full(len(gain), np.inf)
        layers.append(Layer(name, type(node).__name__, shape, delays[name], spiking, du, dv, vth, bias,
                            np.zeros_like(bias), b0, b1, full(lf.v0), full(n.v_reset), conns))
    out_shape = tuple(io[st.output][0])
    readout = Readout(delays[st.output], out_shape)
    out_mats = mats[st.output]
    c0, c1 = biases[st.output].get(0), biases[st.output].get(1)
    ident = _is_identity(out_mats, size)
    if ident is not None and ident in neurons and c0 is None and c1 is None:
        readout.direct = ident
        readout.delay = delays[ident]
    else:
        if len(out_mats) == 0:
            raise UserError(f"the Output node {st.output!r} receives nothing Lava can compute")
        if (st.input, 0) in out_mats and ident == st.input:
            raise UserError(f"the Input node {st.input!r} feeds the Output node {st.output!r} directly; "
                            "there is no network to run")
        readout.conns = [Conn(src, m.tocsr(), recurrent=bool(r)) for (src, r), m in out_mats.items()]
        readout.c0, readout.c1 = c0, c1
    plan = LavaPlan(precision, dt, st.input, tuple(io[st.input][1]), layers, readout,
                    input_scale=float(input_scale), input_max=float(input_max))
    _check_plan(plan)
    if precision == "fixed":
        quantize_plan(plan, per_neuron=per_neuron_scale, weight_bits=int(weight_bits))
    plan.report = _report(plan)
    return plan


def _stateless_order(g: nir.NIRGraph, st, stateless: list[str]) -> list[str]:
    """Stateless nodes ordered over *all* edges among them (recurrent ones too); a cycle is refused."""
    members = set(stateless)
    indeg = {n: sum(1 for s, _ in st.preds[n] if s in members) for n in stateless}
    ready = [n for n in stateless if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for b in st.succs[n]:
            if b in members:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    if len(order) != len(stateless):
        loop = [n for n in stateless if n not in order]
        raise UserError(f"nodes {', '.join(loop)} form a cycle without a neuron; Lava needs a neuron in "
                        "every recurrent loop")
    return order


def _structural_pairs(g, st, units, targets, lin_order) -> dict[str, set[tuple[str, int]]]:
    """For every target, the (source unit, recurrent edges on the path) pairs that reach it."""
    reach: dict[str, set[tuple[str, int]]] = {u: {(u, 0)} for u in units}

    def incoming(n: str) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for src, rec in st.preds[n]:
            for u, r in reach[src]:
                out.add((u, r + int(rec)))
        return out

    for n in lin_order:
        reach[n] = incoming(n)
    pairs = {t: incoming(t) for t in targets}
    for t, ps in pairs.items():
        deep = [u for u, r in ps if r > 1]
        if deep:
            raise UserError(f"node {t!r} receives from {deep[0]!r} through two recurrent edges; the Lava "
                            "target supports one step of recurrence per loop")
    return pairs


def _delays(st, units, targets, pairs) -> dict[str, int]:
    """Lava delay of every unit and target; refuses paths that need different delays."""
    delay: dict[str, int] = {st.input: 0}
    pending = [t for t in st.order if t in targets]
    for t in pending:
        cands = [delay[u] + 1 - r for u, r in pairs[t] if u in delay]
        if not cands:
            raise UserError(f"node {t!r} is only reached through recurrent edges; the Lava target cannot "
                            "place it in time")
        delay[t] = max(cands)
    for t in pending:
        for u, r in sorted(pairs[t]):
            want = delay[u] + 1 - r
            if want != delay[t]:
                if r == 1:
                    raise UserError(
                        f"node {t!r} receives a recurrent input from {u!r} that loops through more than one "
                        f"neuron layer; every Lava connection adds a step of delay, so the Lava target "
                        f"supports recurrence of a neuron layer onto itself only")
                raise UserError(
                    f"node {t!r} receives from {u!r} and from another layer at different depths "
                    f"({abs(want - delay[t])} step(s) apart: a skip connection); every Lava connection "
                    f"adds one step of delay and the Lava target does not insert compensating delays")
    return delay


class _LinearOp:
    """A stateless node as ``x [N, *in] -> [N, *out]`` in float64, its bias separable."""

    def __init__(self, node: nir.NIRNode, name: str, in_shape, out_shape) -> None:
        self.node, self.name = node, name
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        t = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))
        self.bias = None
        if isinstance(node, (nir.Affine, nir.Linear)):
            self.w = t(node.weight)
            if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias)):
                self.bias = t(np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (self.w.shape[0],)))
        elif isinstance(node, (nir.Conv1d, nir.Conv2d)):
            self.g = conv_geometry(node, name)
            self.w = t(node.weight)
            if np.any(np.asarray(node.bias)):
                b = np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (self.w.shape[0],))
                self.bias = t(b).reshape(-1, *([1] * self.g["nd"]))
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            self.g = pool_geometry(node, name)
        elif isinstance(node, nir.Flatten):
            flatten_dims(node, len(self.in_shape), name)
        elif isinstance(node, nir.Scale):
            self.s = t(np.broadcast_to(np.asarray(node.scale, dtype=np.float64), self.in_shape))

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        node = self.node
        if isinstance(node, (nir.Affine, nir.Linear)):
            return x @ self.w.T
        if isinstance(node, (nir.Conv1d, nir.Conv2d)):
            g = self.g
            conv = F.conv1d if g["nd"] == 1 else F.conv2d
            flat = tuple(v for p in reversed(g["padding"]) for v in p)
            return conv(F.pad(x, flat), self.w, None, g["stride"], 0, g["dilation"], g["groups"])
        if isinstance(node, nir.SumPool2d):
            g = self.g
            return F.avg_pool2d(x, g["kernel"], g["stride"], g["padding"], count_include_pad=True,
                                divisor_override=1)
        if isinstance(node, nir.AvgPool2d):
            g = self.g
            return F.avg_pool2d(x, g["kernel"], g["stride"], g["padding"], count_include_pad=True)
        if isinstance(node, nir.Flatten):
            return x.reshape(x.shape[0], *self.out_shape)
        if isinstance(node, nir.Scale):
            return x * self.s
        raise AssertionError(type(node))


def _op_matrix(op: _LinearOp) -> sp.csr_matrix:
    """The node's linear part as a sparse matrix ``[n_out, n_in]`` (row-major flattening, like NIR's)."""
    node = op.node
    n_in, n_out = int(np.prod(op.in_shape)), int(np.prod(op.out_shape))
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = op.w.numpy()
        lead = int(np.prod(op.in_shape[:-1]))  # Affine acts on the last dimension
        return sp.csr_matrix(sp.kron(sp.identity(lead), sp.csr_matrix(w)))
    if isinstance(node, nir.Flatten):
        return sp.identity(n_in, format="csr")
    if isinstance(node, nir.Scale):
        return sp.diags(op.s.numpy().reshape(-1)).tocsr()
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        g = op.g
        span = [d * (k - 1) + 1 for k, d in zip(g["kernel"], g["dilation"])]
        return _colored_probe(op, span, g["stride"], [p0 for p0, _ in g["padding"]], n_out, n_in)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        g = op.g
        return _colored_probe(op, list(g["kernel"]), g["stride"], list(g["padding"]), n_out, n_in)
    raise AssertionError(type(node))


def _colored_probe(op: _LinearOp, span, stride, pad_before, n_out: int, n_in: int) -> sp.csr_matrix:
    """Sparse matrix of a conv / pooling op from a few probes (compressed Jacobian, Curtis-Powell-Reid).

    One probe holds a 1 at every input position of one channel whose coordinates are congruent to an
    offset modulo the receptive-field span, so no output sees two of them; an output's value is then
    attributed to the one input position of its window that the probe set.
    """
    C, *sp_in = op.in_shape
    nd = len(sp_in)
    offsets = np.stack(np.meshgrid(*[np.arange(s) for s in span], indexing="ij"), -1).reshape(-1, nd)
    rows_all, cols_all, vals_all = [], [], []
    probes = [(c, off) for c in range(C) for off in offsets]
    per = max(1, PROBE_ELEMENTS // max(1, n_in + n_out))
    grids = np.meshgrid(*[np.arange(n) for n in sp_in], indexing="ij")
    out_sp = op.out_shape[1:]
    with torch.no_grad():
        for start in range(0, len(probes), per):
            chunk = probes[start:start + per]
            x = np.zeros((len(chunk), C, *sp_in))
            for i, (c, off) in enumerate(chunk):
                mask = np.ones(sp_in, dtype=bool)
                for dim in range(nd):
                    mask &= grids[dim] % span[dim] == off[dim]
                x[i, c][mask] = 1.0
            y = op.linear(torch.as_tensor(x)).numpy()  # [n, C_out, *out_sp]
            pi, *oidx = np.nonzero(y)
            if pi.size == 0:
                continue
            val = y[(pi, *oidx)]
            o_pos = oidx[1:]
            chans = np.array([chunk[i][0] for i in range(len(chunk))])[pi]
            offs = np.stack([chunk[i][1] for i in range(len(chunk))])[pi]
            in_pos, ok = [], np.ones(pi.size, dtype=bool)
            for dim in range(nd):
                lo = o_pos[dim] * stride[dim] - pad_before[dim]
                pos = lo + np.mod(offs[:, dim] - lo, span[dim])
                ok &= (pos >= 0) & (pos < sp_in[dim])
                in_pos.append(pos)
            col = chans
            for dim in range(nd):
                col = col * sp_in[dim] + in_pos[dim]
            row = oidx[0]
            for dim in range(nd):
                row = row * out_sp[dim] + o_pos[dim]
            if not ok.all():
                raise AssertionError(f"probe attribution failed for node {op.name!r}")
            rows_all.append(row)
            cols_all.append(col)
            vals_all.append(val)
    if not rows_all:
        return sp.csr_matrix((n_out, n_in))
    m = sp.csr_matrix((np.concatenate(vals_all), (np.concatenate(rows_all), np.concatenate(cols_all))),
                      shape=(n_out, n_in))
    m.sum_duplicates()
    return m


def _op_bias(op: _LinearOp) -> np.ndarray | None:
    if op.bias is None:
        return None
    return op.bias.expand(*op.out_shape).reshape(-1).numpy().copy() if op.bias.dim() > 1 else \
        np.broadcast_to(op.bias.numpy(), op.out_shape).reshape(-1).copy()


def _compose(st, units, targets, lin_order, ops, size, target_size
             ) -> tuple[dict[str, dict[tuple[str, int], sp.csr_matrix]], dict[str, dict[int, np.ndarray]]]:
    """Every target's input as sparse maps per (source unit, recurrent edges) plus biases per delay.

    Each stateless node's matrix (:func:`_op_matrix`) is multiplied along the graph in float64; several
    edges into a node add; a recurrent edge moves a term to the next delay.
    """
    maps: dict[str, dict[tuple[str, int], sp.csr_matrix]] = {u: {(u, 0): sp.identity(size[u], format="csr")}
                                                             for u in units}
    bias: dict[str, dict[int, np.ndarray]] = {u: {} for u in units}

    def gather(node: str):
        acc: dict[tuple[str, int], sp.csr_matrix] = {}
        bacc: dict[int, np.ndarray] = {}
        for src, rec in st.preds[node]:
            for (u, r), m in maps[src].items():
                key = (u, r + int(rec))
                acc[key] = m if key not in acc else acc[key] + m
            for r, b in bias[src].items():
                k = r + int(rec)
                bacc[k] = b if k not in bacc else bacc[k] + b
        return acc, bacc

    for name in lin_order:
        op = ops[name]
        a = _op_matrix(op)
        inp, binp = gather(name)
        maps[name] = {k: sp.csr_matrix(a @ m) for k, m in inp.items()}
        bias[name] = {r: a @ b for r, b in binp.items()}
        own = _op_bias(op)
        if own is not None:
            bias[name][0] = own if 0 not in bias[name] else bias[name][0] + own
    mats: dict[str, dict[tuple[str, int], sp.csr_matrix]] = {}
    biases: dict[str, dict[int, np.ndarray]] = {}
    for t in targets:
        acc, bacc = gather(t)
        mats[t] = {}
        for k, m in acc.items():
            m = sp.csr_matrix(m, dtype=np.float64)
            m.eliminate_zeros()
            if m.nnz:
                m.sort_indices()
                mats[t][k] = m
        biases[t] = {r: np.asarray(b, dtype=np.float64).reshape(-1) for r, b in bacc.items() if np.any(b)}
    return mats, biases


def _is_identity(mats: dict[tuple[str, int], sp.csr_matrix], size: dict[str, int]) -> str | None:
    """The source unit when the Output receives exactly one unit's output unchanged."""
    if len(mats) != 1:
        return None
    (src, r), m = next(iter(mats.items()))
    if r != 0 or m.shape[0] != m.shape[1] or m.nnz != m.shape[0]:
        return None
    eye = sp.identity(m.shape[0], format="csr")
    return src if (abs(m - eye)).nnz == 0 else None


def _check_plan(plan: LavaPlan) -> None:
    names = {lay.name: lay for lay in plan.layers}
    for lay in plan.layers:
        for c in lay.conns:
            src = names.get(c.source)
            if src is not None and not src.spiking and plan.precision == "fixed":
                raise UserError(f"node {c.source!r} ({src.kind}) is non-spiking and feeds {lay.name!r}: the "
                                "Lava fixed-point target supports LI / CubaLI only as the readout")
        if plan.precision == "fixed":
            for what, a in (("du", lay.du), ("dv", lay.dv)):
                if np.any(a < 0) or np.any(a > 1):
                    raise UserError(f"node {lay.name!r} ({lay.kind}): decay {what} = dt/tau outside [0, 1] "
                                    f"({a.min():g}..{a.max():g}); dt is larger than a time constant")
            if lay.spiking and np.any(lay.vth <= 0):
                raise UserError(f"node {lay.name!r} ({lay.kind}): v_threshold - v_reset must be > 0 for "
                                "Loihi's unsigned threshold")


# ============================================================================================ fixed point

def _mantissa(x: np.ndarray, mixed: bool) -> np.ndarray:
    """Round real mantissas to what Lava's bit-accurate synapse keeps (even values when mixed-sign)."""
    if mixed:
        return np.clip(2.0 * np.round(x / 2.0), -256, MANT_MIXED)
    return np.clip(np.round(x), -MANT_SINGLE, MANT_SINGLE)


def _quantize_conn(m: sp.csr_matrix, sigma: np.ndarray, parts: int = 1
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
    rest = real.copy()
    total = np.zeros_like(real)
    modes, exps = [], []
    for _ in range(parts):
        if not np.any(rest):
            break
        mixed = bool(rest.min() < 0 < rest.max())
        top = MANT_MIXED if mixed else MANT_SINGLE
        exp = math.ceil(math.log2(np.abs(rest).max() / top) - 1e-9)  # a last-bit excess is not a new bit
        mant = _mantissa(rest / 2.0 ** exp, mixed)
        q = sp.csr_matrix((mant.copy(), m.indices.copy(), m.indptr.copy()), shape=m.shape)  # own copy
        q.eliminate_zeros()
        out.append((q, exp))
        total += mant * 2.0 ** exp
        rest = real - total
        modes.append("mixed" if mixed else ("excitatory" if mant.max() > 0 else "inhibitory"))
        exps.append(exp)
        if len(out) == 1:
            first = mant
    err = total / sigma[rows] - m.data
    rep = {"sign_mode": modes[0], "weight_exp": exps[0], "mantissa_min": int(first.min()),
           "mantissa_max": int(first.max()), "synapses_per_weight": len(out),
           "rel_weight_error": float(np.linalg.norm(err) / max(np.linalg.norm(m.data), 1e-300)),
           "max_abs_weight_error_rel_to_max": float(np.abs(err).max() / np.abs(m.data).max()),
           "weights_rounded_to_zero": float(np.mean((total == 0) & (m.data != 0)))}
    if len(out) > 1:
        rep["residual_weight_exp"] = exps[1:]
    return out, rep


def _split_bias(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` (integer units) as 13-bit mantissa << 3-bit exponent per neuron; returns mant, exp, error."""
    mag = np.abs(x)
    exp = np.zeros(x.shape)
    big = mag > BIAS_MANT_MAX
    exp[big] = np.ceil(np.log2(mag[big] / BIAS_MANT_MAX))
    exp = np.clip(exp, 0, BIAS_EXP_MAX)
    mant = np.clip(np.round(x / 2.0 ** exp), -BIAS_MANT_MAX, BIAS_MANT_MAX)
    return mant, exp, np.abs(mant * 2.0 ** exp - x)


def _row_max(conns: list[Conn], n: int) -> np.ndarray:
    out = np.zeros(n)
    for c in conns:
        if c.nnz:
            out = np.maximum(out, np.asarray(abs(c.matrix).max(axis=1).todense()).ravel())
    return out


def _row_bound(conns: list[Conn], plan: LavaPlan, n: int) -> np.ndarray:
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


def _state_bound(step_input: np.ndarray, bias: np.ndarray, du: np.ndarray, dv: np.ndarray,
                 vth: np.ndarray | None) -> np.ndarray:
    """Worst-case |current| and |voltage| in volts from a worst-case input per step: the current settles at
    most at ``input / du``, the voltage at ``(current + |bias|) / dv`` below zero and one threshold more
    above (it resets on crossing). Decays under 1/2 count as 1/2, as integrators must be bounded somewhere."""
    du = np.maximum(np.broadcast_to(du, step_input.shape), 0.5)
    dv = np.maximum(np.broadcast_to(dv, step_input.shape), 0.5)
    current = step_input / du
    above = 0.0 if vth is None else np.where(np.isfinite(vth), vth, 0.0)
    return np.maximum(current, (current + np.abs(bias)) / dv + above)


def _scales(rowmax: np.ndarray, vth: np.ndarray | None, bound: np.ndarray, per_neuron: bool) -> np.ndarray:
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


def _quantized_conns(conns: list[Conn], sigma: np.ndarray, parts: int, rep: dict[str, Any]) -> list[Conn]:
    out = []
    for c in conns:
        pieces, report = _quantize_conn(c.matrix, sigma, parts)
        rep["connections"][c.source + (" (recurrent)" if c.recurrent else "")] = report
        out += [Conn(c.source, q, c.recurrent, e, report if i == 0 else {"residual_of": c.source})
                for i, (q, e) in enumerate(pieces)]
    return out


def quantize_plan(plan: LavaPlan, per_neuron: bool = True, weight_bits: int = 8) -> None:
    """Turn a float plan into Loihi 2 fixed point in place, recording the error of every quantity.

    ``per_neuron``: every neuron gets its own scale (its threshold mantissa absorbs it), so every row of
    a weight matrix uses the full 8-bit mantissa, like per-channel int8 quantization; otherwise one scale
    per layer, which keeps Lava's own ``LIFReset`` (one threshold per process) usable.
    ``weight_bits``: 8 (Loihi's synapse) or 16 (every weight split over two 8-bit synapses).
    """
    if weight_bits not in (8, 16):
        raise UserError(f"Lava fixed-point weight_bits must be 8 or 16, not {weight_bits!r}")
    weight_parts = weight_bits // 8
    for lay in plan.layers:
        for c in lay.conns:  # graded input arrives as round(x * input_scale)
            if c.source == plan.input_name:
                c.matrix = sp.csr_matrix(c.matrix / plan.input_scale)
        step_input = _row_bound(lay.conns, plan, lay.size) + np.abs(lay.b0) + np.abs(lay.b1)
        bound = _state_bound(step_input, lay.bias_mant, lay.du, lay.dv, lay.vth if lay.spiking else None)
        sigma = _scales(_row_max(lay.conns, lay.size), lay.vth if lay.spiking else None, bound, per_neuron)
        lay.scale = sigma
        rep: dict[str, Any] = {"scale_min": float(sigma.min()), "scale_max": float(sigma.max()),
                               "connections": {}}
        lay.conns = _quantized_conns(lay.conns, sigma, weight_parts, rep)
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
        mant, bexp, berr = _split_bias(lay.bias_mant * unit)
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
    ro = plan.readout
    if ro.conns:
        for c in ro.conns:
            if c.source == plan.input_name:
                c.matrix = sp.csr_matrix(c.matrix / plan.input_scale)
        rowmax = _row_max(ro.conns, ro.size)
        ro.scale = _scales(rowmax, None, np.zeros(ro.size), per_neuron)
        rep = {"scale_min": float(ro.scale.min()), "scale_max": float(ro.scale.max()), "connections": {}}
        ro.conns = _quantized_conns(ro.conns, ro.scale, weight_parts, rep)
        ro_report = rep
    else:
        ro_report = {"direct": ro.direct}
    plan.report = {"readout": ro_report}


def _report(plan: LavaPlan) -> dict[str, Any]:
    """A JSON-ready description of the plan with the quantization errors per layer."""
    layers = []
    for lay in plan.layers:
        entry: dict[str, Any] = {
            "name": lay.name, "type": lay.kind, "neurons": lay.size, "shape": list(lay.shape),
            "delay": lay.delay, "spiking": lay.spiking,
            "process": "LIFReset" if lay.stock else "NirNeuron",
            "connections": [{"source": c.source, "recurrent": c.recurrent, "synapses": c.nnz,
                             "process": connection_process(c.matrix, 1)} for c in lay.conns],
        }
        if plan.precision == "fixed":
            entry["quantization"] = lay.report
        layers.append(entry)
    ro = plan.readout
    readout: dict[str, Any] = {"delay": ro.delay, "outputs": ro.size}
    if ro.direct:
        readout["direct"] = ro.direct
    else:
        readout["connections"] = [{"source": c.source, "synapses": c.nnz,
                                   "process": connection_process(c.matrix, 1)} for c in ro.conns]
        readout["bias"] = "added on the host" if ro.c0 is not None or ro.c1 is not None else None
        if plan.precision == "fixed":
            readout["quantization"] = plan.report.get("readout")
    summary: dict[str, Any] = {"precision": plan.precision, "dt": plan.dt, "input": plan.input_name,
                               "input_shape": list(plan.input_shape), "depth": plan.depth,
                               "layers": layers, "readout": readout}
    if plan.precision == "fixed":
        errs = [r["rel_weight_error"] for lay in plan.layers for r in lay.report["connections"].values()
                if "rel_weight_error" in r]
        summary["input_scale"] = plan.input_scale
        summary["input_max"] = plan.input_max
        summary["max_rel_weight_error"] = max(errs) if errs else 0.0
    return summary


def connection_process(m: sp.spmatrix, tiles: int) -> str:
    """``Dense`` for a small, dense map run one sample at a time, ``Sparse`` otherwise."""
    n = m.shape[0] * m.shape[1]
    return "Dense" if tiles == 1 and n <= (1 << 22) and m.nnz > 0.25 * n else "Sparse"


# ============================================================================================ save / load

def save_plan(plan: LavaPlan, path: str | Path) -> Path:
    """Write the plan as one HDF5 file (atomically): JSON metadata plus arrays."""
    import h5py

    from neuromoco.io import atomic_write

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            meta = {"format": FORMAT, "version": FORMAT_VERSION, "precision": plan.precision, "dt": plan.dt,
                    "input_name": plan.input_name, "input_shape": list(plan.input_shape),
                    "input_scale": plan.input_scale, "input_max": plan.input_max,
                    "layers": [{"name": lay.name, "kind": lay.kind, "shape": list(lay.shape),
                                "delay": lay.delay, "spiking": lay.spiking,
                                "conns": [_conn_meta(c) for c in lay.conns]} for lay in plan.layers],
                    "readout": {"delay": plan.readout.delay, "shape": list(plan.readout.shape),
                                "direct": plan.readout.direct,
                                "conns": [_conn_meta(c) for c in plan.readout.conns]}}
            f.attrs["meta"] = json.dumps(meta)
            f.attrs["report"] = json.dumps(plan.report, default=_jsonable)
            for i, lay in enumerate(plan.layers):
                grp = f.create_group(f"layers/{i}")
                for k in ("du", "dv", "vth", "bias_mant", "bias_exp", "b0", "b1", "v0", "v_reset"):
                    grp.create_dataset(k, data=np.asarray(getattr(lay, k), dtype=np.float64))
                grp.create_dataset("scale", data=np.broadcast_to(np.asarray(lay.scale, dtype=np.float64),
                                                                 (lay.size,)))
                for j, c in enumerate(lay.conns):
                    _write_csr(grp.create_group(f"conns/{j}"), c.matrix)
            ro = f.create_group("readout")
            ro.create_dataset("scale", data=np.broadcast_to(np.asarray(plan.readout.scale, dtype=np.float64),
                                                            (plan.readout.size,)))
            for k in ("c0", "c1"):
                if getattr(plan.readout, k) is not None:
                    ro.create_dataset(k, data=getattr(plan.readout, k))
            for j, c in enumerate(plan.readout.conns):
                _write_csr(ro.create_group(f"conns/{j}"), c.matrix)

    return atomic_write(path, write)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _conn_meta(c: Conn) -> dict[str, Any]:
    return {"source": c.source, "recurrent": c.recurrent, "weight_exp": c.weight_exp, "report": c.report}


def _write_csr(grp, m: sp.csr_matrix) -> None:
    m = sp.csr_matrix(m)
    grp.create_dataset("data", data=m.data, compression="gzip")
    grp.create_dataset("indices", data=m.indices, compression="gzip")
    grp.create_dataset("indptr", data=m.indptr, compression="gzip")
    grp.attrs["shape"] = list(m.shape)


def _read_csr(grp) -> sp.csr_matrix:
    return sp.csr_matrix((grp["data"][()], grp["indices"][()], grp["indptr"][()]),
                         shape=tuple(int(v) for v in grp.attrs["shape"]))


def load_plan(path: str | Path) -> LavaPlan:
    """Read a plan written by :func:`save_plan` (a clear error for anything else)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise UserError(f"Lava network file not found: {path}") from None
    except OSError as err:
        raise UserError(f"{path} is not a readable Lava network file ({err})") from None
    with f:
        try:
            meta = json.loads(f.attrs["meta"])
        except KeyError:
            raise UserError(f"{path} is not a Lava network written by `deploy export --target lava`") from None
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise UserError(f"{path}: unknown Lava network format {meta.get('format')!r} "
                            f"version {meta.get('version')!r}")
        layers = []
        for i, lm in enumerate(meta["layers"]):
            grp = f[f"layers/{i}"]
            arr = {k: grp[k][()] for k in ("du", "dv", "vth", "bias_mant", "bias_exp", "b0", "b1", "v0",
                                          "v_reset", "scale")}
            conns = [Conn(cm["source"], _read_csr(grp[f"conns/{j}"]), cm["recurrent"], cm["weight_exp"],
                          cm.get("report", {})) for j, cm in enumerate(lm["conns"])]
            layers.append(Layer(lm["name"], lm["kind"], tuple(lm["shape"]), lm["delay"], lm["spiking"],
                                conns=conns, **arr))
        rm = meta["readout"]
        ro = f["readout"]
        readout = Readout(rm["delay"], tuple(rm["shape"]), rm["direct"],
                          [Conn(cm["source"], _read_csr(ro[f"conns/{j}"]), cm["recurrent"], cm["weight_exp"],
                                cm.get("report", {})) for j, cm in enumerate(rm["conns"])],
                          ro["c0"][()] if "c0" in ro else None, ro["c1"][()] if "c1" in ro else None,
                          ro["scale"][()])
        plan = LavaPlan(meta["precision"], meta["dt"], meta["input_name"], tuple(meta["input_shape"]), layers,
                        readout, meta["input_scale"], meta["input_max"], json.loads(f.attrs["report"]))
    return plan
