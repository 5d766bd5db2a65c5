"""A fixed-point :class:`~neuromoco.deploy.loihi.plan.LavaPlan` run over a batch with exact fast kernels.

The integers are :mod:`.definition`'s (what ``lava-fixed`` computes); this module runs them over every sample
of a batch at once, layer by layer, with the kernels a :class:`~.strategy.Strategy` allows (:data:`DEFAULT`:
all of them, each taken only where its bounds prove it exact; :data:`~.strategy.DEFINITION`: the definition
itself, step by step):

* a layer's feed-forward activation for all steps is one product per connection (:mod:`.activation`), by
  the connection's kernel (:meth:`.connection.FixedConn.product`: convolution, int8, event-driven, matrix);
* its neuron update is one of :mod:`.neurons`' kernels, chosen by :meth:`FixedPointExecutor._run_layer`;
* the batch is as large as memory allows (:mod:`.memory`), and a record no later layer reads is freed.

The readout is the definition's (:func:`.definition.readout_units`).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from neuromoco.deploy.graph.shapes import check_time_axis
from neuromoco.deploy.loihi.plan import LavaPlan, check_delays
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.reference_fixed import activation, arith, definition, memory, neurons
from neuromoco.deploy.targets.reference_fixed.activation import Outputs
from neuromoco.deploy.targets.reference_fixed.connection import FixedConn
from neuromoco.deploy.targets.reference_fixed.layer import FixedLayer
from neuromoco.deploy.targets.reference_fixed.strategy import DEFAULT, Strategy
from neuromoco.errors import UserError


class FixedPointExecutor:
    """Runs frames ``[T, B, *input_shape]`` through a fixed-point plan, bit-exact with ``lava-fixed``.

    ``device``: a torch device (CPU or CUDA); ``record_spikes``: keep the full 0/1 record of every spiking
    layer; ``batch_size``: samples per batch (memory grows with ``T * batch_size * neurons``); ``threads``:
    torch's CPU threads during :meth:`run` (0: leave torch's setting; restored afterwards); ``strategy``: the
    fast kernels allowed (the same integers whichever); ``time_steps``: the model card's T, where known, to refuse
    frames given as ``[N, T, ...]`` (:func:`~neuromoco.deploy.graph.shapes.check_time_axis`); ``record_voltages``:
    return every layer's voltage per step after the step's reset (``RunResult.voltages``, int32 in Lava's units:
    the ``v`` its LIF holds, spiking above ``vth << 6``).
    """

    def __init__(self, plan: LavaPlan, device: str = "cpu", record_spikes: bool = False,
                 batch_size: int = 256, threads: int = 0, strategy: Strategy = DEFAULT,
                 time_steps: int | None = None, record_voltages: bool = False) -> None:
        if plan.precision != "fixed":
            raise UserError(f"reference-fixed runs fixed-point plans; this one is {plan.precision} point "
                            "(export it with --target lava-fixed or reference-fixed)")
        try:
            self.device = torch.device(device)
        except RuntimeError as err:
            raise UserError(f"reference-fixed: bad torch device {device!r} ({err})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"reference-fixed: device {device!r} asked for but CUDA is not available")
        check_delays(plan)  # a connection that would not meet its target on time: not what Lava ran
        self.plan = plan
        self.record_spikes = bool(record_spikes)
        self.record_voltages = bool(record_voltages)
        self.batch_size = max(1, int(batch_size))
        self.threads = max(0, int(threads))
        self.strategy = strategy
        self.time_steps = time_steps
        shapes = {plan.input_name: tuple(plan.input_shape), **{lay.name: tuple(lay.shape) for lay in plan.layers}}
        self.layers = [FixedLayer.from_plan(lay, self.device, shapes, strategy) for lay in plan.layers]
        self.readout_conns = [FixedConn.from_plan(c, self.device, strategy) for c in plan.readout.conns]
        self.last_run: dict[str, Any] = {}
        self.layer_kernels: dict[str, str] = {}  # the neuron kernel each layer ran in the last batch

    # ------------------------------------------------------------------------------------------- API

    def run(self, frames: np.ndarray) -> RunResult:
        check_time_axis(np.shape(frames), self.time_steps)
        x = self.plan.flat_frames(frames)
        T, B = x.shape[:2]
        if not self.strategy.fast:  # the definition itself, every sample at once
            t0 = time.perf_counter()
            result = definition.run(self.plan, x, self.record_spikes, self.record_voltages)
            batch, batches = max(B, 1), 1
        else:
            payload = self.payload(x)
            t0 = time.perf_counter()
            batch = self.fitting_batch(T, B)
            parts = self._run_batches(payload, batch)
            result, batches = (parts[0] if len(parts) == 1 else RunResult.concatenate(parts)), len(parts)
        self.last_run = {"samples": B, "steps": T, "seconds": time.perf_counter() - t0,
                         "batches": batches, "batch_size": batch, "device": str(self.device)}
        return result

    def _run_batches(self, payload: np.ndarray, batch: int) -> list[RunResult]:
        """The payload ``[T, B, n_in]`` in batches of ``batch`` samples, on ``threads`` torch threads."""
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                parts = [self._run_batch(payload[:, i:i + batch]) for i in range(0, payload.shape[1], batch)]
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        finally:
            if self.threads:
                torch.set_num_threads(before)
        return parts

    def fitting_batch(self, T: int, B: int) -> int:
        """``batch_size`` (at most ``B``), lowered to what fits the memory available now (:mod:`.memory`); a
        one-line refusal, before anything is allocated, where not even one sample fits."""
        wanted = max(1, min(self.batch_size, B))
        avail = memory.available_bytes(self.device)
        batch, per_sample = memory.fitting_batch(self.plan.input_size, self._memory_layers(), T, wanted, avail,
                                                 self.record_voltages)
        if batch < 1 and avail is not None:  # (with no figure for the memory available, nothing is refused)
            raise UserError(f"reference-fixed: one sample of {T} steps needs about {per_sample / 2**30:.1f} GiB "
                            f"and {avail / 2**30:.1f} GiB are available; lower the time steps or the input "
                            f"resolution, or run on a larger machine")
        return batch

    def _memory_layers(self) -> list[tuple[int, int, bool]]:
        """``(neurons, index of the last layer reading it, spiking)`` per layer, for :mod:`.memory` (the
        readout's sources and, with ``record_spikes``, every spiking layer count as read to the end)."""
        last = self._last_readers()
        return [(lay.size, last[lay.name], lay.spiking) for lay in self.layers]

    def _last_readers(self) -> dict[str, int]:
        """Per layer, the index of the last layer whose connections read it (``len(layers)``: kept to the end)."""
        end = len(self.layers)
        last = {lay.name: -1 for lay in self.layers}
        for i, lay in enumerate(self.layers):
            for c in lay.conns:
                for src in (c.source, *c.shared):
                    if src in last:
                        last[src] = max(last[src], i)
        ro = self.plan.readout
        keep = {ro.direct} | {c.source for c in self.readout_conns}
        for lay in self.layers:
            if lay.name in keep or (self.record_spikes and lay.spiking) or not lay.spiking:
                last[lay.name] = end
        return last

    def payload(self, x: np.ndarray) -> np.ndarray:
        """The graded input Lava's ``RingBuffer`` sends: ``round(x * input_scale)`` as int32 (as the runner);
        float32 holding those integers where :func:`_fast_payload` applies, else int64."""
        fast = _fast_payload(x, self.plan.input_scale, self.plan.input_max)
        if fast is not None:
            return fast
        return definition.payload(self.plan, x)

    # ----------------------------------------------------------------------------------- internals

    def _run_batch(self, payload: np.ndarray) -> RunResult:
        T, B = payload.shape[:2]
        plan = self.plan
        # every unit's output per step, sample-major [T, B, n] (spikes 0/1, payload or voltage), and its bound
        x_in = torch.from_numpy(np.ascontiguousarray(payload)).to(self.device)
        lo, hi = torch.aminmax(x_in) if x_in.numel() else (torch.zeros(()), torch.zeros(()))
        in_max = max(-float(lo), float(hi))
        outs: Outputs = {plan.input_name: (x_in.to(torch.float64 if in_max >= arith.MAX_UV else torch.float32), in_max)}
        last = self._last_readers()
        counts: dict[str, np.ndarray] = {}
        volts: dict[str, torch.Tensor] = {}
        for i, lay in enumerate(self.layers):
            if self.record_voltages:
                volts[lay.name] = torch.empty((T, B, lay.size), dtype=torch.int32, device=self.device)
            outs[lay.name] = self._run_layer(lay, outs, T, B, volts.get(lay.name))
            for done in [name for name, j in last.items() if j == i or (j < 0 and name == lay.name)]:
                counts[done] = _counts(outs.pop(done)[0])  # read by no later layer: counted, freed
        result = self._result(outs, counts, T, B)
        result.voltages = {lay.name: volts[lay.name].cpu().numpy().reshape(T, B, *lay.shape)
                           for lay in self.layers if lay.name in volts}
        return result

    def _run_layer(self, lay: FixedLayer, outs: Outputs, T: int, B: int,
                   volts: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """The layer over all steps: its output ``[T, B, n]`` (bool spikes, or the voltage) and its bound, by
        the first neuron kernel (:mod:`.neurons`) the strategy allows whose bound holds: the memoryless step
        (bounded by the weights, before any product; or by the actual inputs), the currents at once
        (``du = 4095``), else the general step. ``volts``: where to write the voltage after each step's reset."""
        n = lay.size
        own_max = 1.0 if lay.spiking else float(arith.MAX_UV)
        record = torch.empty((T, B, n), dtype=torch.bool if lay.spiking else torch.float64, device=self.device)
        memoryless = self.strategy.memoryless and lay.memoryless
        chunk_bytes = self.strategy.memoryless_chunk_bytes
        act = float(1 << arith.ACT_SHIFT)
        bound = lay.b_max + activation.ff_bound(lay.conns, outs)
        if memoryless and bound * act < arith.MAX_UV:  # the weights prove it: no wrap
            def inputs(t0: int, t1: int) -> torch.Tensor | None:
                return activation.feed_forward(lay.conns, outs, n, lay.name, (t0, t1))[0]

            self.layer_kernels[lay.name] = "memoryless"
            neurons.run_memoryless(lay, inputs, bound, record, chunk_bytes, volts)
            return record, own_max
        ff, ff_bound, rec = activation.feed_forward(lay.conns, outs, n, lay.name)
        # |a| <= a_max every step; below 2**24 / 64 neither int32 wrap can happen (|u| stays <= 2**23)
        rec_max = sum(c.bound(outs[c.source][1] if c.source in outs else own_max) for c in rec)
        ff_max = ff_bound
        if ff is not None and (lay.b_max + ff_bound + rec_max) * act >= 2 * arith.MAX_UV:
            lo, hi = torch.aminmax(ff)  # the bound from the weights is not enough: the actual largest input
            ff_max = max(-float(lo), float(hi))
        a_max = lay.b_max + ff_max + rec_max
        if memoryless and a_max * act < arith.MAX_UV:  # the actual inputs prove it
            self.layer_kernels[lay.name] = "memoryless"
            neurons.run_memoryless(lay, lambda t0, t1: None if ff is None else ff[t0:t1], a_max, record, chunk_bytes,
                                   volts)
            return record, own_max
        may_wrap32 = a_max * act >= 2 * arith.MAX_UV
        ff = None if ff is None else ff.to(torch.float64)
        if memoryless:
            self.layer_kernels[lay.name] = "currents at once"
            neurons.run_currents_at_once(lay, ff, record, may_wrap32, volts)
        else:
            def recurrent(t: int, prev: torch.Tensor) -> torch.Tensor | None:
                return activation.recurrent(rec, outs, prev, own_max, lay.name, t)

            self.layer_kernels[lay.name] = "step"
            neurons.run_steps(lay, ff, recurrent if rec else None, record, may_wrap32, volts)
        return record, own_max

    def _result(self, outs: Outputs, counts: dict[str, np.ndarray], T: int, B: int) -> RunResult:
        """Spike counts of every spiking layer (those freed early were counted then), full records where kept."""
        spikes: dict[str, np.ndarray] = {}
        for lay in self.layers:
            if not lay.spiking or lay.name in counts:
                continue
            rec = outs[lay.name][0]
            counts[lay.name] = _counts(rec)
            if self.record_spikes:  # the record is not used again: its bytes as 0/1 uint8, no copy
                spikes[lay.name] = rec.view(torch.uint8).cpu().numpy().reshape(T, B, *lay.shape)
        order = [lay.name for lay in self.layers if lay.spiking]
        return RunResult(output=self._readout(outs, T, B), spike_counts={k: counts[k] for k in order},
                         spikes=spikes)

    def _readout(self, outs: Outputs, T: int, B: int) -> np.ndarray:
        """What lava-fixed's runner returns (:func:`.definition.readout_units`) from the recorded readout: a
        direct layer's output, or the readout connections' ``a_out`` summed (exactly, as Lava's Recorder)."""
        ro = self.plan.readout
        if ro.direct:
            return definition.readout_units(self.plan, outs[ro.direct][0].to(torch.float64).cpu().numpy())
        total: torch.Tensor | None = None
        for c in self.readout_conns:
            x, x_max = outs[c.source]
            if c.recurrent:  # the source's previous step; nothing at the first (see docs/targets.md)
                x = torch.cat([torch.zeros_like(x[:1]), x[:-1]], dim=0)
            a = c.apply(x.reshape(T * B, x.shape[2]), x_max, events=x.dtype == torch.bool)
            if a is not None:
                a = a.to(torch.float64)
                total = a if total is None else total + a
        if total is None:
            return definition.readout_units(self.plan, np.zeros((T, B, ro.size)))
        return definition.readout_units(self.plan, total.reshape(T, B, ro.size).cpu().numpy())


def _fast_payload(x: np.ndarray, input_scale: float, input_max: float) -> np.ndarray | None:
    """:func:`.definition.payload` in one float32 pass for float32 or small-integer frames with
    ``input_scale == 1``: ``round(x)`` is exact in float32 (and equals the float64 one), and so is
    ``|round(x) - x|``; the same warnings. None (the definition's) otherwise, or past ``2**23``."""
    if input_scale != 1.0 or x.dtype not in (np.float32, np.uint8, np.int8, np.int16, np.uint16, np.bool_):
        return None
    x = np.ascontiguousarray(x)
    q = np.rint(x) if x.dtype == np.float32 else x.astype(np.float32)
    top = max(float(q.max(initial=0)), -float(q.min(initial=0)))  # (no |q| temporary)
    if not top < arith.MAX_UV:  # (also NaN)
        return None
    if x.dtype == np.float32 and not np.array_equal(q, x) and np.any(np.abs(q - x) > 1e-9):
        warnings.warn("fixed point: input frames are not integers after input_scale and are rounded", stacklevel=4)
    if top > input_max * input_scale:
        warnings.warn(f"fixed point: input values up to {float(np.abs(x).max()):g} exceed input_max "
                      f"{input_max:g} the scales were chosen for; currents may overflow", stacklevel=4)
    return q


def _counts(rec: torch.Tensor) -> np.ndarray:
    """Spikes per step and sample of a bool record ``[T, B, n]``."""
    if rec.device.type == "cpu":  # numpy counts bools some 10x faster than torch's sum
        return np.count_nonzero(rec.numpy(), axis=2).astype(np.int64)
    return rec.sum(2, dtype=torch.int64).cpu().numpy()
