"""The Lava network plan: neuron layers, their connections and the readout (what ``lava_network.h5`` holds).

:mod:`.compile` makes a plan from a NIR graph, :mod:`.fixed_point` turns a float plan into Loihi 2 fixed
point, :mod:`.plan_io` writes and reads it, :mod:`neuromoco.deploy.targets.lava.network` builds Lava processes
from it. Nothing in a plan depends on the number of time steps or samples of a run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.graph.shapes import check_frames_shape
from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.errors import UserError


@dataclass
class Conn:
    """One Lava connection process from unit ``source``: a ``matrix`` ``[n_target, n_source]`` or, where the
    connection is a convolution, a shared ``kernel`` (:class:`~.kernel.Kernel`; ``matrix`` is then None).

    ``delay``: the synaptic delay added to Lava's one step (a ``DelaySparse`` process when positive) so that
    a short path (a skip connection) meets the long ones at its target: ``target.delay == source.delay + 1
    + delay - recurrent`` (:func:`arrival_error`; the Input's delay is 0). Plans written before delays
    existed load with 0, which is what they ran with.
    """

    source: str
    matrix: sp.csr_matrix | None  # float64: gain-folded real weights (float) or integer mantissas (fixed)
    recurrent: bool = False
    weight_exp: int = 0  # fixed point: a_out = (mant @ s) << weight_exp
    report: dict[str, Any] = field(default_factory=dict)
    delay: int = 0  # added synaptic delay in steps (0: a plain Dense / Sparse)
    kernel: Kernel | None = None  # a convolution's shared weights (float64, as ``matrix`` would hold them)

    def __post_init__(self) -> None:
        if (self.matrix is None) == (self.kernel is None):
            raise ValueError("a connection holds either a matrix or a kernel")

    def held_matrix(self) -> sp.csr_matrix:
        """``matrix``, for a connection that holds no kernel (it then holds a matrix: ``__post_init__``); a
        ValueError for one that holds neither."""
        if self.matrix is None:
            raise ValueError(f"connection from {self.source!r} holds neither a matrix nor a kernel")
        return self.matrix

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_target, n_source)``."""
        if self.kernel is not None:
            return self.kernel.shape
        n_target, n_source = self.held_matrix().shape
        return n_target, n_source

    @property
    def nnz(self) -> int:
        """Synapses: non-zero (target, source) pairs (a kernel's expanded count)."""
        return self.kernel.synapses if self.kernel is not None else int(self.held_matrix().nnz)

    @property
    def parameters(self) -> int:
        """Stored weights: a kernel's non-zero weights, a matrix's synapses."""
        return self.kernel.parameters if self.kernel is not None else int(self.held_matrix().nnz)

    @property
    def weights(self) -> sp.csr_matrix | Kernel:
        """The matrix or the kernel, whichever the connection holds."""
        return self.kernel if self.kernel is not None else self.held_matrix()

    def expanded(self) -> sp.csr_matrix:
        """The weights as a ``[n_target, n_source]`` matrix (a kernel expanded: for small networks and checks)."""
        return self.kernel.matrix() if self.kernel is not None else sp.csr_matrix(self.matrix)

    def row_abs_max(self) -> np.ndarray:
        """Per target neuron, the largest ``|weight|`` (a kernel's channel maximum for all its neurons)."""
        if self.kernel is not None:
            return self.kernel.per_neuron(self.kernel.channel_abs_max())
        m = self.held_matrix()
        if not m.nnz:
            return np.zeros(self.shape[0])
        return np.asarray(abs(m).max(axis=1).todense()).ravel()

    def row_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per target neuron, the sum of its positive weights and of its negative weights' magnitudes (a
        kernel: the whole channel kernel's, a bound for the border neurons that see part of it)."""
        if self.kernel is not None:
            pos, neg = self.kernel.channel_sums()
            return self.kernel.per_neuron(pos), self.kernel.per_neuron(neg)
        m = sp.csr_matrix(self.matrix)
        return np.asarray(m.maximum(0).sum(axis=1)).ravel(), -np.asarray(m.minimum(0).sum(axis=1)).ravel()

    def with_weights(self, weights: sp.csr_matrix | Kernel) -> Conn:
        """The same connection (source, recurrence, delay) with other weights (report and exponent reset)."""
        if isinstance(weights, Kernel):
            return Conn(self.source, None, self.recurrent, delay=self.delay, kernel=weights)
        return Conn(self.source, sp.csr_matrix(weights), self.recurrent, delay=self.delay)


@dataclass
class Layer:
    """A neuron node as a Lava neuron process (``LIFReset`` when it fits, else ``NirNeuron``)."""

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
    def recurrent(self) -> bool:
        return any(c.recurrent for c in self.conns)

    @property
    def stock(self) -> bool:
        """Whether Lava's own ``LIFReset`` runs this layer (uniform parameters, reset to zero, no extras)."""
        return not self.needs_own_process

    @property
    def needs_own_process(self) -> list[str]:
        """Why Lava's stock ``LIFReset`` cannot run this layer (empty when it can): what users take to a chip."""
        why = []
        if not self.spiking:
            why.append("not spiking (LI / CubaLI)")
        for name, a in (("current decay du", self.du), ("voltage decay dv", self.dv), ("threshold", self.vth)):
            if a is not None and np.size(a) and not np.all(a == np.asarray(a).flat[0]):
                why.append(f"per-neuron {name} (LIFReset holds one per process)")
        if np.any(self.v0):
            why.append("non-zero initial voltage (v_reset or v_leak shifts the origin)")
        if np.any(self.b0) or np.any(self.b1):
            why.append("a window-start synaptic bias")
        if self.recurrent:
            why.append("a recurrent connection")
        return why

    @property
    def process(self) -> str:
        """The Lava process that runs this layer."""
        return "LIFReset" if self.stock else "NirNeuron"


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
    """A whole Lava network: the input, the neuron layers in execution order, the readout."""

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

    def flat_frames(self, frames: np.ndarray) -> np.ndarray:
        """Frames ``[T, B, *input_shape]`` as ``[T, B, input_size]``; a one-line error when they do not fit."""
        x = np.asarray(frames)
        if x.ndim < 2:
            raise UserError(f"frames must be [T, B, ...], got shape {list(x.shape)}")
        check_frames_shape(tuple(x.shape[2:]), tuple(self.input_shape), "the network's input")
        return x.reshape(*x.shape[:2], self.input_size)

    def fixed_payload(self, x: np.ndarray) -> np.ndarray:
        """The graded input of fixed point, ``round(x * input_scale)`` (float64 holding integers), warning
        when frames are not integers after scaling or exceed the ``input_max`` the scales were chosen for."""
        y = x.astype(np.float64) * self.input_scale
        q = np.round(y)
        if np.any(np.abs(q - y) > 1e-9):
            warnings.warn("fixed point: input frames are not integers after input_scale and are rounded",
                          stacklevel=4)
        if np.abs(q).max(initial=0) > self.input_max * self.input_scale:
            warnings.warn(f"fixed point: input values up to {np.abs(x).max():g} exceed input_max "
                          f"{self.input_max:g} the scales were chosen for; currents may overflow", stacklevel=4)
        return q

    @property
    def depth(self) -> int:
        return max([self.readout.delay, *(lay.delay for lay in self.layers)])

    def layer(self, name: str) -> Layer:
        return next(lay for lay in self.layers if lay.name == name)

    def __str__(self) -> str:
        """The plan as a table of layers (like lava-dl netx's network printout)."""
        return format_table(self)


def connection_process(m: sp.spmatrix | Kernel, tiles: int, delay: int = 0) -> str:
    """``Conv`` for a kernel; ``Dense`` for a small, dense map run one sample at a time, ``Sparse`` otherwise;
    ``DelaySparse`` for a matrix with an added delay (Lava's ``DelayDense`` builds a dense
    ``[n_t * (delay + 1), n_s]`` matrix every step, its sparse sibling only the synapses)."""
    if isinstance(m, Kernel):
        return "Conv"
    if delay > 0:
        return "DelaySparse"
    n = m.shape[0] * m.shape[1]
    return "Dense" if tiles == 1 and n <= (1 << 22) and m.nnz > 0.25 * n else "Sparse"


# ---------------------------------------------------------------------------------- descriptions

def arrival_error(plan: LavaPlan, target: str, target_delay: int, c: Conn) -> str | None:
    """Why connection ``c`` into ``target`` (running ``target_delay`` steps late) would deliver its source's
    output at another step than the reference's, or None when it meets the target on time."""
    src = 0 if c.source == plan.input_name else next((lay.delay for lay in plan.layers if lay.name == c.source),
                                                     None)
    if src is None:
        return f"{target!r} receives from {c.source!r}, which is not in the plan"
    arrives = src + 1 + int(c.delay) - int(c.recurrent)
    if c.delay < 0 or arrives != target_delay:
        return (f"the connection {c.source!r} -> {target!r} arrives at delay {arrives} (source delay {src} + 1 + "
                f"added delay {c.delay} - recurrent {int(c.recurrent)}), but {target!r} runs at delay "
                f"{target_delay}")
    return None


def check_delays(plan: LavaPlan) -> None:
    """Refuse a plan (a hand-edited or damaged file) whose connections would not meet their targets on time."""
    for name, delay, conns in [*((lay.name, lay.delay, lay.conns) for lay in plan.layers),
                               ("(readout)", plan.readout.delay, plan.readout.conns)]:
        for c in conns:
            why = arrival_error(plan, name, delay, c)
            if why:
                raise UserError(f"inconsistent Lava plan: {why}")


def _inputs(conns: list[Conn], fixed: bool) -> str:
    parts = []
    for c in conns:
        exp = f" <<{c.weight_exp}" if fixed else ""
        rec = " (recurrent)" if c.recurrent else ""
        residual = " residual" if "residual_of" in c.report else ""  # 16-bit weights: the second synapse
        late = f" +{c.delay} step(s)" if c.delay else ""
        parts.append(f"{c.source}{rec}: {c.nnz}{residual} {connection_process(c.weights, 1, c.delay)}{exp}{late}")
    return ", ".join(parts)


def format_table(plan: LavaPlan) -> str:
    """One row per neuron layer plus the readout: type, Lava process, neurons, delay, incoming connections."""
    fixed = plan.precision == "fixed"
    head = ("Layer", "Type", "Process", "Neurons", "Shape", "Delay", "Inputs (synapses)")
    rows = [(lay.name, lay.kind, lay.process, str(lay.size), str(list(lay.shape)), str(lay.delay),
             _inputs(lay.conns, fixed)) for lay in plan.layers]
    ro = plan.readout
    if ro.direct:
        ro_in = f"{ro.direct}: direct"
    else:
        bias = ", bias on the host" if ro.c0 is not None or ro.c1 is not None else ""
        ro_in = _inputs(ro.conns, fixed) + bias
    rows.append(("(readout)", "Output", "Recorder", str(ro.size), str(list(ro.shape)), str(ro.delay), ro_in))
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    right = {3, 5}  # numbers

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    kind = "floating point" if plan.precision == "float" else "Loihi 2 fixed point"
    title = (f"Lava plan ({kind}, dt {plan.dt}): input {plan.input_name!r} "
             f"{list(plan.input_shape)}, depth {plan.depth}")
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([title, line(head), rule, *(line(r) for r in rows)])


def report(plan: LavaPlan) -> dict[str, Any]:
    """A JSON-ready description of the plan with the quantization errors per layer (``lava_export.json``)."""
    layers = []
    for lay in plan.layers:
        entry: dict[str, Any] = {
            "name": lay.name, "type": lay.kind, "neurons": lay.size, "shape": list(lay.shape),
            "delay": lay.delay, "spiking": lay.spiking, "process": lay.process,
            "process_reason": "; ".join(lay.needs_own_process) or "uniform parameters: Lava's stock LIFReset",
            "connections": [{"source": c.source, "recurrent": c.recurrent, "synapses": c.nnz,
                             "process": connection_process(c.weights, 1, c.delay), "added_delay": c.delay}
                            for c in lay.conns],
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
                                   "process": connection_process(c.weights, 1, c.delay), "added_delay": c.delay}
                                  for c in ro.conns]
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
