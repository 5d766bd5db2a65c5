"""The ``trace:FILE`` target object and its runner: the recorded results of the samples it is asked for.

Samples are found by the key of their frames (:func:`~neuromoco.deploy.traces.sample_key`) when the trace has
keys, else taken in recorded order, one batch after another. Anything that does not fit the graph and the
samples (a layer not recorded, a layer's size, the time steps, dt, a sample not in the trace) is one UserError
line: a comparison of different runs would report divergences that are not there.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.base import Target
from neuromoco.deploy.targets.options import RunContext
from neuromoco.deploy.targets.trace.options import TraceOptions
from neuromoco.deploy.traces import Trace, read, sample_key
from neuromoco.errors import UserError


class TraceRunner:
    """Replays a trace for a graph: ``run(frames [T, B, ...])`` -> the recorded results of those ``B`` samples."""

    def __init__(self, trace: Trace, graph: nir.NIRGraph, card: ModelCard, file: str) -> None:
        from neuromoco.deploy.graph import node_io_shapes, spiking_nodes, structure

        self.file = file
        info = trace.info
        if info.dt and card.dt and not np.isclose(info.dt, card.dt, rtol=1e-9, atol=0.0):
            raise UserError(f"trace {file} was recorded at dt={info.dt:g}, the model card says dt={card.dt:g}")
        io = node_io_shapes(graph, card.input_shape)
        self.layers = spiking_nodes(graph)
        r = trace.result
        missing = [k for k in self.layers if k not in r.spikes and k not in r.spike_counts]
        if missing:
            raise UserError(f"trace {file} has no record of layer(s) {', '.join(missing)} of this graph "
                            f"(it records {', '.join(sorted({*r.spikes, *r.spike_counts})) or 'no layer'})")
        spikes = {k: self._shaped(k, r.spikes[k], io[k][1]) for k in self.layers if k in r.spikes}
        counts = {k: r.spike_counts[k] if k in r.spike_counts else
                  spikes[k].reshape(*spikes[k].shape[:2], -1).sum(-1, dtype=np.int64) for k in self.layers}
        output = r.output if r.output.size else self._output_from_spikes(graph, structure(graph).output, spikes)
        volts = {k: self._shaped(k, v, io[k][1]) for k, v in trace.voltages.items() if k in io}
        self.result = RunResult(output=np.asarray(output, np.float64), spike_counts=counts, spikes=spikes,
                                voltages=volts)
        self.steps, self.samples = int(output.shape[0]), int(output.shape[1])
        self.keys = {k: i for i, k in enumerate(trace.sample_keys)} if trace.sample_keys else None
        self.cursor = 0

    def _shaped(self, name: str, s: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if int(np.prod(s.shape[2:])) != int(np.prod(shape)):
            raise UserError(f"trace {self.file}: layer {name} records {int(np.prod(s.shape[2:]))} neurons, the graph's "
                            f"has {int(np.prod(shape))} {list(shape)}")
        return s.reshape(*s.shape[:2], *shape)

    def _output_from_spikes(self, graph: nir.NIRGraph, out: str, spikes: dict[str, np.ndarray]) -> np.ndarray:
        """No ``output`` recorded: the Output node's one source's spikes, where it is a spiking node."""
        srcs = [a for a, b in graph.edges if b == out]
        if len(srcs) != 1 or srcs[0] not in spikes:
            raise UserError(f"trace {self.file} records no output (an 'output' observable on node {out!r}) and the "
                            "Output node's input is not a recorded spiking layer")
        s = spikes[srcs[0]]
        return s.reshape(*s.shape[:2], -1).astype(np.float64)

    def run(self, frames: np.ndarray) -> RunResult:
        T, B = int(frames.shape[0]), int(frames.shape[1])
        if T != self.steps:
            raise UserError(f"trace {self.file} holds {self.steps} time steps, these frames {T}")
        idx = self._indices(frames, B)
        r = self.result
        return RunResult(output=r.output[:, idx], spike_counts={k: v[:, idx] for k, v in r.spike_counts.items()},
                         spikes={k: v[:, idx] for k, v in r.spikes.items()},
                         voltages={k: v[:, idx] for k, v in r.voltages.items()})

    def _indices(self, frames: np.ndarray, B: int) -> np.ndarray:
        """Where each of the ``B`` samples is in the trace (by frame key, else the next ``B`` in order)."""
        if self.keys is not None:
            idx = [self.keys.get(sample_key(frames[:, b]), -1) for b in range(B)]
            if -1 in idx:
                raise UserError(f"trace {self.file} holds no run of sample {idx.index(-1)} of this batch (its frames "
                                f"match none of the {self.samples} recorded): compare on the samples it holds (the "
                                "same dataset and split, or their frames as --dataset FILE.npz)")
            return np.asarray(idx)
        if self.cursor + B > self.samples:
            raise UserError(f"trace {self.file} holds {self.samples} samples; more are asked for (compare on the "
                            "samples it holds: their frames as --dataset FILE.npz)")
        self.cursor += B
        return np.arange(self.cursor - B, self.cursor)


class TraceTarget(Target):
    """A recorded run: nothing to export or open, only replayed for a graph (``runner``)."""

    name = "trace"
    Options = TraceOptions

    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: TraceOptions,
              context: RunContext) -> Path:
        raise UserError("a trace is a recorded run: there is nothing to export")

    def open(self, artefact: Path, options: TraceOptions, context: RunContext) -> TraceRunner:
        raise UserError("a trace replays against a .nir graph, not an exported folder")

    def build(self, graph: nir.NIRGraph, card: ModelCard, options: TraceOptions, context: RunContext) -> TraceRunner:
        if not options.file:
            raise UserError("the trace target needs its file: name it trace:FILE")
        return TraceRunner(read(options.file), graph, card, options.file)


TARGET = TraceTarget()
