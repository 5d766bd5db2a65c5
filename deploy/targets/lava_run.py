"""Build a Lava network from a :class:`~neuromoco.deploy.targets.lava_plan.LavaPlan` and run frames through it.

One Lava run handles a whole batch of samples in two ways at once:

* *tiling*: ``tile`` samples side by side. Every neuron process holds ``tile`` copies of its layer and
  every connection is block-diagonal (``kron(I_tile, W)``, a ``Sparse`` process), so one Lava time step
  advances ``tile`` samples.
* *time multiplexing*: the groups of ``tile`` samples follow each other in time, ``T`` steps each. Every
  neuron layer resets its state at the start of each of its windows (Lava's ``LIFReset`` with
  ``reset_interval = T`` and a per-layer ``reset_offset``, or the same rule in :class:`NirNeuron`), so no
  idle steps are needed between samples: layer ``X`` with delay ``d`` (see :mod:`lava_plan`) handles
  step ``tau`` of group ``k`` at Lava time step ``k*T + tau + 1 + d``. The run takes ``K*T + depth`` steps.

Inputs are graded: a ``RingBuffer`` sends each step's frame values (``round(x * input_scale)`` in fixed
point) into the first connection processes. Spikes and outputs are collected by :class:`Recorder`
processes writing to memory-mapped files; the readout connection's ``a_out`` is recorded and its bias,
if any, added on the host (a ``Dense`` process has no bias).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.lava_compat import import_lava
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.lava_plan import Conn, LavaPlan, connection_process
from neuromoco.errors import UserError

AUTO_TILE_SYNAPSES = 1 << 21


class LavaRunner:
    """Runs frames ``[T, B, *input_shape]`` on Lava's CPU simulator (``Loihi2SimCfg``).

    ``tile``: samples side by side in one run, or ``"auto"`` (default): as many as keep the tiled network
    under :data:`AUTO_TILE_SYNAPSES` synapses, at most 16 (tiling pays where Lava's per-step overhead
    dominates, small networks; a large network's block-diagonal matrices cost more to build and ship to
    the Lava processes than they save); ``samples_per_run``: at most this many samples per Lava run
    (default: all samples given to :meth:`run`); ``record_spikes``: keep the full 0/1 spike record of
    every spiking layer (memory ``T * B * neurons`` bytes).
    """

    def __init__(self, plan: LavaPlan, tile: int | str = "auto", samples_per_run: int | None = None,
                 record_spikes: bool = False, **_: Any) -> None:
        self.plan = plan
        if tile in (None, "auto"):
            synapses = sum(c.nnz for lay in plan.layers for c in lay.conns) + \
                sum(c.nnz for c in plan.readout.conns)
            tile = max(1, min(16, AUTO_TILE_SYNAPSES // max(1, synapses)))
        try:
            self.tile = max(1, int(tile))
        except (TypeError, ValueError):
            raise UserError(f"Lava tile must be a number of samples or 'auto', not {tile!r}") from None
        self.samples_per_run = None if samples_per_run is None else max(1, int(samples_per_run))
        self.record_spikes = bool(record_spikes)
        self.select_tag = "floating_pt" if plan.precision == "float" else "fixed_pt"
        self.last_run: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------- API

    def run(self, frames: np.ndarray) -> RunResult:
        x = np.asarray(frames)
        if x.ndim < 2:
            raise UserError(f"frames must be [T, B, ...], got shape {list(x.shape)}")
        T, B = x.shape[:2]
        if int(np.prod(x.shape[2:])) != self.plan.input_size:
            raise UserError(f"frames of shape {list(x.shape[2:])} per step do not fit the network's input "
                            f"{list(self.plan.input_shape)}")
        x = x.reshape(T, B, self.plan.input_size)
        per = self.samples_per_run or B
        parts = [self._run_once(x[:, i:i + per]) for i in range(0, B, per)]
        return parts[0] if len(parts) == 1 else RunResult.concatenate(parts)

    # ----------------------------------------------------------------------------------- internals

    def _payload(self, x: np.ndarray) -> np.ndarray:
        if self.plan.precision == "float":
            return x.astype(np.float64)
        y = x.astype(np.float64) * self.plan.input_scale
        q = np.round(y)
        if np.any(np.abs(q - y) > 1e-9):
            warnings.warn("Lava fixed point: input frames are not integers after input_scale and are rounded",
                          stacklevel=3)
        if np.abs(q).max(initial=0) > self.plan.input_max * self.plan.input_scale:
            warnings.warn(f"Lava fixed point: input values up to {np.abs(x).max():g} exceed input_max "
                          f"{self.plan.input_max:g} the scales were chosen for; currents may overflow",
                          stacklevel=3)
        return q

    def _run_once(self, x: np.ndarray) -> RunResult:
        import_lava()
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.dense.process import Dense
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIFReset
        from lava.proc.sparse.process import Sparse

        from neuromoco.deploy.targets.lava_procs.processes import NirNeuron, Recorder

        plan = self.plan
        T, B, n_in = x.shape
        w = min(self.tile, B)
        K = math.ceil(B / w)
        steps = K * T + plan.depth
        # input: column g = k*T + tau holds group k's frames at step tau, samples side by side
        pad = np.zeros((T, K * w, n_in))
        pad[:, :B] = self._payload(x)
        data = np.zeros((w * n_in, steps))
        data[:, :K * T] = pad.reshape(T, K, w * n_in).transpose(2, 1, 0).reshape(w * n_in, K * T)
        if plan.precision == "fixed":
            data = data.astype(np.int32)
        tmp = tempfile.TemporaryDirectory(prefix="neuromoco-lava-")
        try:
            src = RingBuffer(data=data)
            ports: dict[str, Any] = {plan.input_name: src.s_out}
            procs: dict[str, Any] = {}
            recs: dict[str, tuple[Any, Path, str]] = {}
            for lay in plan.layers:
                n = lay.size * w
                tilev = lambda a: np.tile(np.asarray(a, dtype=np.float64), w)
                offset = (1 + lay.delay) % T
                if lay.stock:
                    first = lambda a: float(np.asarray(a).flat[0])
                    conv = int if plan.precision == "fixed" else float
                    neuron = LIFReset(shape=(n,), du=conv(first(lay.du)), dv=conv(first(lay.dv)),
                                      vth=conv(first(lay.vth)), bias_mant=tilev(lay.bias_mant),
                                      bias_exp=tilev(lay.bias_exp), reset_interval=T, reset_offset=offset,
                                      name=lay.name)
                else:
                    neuron = NirNeuron(shape=(n,), du=tilev(lay.du), dv=tilev(lay.dv), vth=tilev(lay.vth),
                                       bias_mant=tilev(lay.bias_mant), bias_exp=tilev(lay.bias_exp),
                                       b0=tilev(lay.b0), b1=tilev(lay.b1), v0=tilev(lay.v0), period=T,
                                       offset=offset, spiking=lay.spiking, name=lay.name)
                procs[lay.name] = neuron
                ports[lay.name] = neuron.s_out
                if lay.spiking:
                    mode = "full" if self.record_spikes else "count"
                    path = Path(tmp.name) / f"rec{len(recs)}.dat"
                    rec = self._recorder(Recorder, n, steps, path, mode, w)
                    neuron.s_out.connect(rec.s_in)
                    recs[lay.name] = (rec, path, mode)
            for lay in plan.layers:
                for c in lay.conns:
                    conn = self._connection(c, w, Dense, Sparse)
                    ports[c.source].connect(conn.s_in)
                    target = procs[lay.name].r_in if c.recurrent else procs[lay.name].a_in
                    conn.a_out.connect(target)
            ro = plan.readout
            out_path = Path(tmp.name) / "output.dat"
            if ro.direct:
                if ro.direct in recs and recs[ro.direct][2] == "full":
                    out_rec = None
                else:
                    out_rec = self._recorder(Recorder, ro.size * w, steps, out_path, "full", w)
                    ports[ro.direct].connect(out_rec.s_in)
            else:
                out_rec = self._recorder(Recorder, ro.size * w, steps, out_path, "full", w)
                for c in ro.conns:
                    conn = self._connection(c, w, Dense, Sparse)
                    ports[c.source].connect(conn.s_in)
                    conn.a_out.connect(out_rec.s_in)
            import time

            t0 = time.perf_counter()
            src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=self.select_tag))
            t1 = time.perf_counter()
            src.stop()
            self.last_run = {"steps": steps, "tile": w, "groups": K, "samples": B, "seconds": t1 - t0}
            return self._collect(recs, out_rec, out_path, T, B, w, K, steps)
        finally:
            tmp.cleanup()

    @staticmethod
    def _recorder(Recorder, n: int, steps: int, path: Path, mode: str, groups: int):
        width = groups if mode == "count" else n
        np.memmap(path, dtype=np.float64, mode="w+", shape=(steps, width)).flush()
        return Recorder(n=n, steps=steps, path=str(path), mode=mode, groups=groups)

    def _connection(self, c: Conn, w: int, Dense, Sparse):
        m = c.matrix if w == 1 else sp.kron(sp.identity(w, format="csr"), c.matrix, format="csr")
        kind = connection_process(c.matrix, w)
        fixed = self.plan.precision == "fixed"
        kw: dict[str, Any] = {"num_message_bits": 24}  # graded / spike messages alike: dot product path
        if fixed:
            kw.update(weight_exp=int(c.weight_exp), num_weight_bits=8)
        if kind == "Dense":
            weights = m.toarray()
            return Dense(weights=weights.astype(np.int32) if fixed else weights, **kw)
        m = sp.csr_matrix(m)
        if fixed:
            m = m.astype(np.int32)
        return Sparse(weights=m, **kw)

    def _collect(self, recs, out_rec, out_path: Path, T: int, B: int, w: int, K: int, steps: int) -> RunResult:
        plan = self.plan

        def window(a: np.ndarray, delay: int) -> np.ndarray:
            """``[steps, w * m]`` -> ``[T, K * w, m]`` aligned with the reference's time axis."""
            a = a[delay:delay + K * T]  # rows g = k*T + tau
            return a.reshape(K, T, w, -1).transpose(1, 0, 2, 3).reshape(T, K * w, -1)[:, :B]

        counts: dict[str, np.ndarray] = {}
        spikes: dict[str, np.ndarray] = {}
        for name, (_, path, mode) in recs.items():
            lay = plan.layer(name)
            width = w if mode == "count" else lay.size * w
            raw = np.array(np.memmap(path, dtype=np.float64, mode="r", shape=(steps, width)))
            win = window(raw, lay.delay)
            if mode == "count":
                counts[name] = np.rint(win[..., 0]).astype(np.int64)
            else:
                s = win.reshape(T, B, *lay.shape)
                spikes[name] = (s > 0).astype(np.uint8)
                counts[name] = spikes[name].reshape(T, B, -1).sum(-1).astype(np.int64)
        ro = plan.readout
        if out_rec is None:  # the direct readout is a spiking layer recorded in full
            out = spikes[ro.direct].reshape(T, B, -1).astype(np.float64)
        else:
            raw = np.array(np.memmap(out_path, dtype=np.float64, mode="r", shape=(steps, ro.size * w)))
            out = window(raw, ro.delay).reshape(T, B, -1)
            if ro.direct:
                lay = plan.layer(ro.direct)
                if not lay.spiking:  # voltage in shifted origin (and integer units in fixed point)
                    unit = 1.0 if plan.precision == "float" else 64.0 * lay.scale
                    out = out / unit + lay.v_reset.reshape(1, 1, -1)
            else:
                if plan.precision == "fixed":
                    out = out / ro.scale
                if ro.c0 is not None:
                    out = out + ro.c0.reshape(1, 1, -1)
                if ro.c1 is not None:
                    out[1:] = out[1:] + ro.c1.reshape(1, 1, -1)
        return RunResult(output=out.astype(np.float64), spike_counts=counts, spikes=spikes)
