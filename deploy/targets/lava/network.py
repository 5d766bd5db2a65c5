"""The Lava processes of one run of a plan: graded input, neuron layers, connections, recorders.

``w`` samples run side by side (*tiling*): every neuron process holds ``w`` copies of its layer and every
matrix connection is block-diagonal (``kron(I_w, W)``, a ``Sparse`` process); a kernel connection is a
``PlanConv`` process (:mod:`.processes`) that convolves the ``w`` samples as one batch. Groups of ``w`` samples follow
each other in time, ``T`` steps each: every neuron layer resets its state at the start of each of its
windows (Lava's ``LIFReset`` with ``reset_interval = T`` and ``reset_offset = (1 + delay) % T``, or the
same rule in ``NirNeuron``). A ``Dense`` / ``Sparse`` process has no bias: a readout bias is added on the
host by the runner.

A connection with an added delay (a skip connection's short path, see :mod:`neuromoco.deploy.loihi.layout`) is
Lava's own ``DelaySparse`` with that delay on every synapse: delay ``0`` behaves exactly as ``Sparse`` (one step)
and delay ``k`` arrives ``k`` steps later, in ``floating_pt`` and in the bit-accurate ``fixed_pt`` model (which
applies ``weight_exp`` to each step's sum exactly as ``Sparse`` does), graded input included. A kernel
connection holds its added delay in its own buffer, with the same timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, check_delays, connection_process
from neuromoco.deploy.targets.lava.compat import import_lava


@dataclass
class Network:
    """The processes of one run and where their records go."""

    source: Any  # RingBuffer sending the graded input; run and stop the network through it
    recorders: dict[str, tuple[Any, Path, str]]  # spiking layer -> (Recorder, file, "count" | "full")
    output: Any | None  # Recorder of the readout; None when it is a spiking layer recorded in full
    output_path: Path
    models: dict[Any, type]  # process -> its model, for Loihi2SimCfg(exception_proc_model_map=...)


def lava_classes() -> SimpleNamespace:
    """The Lava process classes a network uses (Lava imported through :func:`import_lava`)."""
    import_lava()
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import DelaySparse, Sparse

    from neuromoco.deploy.targets.lava.processes import MODELS, NirNeuron, PlanConv, Recorder

    return SimpleNamespace(Dense=Dense, RingBuffer=RingBuffer, LIFReset=LIFReset, Sparse=Sparse,
                           DelaySparse=DelaySparse, PlanConv=PlanConv, NirNeuron=NirNeuron, Recorder=Recorder,
                           MODELS=MODELS)


def build_network(plan: LavaPlan, data: np.ndarray, T: int, w: int, steps: int, folder: Path,
                  record_spikes: bool, select_tag: str) -> Network:
    """Processes for ``data`` (``[w * n_in, steps]``, the RingBuffer's payload); records under ``folder``."""
    check_delays(plan)
    lava = lava_classes()
    src = lava.RingBuffer(data=data)
    ports: dict[str, Any] = {plan.input_name: src.s_out}
    procs: dict[str, Any] = {}
    recs: dict[str, tuple[Any, Path, str]] = {}
    for lay in plan.layers:
        neuron = _neuron(lava, lay, plan.precision, w, T)
        procs[lay.name] = neuron
        ports[lay.name] = neuron.s_out
        if lay.spiking:
            mode = "full" if record_spikes else "count"
            path = folder / f"rec{len(recs)}.dat"
            rec = _recorder(lava, lay.size * w, steps, path, mode, w)
            neuron.s_out.connect(rec.s_in)
            recs[lay.name] = (rec, path, mode)
    fixed = plan.precision == "fixed"
    conns: list[Any] = []  # their models are named too (DelaySparse, PlanConv: see processes.MODELS)
    for lay in plan.layers:
        for c in lay.conns:
            conn = _connection(lava, c, w, fixed)
            conns.append(conn)
            ports[c.source].connect(conn.s_in)
            target = procs[lay.name].r_in if c.recurrent else procs[lay.name].a_in
            conn.a_out.connect(target)
    out_path = folder / "output.dat"
    out_rec = _readout(lava, plan, ports, recs, w, steps, out_path, conns)
    ours = [*procs.values(), *(r for r, _, _ in recs.values()), *([out_rec] if out_rec is not None else []),
            *conns]
    models = lava.MODELS[select_tag]
    return Network(src, recs, out_rec, out_path, {p: models[type(p)] for p in ours if type(p) in models})


def _neuron(lava: SimpleNamespace, lay: Layer, precision: str, w: int, T: int) -> Any:
    """``w`` copies of the layer: Lava's ``LIFReset`` when it fits (:attr:`Layer.stock`), else ``NirNeuron``."""
    n = lay.size * w

    def tiled(a: object) -> np.ndarray:
        return np.tile(np.asarray(a, dtype=np.float64), w)

    offset = (1 + lay.delay) % T
    if lay.stock:
        conv = int if precision == "fixed" else float

        def first(a: np.ndarray) -> float | int:
            return conv(float(np.asarray(a).flat[0]))

        return lava.LIFReset(shape=(n,), du=first(lay.du), dv=first(lay.dv), vth=first(lay.vth),
                             bias_mant=tiled(lay.bias_mant), bias_exp=tiled(lay.bias_exp), reset_interval=T,
                             reset_offset=offset, name=lay.name)
    return lava.NirNeuron(shape=(n,), du=tiled(lay.du), dv=tiled(lay.dv), vth=tiled(lay.vth),
                          bias_mant=tiled(lay.bias_mant), bias_exp=tiled(lay.bias_exp), b0=tiled(lay.b0),
                          b1=tiled(lay.b1), v0=tiled(lay.v0), period=T, offset=offset, spiking=lay.spiking,
                          name=lay.name)


def _recorder(lava: SimpleNamespace, n: int, steps: int, path: Path, mode: str, groups: int) -> Any:
    """A ``Recorder`` writing into a fresh zeroed memmap at ``path``."""
    width = groups if mode == "count" else n
    np.memmap(path, dtype=np.float64, mode="w+", shape=(steps, width)).flush()
    return lava.Recorder(n=n, steps=steps, path=str(path), mode=mode, groups=groups)


def _connection(lava: SimpleNamespace, c: Conn, w: int, fixed: bool) -> Any:
    """A ``PlanConv`` (a kernel), ``Dense``, ``Sparse`` or (added delay) ``DelaySparse`` process for ``c`` on
    ``w`` samples side by side (8-bit mantissas in fixed point)."""
    kw: dict[str, Any] = {"num_message_bits": 24}  # graded / spike messages alike: dot product path
    if fixed:
        kw.update(weight_exp=int(c.weight_exp), num_weight_bits=8)
    if c.kernel is not None:  # a batched convolution, its added delay in its own buffer
        return lava.PlanConv(kernel=c.kernel, tiles=w, delay=int(c.delay), **kw)
    mat = c.held_matrix()
    m = mat if w == 1 else sp.kron(sp.identity(w, format="csr"), mat, format="csr")
    kind = connection_process(mat, w, c.delay)
    if kind == "DelaySparse":
        m = sp.csr_matrix(m, copy=True)
        if fixed:
            m = m.astype(np.int32)
        m.eliminate_zeros()  # a delay on every stored synapse (an implicit zero would mean delay 0)
        delays = sp.csr_matrix((np.full(m.nnz, int(c.delay), dtype=int), m.indices.copy(), m.indptr.copy()),
                               shape=m.shape)
        return lava.DelaySparse(weights=m, delays=delays, max_delay=int(c.delay), **kw)
    if kind == "Dense":
        weights = m.toarray()
        return lava.Dense(weights=weights.astype(np.int32) if fixed else weights, **kw)
    m = sp.csr_matrix(m)
    if fixed:
        m = m.astype(np.int32)
    return lava.Sparse(weights=m, **kw)


def _readout(lava: SimpleNamespace, plan: LavaPlan, ports: dict[str, Any],
             recs: dict[str, tuple[Any, Path, str]], w: int, steps: int, out_path: Path,
             conns: list[Any]) -> Any | None:
    """The readout's recorder, wired: a direct layer's output, or the readout connections' ``a_out``."""
    ro = plan.readout
    if ro.direct:
        if ro.direct in recs and recs[ro.direct][2] == "full":
            return None  # its spikes are recorded in full already
        out_rec = _recorder(lava, ro.size * w, steps, out_path, "full", w)
        ports[ro.direct].connect(out_rec.s_in)
        return out_rec
    out_rec = _recorder(lava, ro.size * w, steps, out_path, "full", w)
    for c in ro.conns:
        conn = _connection(lava, c, w, plan.precision == "fixed")
        conns.append(conn)
        ports[c.source].connect(conn.s_in)
        conn.a_out.connect(out_rec.s_in)
    return out_rec
