"""Run frames through a :class:`~.plan.LavaPlan` on Lava's CPU simulator, a batch per Lava run.

One Lava run handles a whole batch of samples in two ways at once (:mod:`.network` builds the processes):

* *tiling*: ``tile`` samples side by side. Every neuron process holds ``tile`` copies of its layer and
  every matrix connection is block-diagonal (``kron(I_tile, W)``, a ``Sparse`` process; a kernel convolves
  the ``tile`` samples as one batch), so one Lava time step advances ``tile`` samples.
* *time multiplexing*: the groups of ``tile`` samples follow each other in time, ``T`` steps each. Every
  neuron layer resets its state at the start of each of its windows (Lava's ``LIFReset`` with
  ``reset_interval = T`` and a per-layer ``reset_offset``, or the same rule in ``NirNeuron``), so no
  idle steps are needed between samples: layer ``X`` with delay ``d`` (see :mod:`neuromoco.deploy.loihi.layout`) handles
  step ``tau`` of group ``k`` at Lava time step ``k*T + tau + 1 + d``. The run takes ``K*T + depth`` steps.

Inputs are graded: a ``RingBuffer`` sends each step's frame values (``round(x * input_scale)`` in fixed
point) into the first connection processes. Spikes and outputs are collected by ``Recorder``
processes writing to memory-mapped files; the readout connection's ``a_out`` is recorded and its bias,
if any, added on the host (a ``Dense`` process has no bias).
"""

from __future__ import annotations

import contextlib
import gc
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.graph.shapes import check_time_axis
from neuromoco.deploy.loihi.plan import LavaPlan
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.lava.compat import import_lava
from neuromoco.deploy.targets.lava.network import Network, build_network
from neuromoco.errors import UserError

AUTO_TILE_SYNAPSES = 1 << 21


@contextlib.contextmanager
def _no_inherited_garbage() -> Iterator[None]:
    """Collect, then freeze, this process's objects while Lava forks its process models.

    Lava's runtime starts one forked process per process model. Garbage left uncollected here (say an onnxruntime
    session in a reference cycle) would be inherited, and a collection in a child would run its destructor there,
    waiting on a lock a thread of this process held at the fork: the run hung (seen once in the test suite, the
    child in onnxruntime's ``pthread_cond_destroy``). ``gc.freeze`` keeps the children's collector off every
    inherited object, as the ``gc`` documentation advises before a fork."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class LavaRunner:
    """Runs frames ``[T, B, *input_shape]`` on Lava's CPU simulator (``Loihi2SimCfg``).

    ``tile``: samples side by side in one run, or ``"auto"`` (default): as many as keep the tiled network
    under :data:`AUTO_TILE_SYNAPSES` stored weights (a matrix's synapses, a kernel's weights) and as many
    neurons, at most 16 (tiling pays where Lava's per-step overhead dominates, small networks; a large
    network's block-diagonal matrices cost more to build and ship to the Lava processes than they save,
    and a kernel's neurons still hold state per sample); ``samples_per_run``: at most this many samples per Lava run
    (default: all samples given to :meth:`run`); ``record_spikes``: keep the full 0/1 spike record of
    every spiking layer (memory ``T * B * neurons`` bytes); ``time_steps``: the model card's T, where known, to
    refuse frames given as ``[N, T, ...]`` (:func:`~neuromoco.deploy.graph.shapes.check_time_axis`).
    """

    def __init__(self, plan: LavaPlan, tile: int | str = "auto", samples_per_run: int | None = None,
                 record_spikes: bool = False, time_steps: int | None = None) -> None:
        import_lava()  # without Lava: a one-line error saying how to install it, before any work
        self.plan = plan
        if tile in (None, "auto"):
            conns = [c for lay in plan.layers for c in lay.conns] + plan.readout.conns
            weights = sum(c.parameters for c in conns)
            neurons = sum(lay.size for lay in plan.layers) + plan.readout.size
            tile = max(1, min(16, AUTO_TILE_SYNAPSES // max(1, weights, neurons)))
        try:
            self.tile = max(1, int(tile))
        except (TypeError, ValueError):
            raise UserError(f"Lava tile must be a number of samples or 'auto', not {tile!r}") from None
        self.samples_per_run = None if samples_per_run is None else max(1, int(samples_per_run))
        self.record_spikes = bool(record_spikes)
        self.time_steps = time_steps
        self.select_tag = "floating_pt" if plan.precision == "float" else "fixed_pt"
        self.last_run: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------- API

    def run(self, frames: np.ndarray) -> RunResult:
        check_time_axis(np.shape(frames), self.time_steps)
        x = self.plan.flat_frames(frames)
        B = x.shape[1]
        per = self.samples_per_run or B
        parts = [self._run_once(x[:, i:i + per]) for i in range(0, B, per)]
        return parts[0] if len(parts) == 1 else RunResult.concatenate(parts)

    # ----------------------------------------------------------------------------------- internals

    def _payload(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) if self.plan.precision == "float" else self.plan.fixed_payload(x)

    def _run_once(self, x: np.ndarray) -> RunResult:
        """One Lava run: ``x`` ``[T, B, n_in]`` as ``ceil(B / tile)`` groups of ``tile`` samples."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        plan = self.plan
        T, B = x.shape[:2]
        w = min(self.tile, B)
        K = math.ceil(B / w)
        steps = K * T + plan.depth
        with tempfile.TemporaryDirectory(prefix="neuromoco-lava-") as tmp:
            net = build_network(plan, self._ring_data(x, w, K, steps), T, w, steps, Path(tmp),
                                self.record_spikes, self.select_tag)
            t0 = time.perf_counter()
            with _no_inherited_garbage():
                net.source.run(condition=RunSteps(num_steps=steps),
                               run_cfg=Loihi2SimCfg(select_tag=self.select_tag, exception_proc_model_map=net.models))
            t1 = time.perf_counter()
            net.source.stop()
            self.last_run = {"steps": steps, "tile": w, "groups": K, "samples": B, "seconds": t1 - t0}
            return self._collect(net, T, B, w, K, steps)

    def _ring_data(self, x: np.ndarray, w: int, K: int, steps: int) -> np.ndarray:
        """The RingBuffer's payload ``[w * n_in, steps]``: column ``k*T + tau`` holds group ``k`` at step ``tau``."""
        T, B, n_in = x.shape
        pad = np.zeros((T, K * w, n_in))
        pad[:, :B] = self._payload(x)
        data = np.zeros((w * n_in, steps))
        data[:, :K * T] = pad.reshape(T, K, w * n_in).transpose(2, 1, 0).reshape(w * n_in, K * T)
        return data.astype(np.int32) if self.plan.precision == "fixed" else data

    def _collect(self, net: Network, T: int, B: int, w: int, K: int, steps: int) -> RunResult:
        """Outputs and spike counts from the records, aligned with the reference's time axis."""
        plan = self.plan

        def window(a: np.ndarray, delay: int) -> np.ndarray:
            """``[steps, w * m]`` -> ``[T, B, m]``: rows ``g = k*T + tau`` after the layer's delay."""
            a = a[delay:delay + K * T]
            return a.reshape(K, T, w, -1).transpose(1, 0, 2, 3).reshape(T, K * w, -1)[:, :B]

        def read(path: Path, width: int) -> np.ndarray:
            return np.array(np.memmap(path, dtype=np.float64, mode="r", shape=(steps, width)))

        counts: dict[str, np.ndarray] = {}
        spikes: dict[str, np.ndarray] = {}
        for name, (_, path, mode) in net.recorders.items():
            lay = plan.layer(name)
            win = window(read(path, w if mode == "count" else lay.size * w), lay.delay)
            if mode == "count":
                counts[name] = np.rint(win[..., 0]).astype(np.int64)
            else:
                spikes[name] = (win.reshape(T, B, *lay.shape) > 0).astype(np.uint8)
                counts[name] = spikes[name].reshape(T, B, -1).sum(-1).astype(np.int64)
        ro = plan.readout
        if net.output is None:  # the direct readout is a spiking layer recorded in full
            if ro.direct is None:
                raise ValueError("a Lava network without an output process needs a direct readout")
            out = spikes[ro.direct].reshape(T, B, -1).astype(np.float64)
        else:
            out = self._host_output(window(read(net.output_path, ro.size * w), ro.delay).reshape(T, B, -1))
        return RunResult(output=out.astype(np.float64), spike_counts=counts, spikes=spikes)

    def _host_output(self, out: np.ndarray) -> np.ndarray:
        """The recorded readout in NIR units: a voltage back from the shifted origin, or the bias added."""
        plan, ro = self.plan, self.plan.readout
        if ro.direct:
            lay = plan.layer(ro.direct)
            if not lay.spiking:  # voltage in shifted origin (and integer units in fixed point)
                unit = 1.0 if plan.precision == "float" else 64.0 * lay.scale
                out = out / unit + lay.v_reset.reshape(1, 1, -1)
            return out
        if plan.precision == "fixed":
            out = out / ro.scale
        if ro.c0 is not None:
            out = out + ro.c0.reshape(1, 1, -1)
        if ro.c1 is not None:
            out[1:] = out[1:] + ro.c1.reshape(1, 1, -1)
        return out
