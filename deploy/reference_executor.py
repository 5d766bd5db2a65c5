"""The reference executor: a NIR graph run in PyTorch, batched over samples, on CPU or CUDA.

Every target is compared with this. Its discrete-time meaning is :mod:`neuromoco.deploy.semantics` (forward Euler,
Norse's evaluation order for the LIF, current before voltage for CubaLIF, reset to ``v_reset``), so a
model trained with the project's Norse LIF and exported with ``neuromoco.train.export`` gives the same spikes bit
for bit in float32 on CPU.

How it runs:

* Feed-forward parts (every node not on a cycle) go layer by layer over the whole sequence: a stateless
  node (conv, pooling, affine, flatten, ...) sees all ``T * B`` frames at once, folded into its batch
  dimension exactly as the training models fold them, and a neuron node loops over ``T`` on its own
  state. This is fast and reproduces the training numerics.
* A cycle (a recurrent layer) is stepped one time step at a time, its nodes in execution order. The
  recurrent edge that closes the cycle (see :func:`neuromoco.deploy.graph.structure`) carries its source's output
  of the previous step, zero at the first step: for an RNN ``input -> W_in -> neuron -> W_rec -> neuron``
  the neuron at step t receives ``W_in x[t] + W_rec s[t-1]`` (snnTorch's RLeaky / RSynaptic meaning).
* Several edges into one node add up, in file order.
* Neuron state starts at zero (``v = 0``, ``i = 0``) for every sample.

``float64`` mode (``dtype=torch.float64``) forms every constant in float64 too; use it to compare with
Lava's floating-point simulation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import nir
import numpy as np
import torch
import torch.nn.functional as F

from neuromoco.deploy.graph import (
    check_graph,
    conv_geometry,
    fit_param,
    node_io_shapes,
    normalize_graph,
    pool_geometry,
    structure,
)
from neuromoco.deploy.graph.shapes import check_frames_shape, check_time_axis
from neuromoco.deploy.nodes import NEURON_TYPES, NODES, facts, handler
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.semantics import DiscreteNeuron, discretize, euler_gain
from neuromoco.errors import UserError

Tensor = torch.Tensor
Shape = tuple[int, ...]
Kernel = Callable[[Tensor], Tensor]  # a stateless node: [N, *in_shape] -> [N, *out_shape]
#: the weights a kernel applies: the node's own ("real", with its bias), or each weight replaced by 1 ("ones") or by
#: its non-zero mask ("nonzero"), without bias: the unit maps whose gradients count synapses (deploy/metrics)
Weights = Literal["real", "ones", "nonzero"]


# ------------------------------------------------------------------------------------ neuron kernels

class _Neuron:
    """Forward-Euler neuron on a state ``[B, *shape]``; see :mod:`neuromoco.deploy.semantics` for the equations."""

    def __init__(self, node: nir.NIRNode, shape: tuple[int, ...], dt: float | None, device: torch.device,
                 dtype: torch.dtype, name: str) -> None:
        if dt is None and NODES[type(node)].leak:
            raise UserError(f"node {name!r} ({type(node).__name__}) needs dt: give it in the model card or with --dt")
        n = discretize(node, float(dt) if dt is not None else 1.0)
        npd = np.float64 if dtype == torch.float64 else np.float32
        def t(a: object) -> Tensor:
            return torch.as_tensor(np.asarray(a, dtype=npd), device=device)

        n = _fit_neuron(n, shape)
        self.shape = shape
        self.spiking = n.spiking
        self.has_current = n.has_current
        self.r = t(n.r)
        self.r_one = bool(np.all(n.r == 1.0))
        self.v_leak = t(n.v_leak)
        self.v_leak_zero = bool(np.all(n.v_leak == 0.0))
        self.leaky = n.tau_mem is not None
        self.k_mem = t(euler_gain(n.dt, n.tau_mem, npd)) if n.tau_mem is not None else None
        self.v_th = t(n.v_threshold) if n.v_threshold is not None else None
        self.v_reset = t(n.v_reset)
        if n.has_current:
            if n.tau_syn is None:
                raise UserError(f"node {name!r} ({n.kind}) has a synaptic current but no tau_syn")
            self.k_syn = t(euler_gain(n.dt, n.tau_syn, npd))
            self.w_in = t(n.w_in)
            self.w_in_one = bool(np.all(n.w_in == 1.0))

    def init(self, batch: int, like: Tensor) -> dict[str, Tensor]:
        z = torch.zeros((batch, *self.shape), dtype=like.dtype, device=like.device)
        return {"v": z, "i": z.clone()} if self.has_current else {"v": z}

    def step(self, x: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One step: input ``x`` ``[B, *shape]`` -> output (spikes or voltage) and the new state."""
        if self.has_current:  # i = i + k_syn * (w_in * I - i), then the membrane sees i
            i = state["i"]
            drive = x if self.w_in_one else self.w_in * x
            i = i + self.k_syn * (drive - i)
            x = i
        v = state["v"]
        ri = x if self.r_one else self.r * x
        if self.k_mem is not None:  # leaky. Norse: v + dt * tau_inv * (I + v_leak - v)
            v = v + self.k_mem * ((ri if self.v_leak_zero else ri + self.v_leak) - v)
        else:  # IF: v + r * I
            v = v + ri
        new = {"v": v}
        if self.has_current:
            new["i"] = i
        if self.v_th is None:  # not spiking
            return v, new
        s = v > self.v_th
        new["v_pre"] = v  # voltage before reset, for traces
        new["v"] = torch.where(s, self.v_reset, v)
        return s.to(v.dtype), new


def _fit_neuron(n: DiscreteNeuron, shape: tuple[int, ...]) -> DiscreteNeuron:
    """``n`` with every parameter array of exactly the node's state ``shape``."""
    def fit(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else fit_param(a, shape)

    return replace(n, shape=tuple(shape), tau_mem=fit(n.tau_mem), r=fit_param(n.r, shape),
                   v_leak=fit_param(n.v_leak, shape), v_threshold=fit(n.v_threshold),
                   v_reset=fit_param(n.v_reset, shape), tau_syn=fit(n.tau_syn), w_in=fit(n.w_in))


# ---------------------------------------------------------------------------------- kernels per node type

@dataclass(frozen=True)
class _Site:
    """What a kernel is built for besides its node: the node's name and shapes, the run's dt, device and dtype."""

    name: str
    in_shape: Shape
    out_shape: Shape
    dt: float | None
    device: torch.device
    dtype: torch.dtype
    weights: Weights = "real"

    def tensor(self, a: object) -> Tensor:
        return torch.as_tensor(np.array(a), device=self.device).to(self.dtype).contiguous()

    def weight(self, a: object) -> Tensor:
        """A weight array (a synapse's matrix or kernel, Scale's factors) as :attr:`weights` says to apply it."""
        if self.weights == "real":
            return self.tensor(a)
        w = np.asarray(a, dtype=np.float64)
        return self.tensor(np.ones_like(w) if self.weights == "ones" else w != 0)

    def bias(self, node: nir.NIRNode, n_out: int) -> Tensor | None:
        """``node.bias`` over ``n_out`` outputs; None for a node without one, an all-zero bias (adds nothing) or
        unit weights."""
        if (self.weights != "real" or "bias" not in NODES[type(node)].params
                or not np.any(np.asarray(node.bias, dtype=np.float64))):
            return None
        return self.tensor(fit_param(node.bias, (n_out,)))


def _identity(node: nir.NIRNode, site: _Site) -> Kernel:
    return lambda x: x


def _linear(node: nir.NIRNode, site: _Site) -> Kernel:
    w = site.weight(node.weight)
    b = site.bias(node, w.shape[0])
    return lambda x: F.linear(x, w, b)


def _conv(node: nir.NIRNode, site: _Site) -> Kernel:
    g = conv_geometry(node, site.name)
    w = site.weight(node.weight)
    b = site.bias(node, w.shape[0])
    conv = F.conv1d if g["nd"] == 1 else F.conv2d
    pads = g["padding"]
    if all(p0 == p1 for p0, p1 in pads):
        pad = tuple(p0 for p0, _ in pads)
        return lambda x: conv(x, w, b, g["stride"], pad, g["dilation"], g["groups"])
    flat = tuple(v for p in reversed(pads) for v in p)  # F.pad wants the last dim first
    return lambda x: conv(F.pad(x, flat), w, b, g["stride"], 0, g["dilation"], g["groups"])


def _sum_pool(node: nir.NIRNode, site: _Site) -> Kernel:
    g = pool_geometry(node, site.name)
    return lambda x: F.avg_pool2d(x, g["kernel"], g["stride"], g["padding"], count_include_pad=True,
                                  divisor_override=1)


def _avg_pool(node: nir.NIRNode, site: _Site) -> Kernel:
    if site.weights != "real":  # its taps' weight 1/window counted as 1: a window sum
        return _sum_pool(node, site)
    g = pool_geometry(node, site.name)
    return lambda x: F.avg_pool2d(x, g["kernel"], g["stride"], g["padding"], count_include_pad=True)


def _flatten(node: nir.NIRNode, site: _Site) -> Kernel:
    out_shape = site.out_shape
    return lambda x: x.reshape(x.shape[0], *out_shape)


def _scale(node: nir.NIRNode, site: _Site) -> Kernel:
    s = site.weight(fit_param(node.scale, site.in_shape))
    return lambda x: x * s


def _threshold(node: nir.NIRNode, site: _Site) -> Kernel:
    th = site.tensor(fit_param(node.threshold, site.in_shape))
    return lambda x: (x > th).to(x.dtype)


def _neuron(node: nir.NIRNode, site: _Site) -> _Neuron:
    return _Neuron(node, site.out_shape, site.dt, site.device, site.dtype, site.name)


#: how the reference executes each node type: a stateless kernel over folded frames, or a stepped neuron
KERNELS: dict[type, Callable[[nir.NIRNode, _Site], Kernel | _Neuron]] = {
    nir.Input: _identity, nir.Output: _identity,
    nir.Affine: _linear, nir.Linear: _linear,
    nir.Conv1d: _conv, nir.Conv2d: _conv,
    nir.SumPool2d: _sum_pool, nir.AvgPool2d: _avg_pool,
    nir.Flatten: _flatten,
    nir.Scale: _scale,
    nir.Threshold: _threshold,
    **{t: _neuron for t in NEURON_TYPES},
}


def stateless_kernel(node: nir.NIRNode, name: str, in_shape: Shape, out_shape: Shape, weights: Weights = "real",
                     dtype: torch.dtype = torch.float64) -> Kernel:
    """The reference's rule for the stateless node ``node`` on CPU, ``[N, *in_shape] -> [N, *out_shape]``: the one
    definition of applying a node that the metrics (fan-out, NeuroBench's inputs) share with the executor."""
    site = _Site(name, tuple(in_shape), tuple(out_shape), None, torch.device("cpu"), dtype, weights)
    kernel = handler(KERNELS, node, name, "the reference executor")(node, site)
    if isinstance(kernel, _Neuron):
        raise ValueError(f"node {name!r} ({type(node).__name__}) is a neuron, not a stateless node")
    return kernel


# ------------------------------------------------------------------------------------------ executor

@dataclass
class _Plan:
    """How one node runs: a stateless kernel (``fn``) or a stepped neuron."""

    name: str
    in_shape: Shape
    out_shape: Shape
    fn: Kernel | None  # stateless
    neuron: _Neuron | None  # stateful

    @staticmethod
    def of(node: nir.NIRNode, site: _Site) -> _Plan:
        """The plan of ``node``, its kernel from :data:`KERNELS`."""
        kernel = handler(KERNELS, node, site.name, "the reference executor")(node, site)
        if isinstance(kernel, _Neuron):
            return _Plan(site.name, site.in_shape, site.out_shape, None, kernel)
        return _Plan(site.name, site.in_shape, site.out_shape, kernel, None)

    def stepped(self) -> _Neuron:
        """The node's neuron (a plan holds either a stateless kernel or a neuron)."""
        assert self.neuron is not None, f"{self.name} is stateless"
        return self.neuron

    def stateless(self) -> Kernel:
        """The node's stateless kernel."""
        assert self.fn is not None, f"{self.name} is a neuron"
        return self.fn


@dataclass
class _Pass:
    """One run's book-keeping: node outputs (dropped once their last reader is done), spike counts and records."""

    T: int
    B: int
    keep_all: bool  # keep every node's output (for traces)
    output: str  # the Output node: always kept
    remaining: dict[str, int]  # readers of each node's output still to run
    outs: dict[str, Tensor] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    voltages: dict[str, np.ndarray] = field(default_factory=dict)

    def done_with(self, src: str) -> None:
        self.remaining[src] -= 1
        if self.remaining[src] == 0 and not self.keep_all and src != self.output:
            self.outs.pop(src, None)


class ReferenceExecutor:
    """Run a checked NIR graph over frames ``[T, B, *input_shape]``.

    ``dt`` is the Euler step in seconds (from the model card; may be None for graphs without leaky
    neurons). ``record_spikes`` keeps the full 0/1 spike record of every spiking node in the result;
    ``record_voltages`` returns every neuron node's membrane voltage per step in the result
    (``RunResult.voltages[node]`` ``[T, B, *shape]``, the compute dtype): ``v`` at the end of the step, after the
    spike's reset to ``v_reset``. ``record_states`` keeps every neuron's state per step in :attr:`states` after
    :meth:`run` (``{node: {"v": [T, B, *shape], "v_pre": voltage before reset, "i": current}}``, numpy).
    ``time_steps`` (the model card's T, where known) refuses frames given as ``[N, T, ...]``
    (:func:`~neuromoco.deploy.graph.shapes.check_time_axis`).
    """

    def __init__(self, graph: nir.NIRGraph, dt: float | None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, record_spikes: bool = False, record_states: bool = False,
                 input_shape: list[int] | None = None, time_steps: int | None = None,
                 record_voltages: bool = False) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise UserError(f"the reference runs in float32 or float64, not {dtype}")
        self.graph = normalize_graph(graph)
        check_graph(self.graph, input_shape=input_shape)
        self.dt = dt
        self.device = torch.device(device)
        self.dtype = dtype
        self.record_spikes = record_spikes
        self.record_states = record_states
        self.record_voltages = record_voltages
        self.time_steps = time_steps
        self.structure = structure(self.graph)
        self.io_shapes = node_io_shapes(self.graph, input_shape)
        self.input_shape = self.io_shapes[self.structure.input][1]
        sites = {n: _Site(n, self.io_shapes[n][0], self.io_shapes[n][1], dt, self.device, dtype)
                 for n in self.structure.order}
        self.plans = {n: _Plan.of(self.graph.nodes[n], site) for n, site in sites.items()}
        self.spiking = [n for n in self.structure.order if facts(self.graph.nodes[n], n).spiking]
        self.states: dict[str, dict[str, np.ndarray]] = {}

    # -- public API -------------------------------------------------------------------------------

    def run(self, frames: np.ndarray | Tensor) -> RunResult:
        """Frames ``[T, B, ...]`` -> output ``[T, B, n_out]`` (float64) and per-step spike counts."""
        run = self._execute(frames, keep_all=False)
        y = run.outs[self.structure.output]
        output = y.reshape(y.shape[0], y.shape[1], -1).detach().to("cpu", torch.float64).numpy()
        return RunResult(output=output, spike_counts=run.counts, spikes=run.spikes, voltages=run.voltages)

    def trace(self, frames: np.ndarray | Tensor) -> dict[str, Tensor]:
        """Every node's output ``[T, B, *shape]`` (torch tensors on the executor's device)."""
        return self._execute(frames, keep_all=True).outs

    # -- internals --------------------------------------------------------------------------------

    def _frames(self, frames: np.ndarray | Tensor) -> Tensor:
        x = torch.as_tensor(frames) if not isinstance(frames, torch.Tensor) else frames
        if x.dim() < 2:
            raise UserError(f"frames must be [T, B, ...], got shape {tuple(x.shape)}")
        check_time_axis(tuple(x.shape), self.time_steps)
        want = self.input_shape
        if tuple(x.shape[2:]) != tuple(want):
            check_frames_shape(tuple(x.shape[2:]), want)
            x = x.reshape(x.shape[0], x.shape[1], *want)
        return x.to(device=self.device, dtype=self.dtype)

    def _execute(self, frames: np.ndarray | Tensor, keep_all: bool) -> _Pass:
        st = self.structure
        x = self._frames(frames)
        run = _Pass(int(x.shape[0]), int(x.shape[1]), keep_all, st.output, {n: len(st.succs[n]) for n in st.order})
        self.states = {}
        with torch.no_grad():
            for comp in st.components:
                if st.is_cyclic(comp):
                    self._cyclic(comp, run)
                else:
                    self._single(comp, x, run)
        return run

    def _single(self, comp: list[str], x: Tensor, run: _Pass) -> None:
        """A node on no cycle, over the whole sequence; its input is the sum of its sources' outputs."""
        (name,) = comp
        if name == self.structure.input:
            run.outs[name] = x
        else:
            srcs = [src for src, _ in self.structure.preds[name]]
            inp = run.outs[srcs[0]]
            for src in srcs[1:]:
                inp = inp + run.outs[src]
            for src in srcs:
                run.done_with(src)
            run.outs[name] = self._apply_all(self.plans[name], inp, run)
        self._record(name, run)

    def _cyclic(self, comp: list[str], run: _Pass) -> None:
        """A strongly connected component, stepped one time step at a time."""
        self._run_cycle(comp, run)
        for name in comp:
            self._record(name, run)
        for name in comp:
            for src, _ in self.structure.preds[name]:
                if src not in comp:
                    run.done_with(src)

    def _record(self, name: str, run: _Pass) -> None:
        """Spike counts (and, with ``record_spikes``, the 0/1 record) of a spiking node."""
        if name in self.spiking:
            s = run.outs[name]
            run.counts[name] = s.reshape(run.T, run.B, -1).sum(-1).to("cpu", torch.int64).numpy()
            if self.record_spikes:
                run.spikes[name] = s.to("cpu", torch.uint8).numpy()

    def _apply_all(self, plan: _Plan, inp: Tensor, run: _Pass) -> Tensor:
        """A node over the whole sequence: stateless with T folded into the batch, neurons looping over T."""
        T, B = run.T, run.B
        if plan.fn is not None:
            y = plan.fn(inp.reshape(T * B, *plan.in_shape))
            return y.reshape(T, B, *plan.out_shape)
        neuron = plan.stepped()
        state = neuron.init(B, inp)
        ys, trace = [], []
        for t in range(T):
            y, state = neuron.step(inp[t], state)
            ys.append(y)
            if self.record_states or self.record_voltages:
                trace.append(state)
        self._keep_states(plan.name, trace, run)
        return torch.stack(ys)

    def _keep_states(self, name: str, trace: list[dict[str, Tensor]], run: _Pass) -> None:
        """A neuron's states per step (``trace``): all into :attr:`states`, its voltage into the run's result."""
        if self.record_voltages:
            run.voltages[name] = torch.stack([s["v"] for s in trace]).to("cpu").numpy()
        if self.record_states:
            self.states[name] = {k: torch.stack([s[k] for s in trace]).to("cpu").numpy() for k in trace[0]}

    def _run_cycle(self, comp: list[str], run: _Pass) -> None:
        """Step a strongly connected component one time step at a time (recurrent edges delayed by one)."""
        outs, T, B = run.outs, run.T, run.B
        st = self.structure
        members = set(comp)
        prev: dict[str, Tensor] = {n: torch.zeros((B, *self.plans[n].out_shape), dtype=self.dtype,
                                                  device=self.device) for n in comp}
        states = {n: self.plans[n].stepped().init(B, prev[n]) for n in comp if self.plans[n].neuron is not None}
        seqs: dict[str, list[Tensor]] = {n: [] for n in comp}
        traces: dict[str, list[dict[str, Tensor]]] = {n: [] for n in states}
        for t in range(T):
            cur: dict[str, Tensor] = {}
            for name in comp:
                plan = self.plans[name]
                inp: Tensor | None = None
                for src, rec in st.preds[name]:
                    v = prev[src] if rec else (cur[src] if src in members else outs[src][t])
                    inp = v if inp is None else inp + v
                assert inp is not None, f"{name} is on a cycle, so it has a source"
                if plan.neuron is not None:
                    y, states[name] = plan.neuron.step(inp, states[name])
                    if self.record_states or self.record_voltages:
                        traces[name].append(states[name])
                else:
                    y = plan.stateless()(inp)
                cur[name] = y
                seqs[name].append(y)
            prev = cur
        for name in comp:
            outs[name] = torch.stack(seqs[name])
        for name, tr in traces.items():
            self._keep_states(name, tr, run)
