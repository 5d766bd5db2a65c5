"""NeuroBench's metrics computed from a run's spike records, with NeuroBench's names, definitions and units.

Definitions (NeuroBench 2.3.0, ``neurobench/metrics/static`` and ``neurobench/metrics/workload``; Yik et al.,
"The NeuroBench framework for benchmarking neuromorphic computing algorithms and systems", Nature
Communications 16:1545, 2025, doi:10.1038/s41467-025-56739-4):

* ``footprint`` (bytes): parameters plus buffers of the network. Here: the weights and biases of every
  weighted node, the neuron constants and the neuron state (one sample) at the target's precision
  (``TargetSpec.precision_of``); the breakdown says which is which (:mod:`.footprint`).
* ``connection_sparsity``: zero weights over all weights of the connection layers (Linear, Conv; biases,
  pooling and neurons excluded), rounded to 4 decimals as NeuroBench rounds it.
* ``activation_sparsity``: 1 - non-zero outputs / all outputs of the spiking neuron layers, over every
  neuron, time step and sample; ``activation_sparsity_by_layer``: the same per layer.
* ``synaptic_operations`` per sample: for every weighted node (Linear, Affine, Conv1d, Conv2d) and every
  forward call (one time step of one batch), with its input binarized (non-zero -> 1) and its weights
  binarized, the sum of its outputs (bias excluded): ``Effective_ACs`` when every input value of that call is
  0, 1 or -1 (spikes), else ``Effective_MACs``; ``Dense``: the same with all-ones inputs and weights (every
  in-bounds synapse, every step, whatever the activity). The input of a weighted node is what really reaches
  it, as the reference executor computes it (e.g. averaged spikes after AvgPool2d are graded: MACs); pooling
  itself is not counted.
* ``membrane_updates`` per sample: NeuroBench counts the first step's neurons and then only neurons whose
  membrane changed in a step; a time-stepped chip updates every neuron every step, and membrane values are
  not in a spike record, so here it is neurons x time steps of every neuron node: an upper bound, equal to
  NeuroBench's whenever every membrane moves every step (any non-zero input or leak with non-zero state).
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from neuromoco.deploy.metrics.footprint import connection_sparsity, footprint, precision_of
from neuromoco.deploy.metrics.walk import Walk, walk
from neuromoco.deploy.nodes import node_is
from neuromoco.deploy.result import RunResult

SOURCE = ("NeuroBench 2.3.0 (neurobench.metrics.static, neurobench.metrics.workload); Yik et al., Nature "
          "Communications 16:1545, 2025, doi:10.1038/s41467-025-56739-4")


def _fanout(node: Any, name: str, io: tuple[tuple[int, ...], tuple[int, ...]], binary: bool) -> np.ndarray:
    """Per input position of one weighted node: synapses reached (all, or only non-zero weights)."""
    import torch

    from neuromoco.deploy.reference_executor import stateless_kernel

    x = torch.ones((1, *io[0]), dtype=torch.float64, requires_grad=True)
    stateless_kernel(node, name, *io, weights="nonzero" if binary else "ones")(x).sum().backward()
    assert x.grad is not None
    return np.rint(x.grad[0].numpy()).astype(np.int64)


class NeuroBenchCounter:
    """NeuroBench's workload metrics accumulated over the batches of a run (see the module docstring).

    Each :meth:`update` is one batch; a forward call is one of its time steps, as in NeuroBench, so the
    AC / MAC decision per call matches NeuroBench's when both see the same batches.
    """

    def __init__(self, graph: nir.NIRGraph, input_shape: list[int] | None = None, graph_walk: Walk | None = None
                 ) -> None:
        from neuromoco.deploy.reference_executor import stateless_kernel

        self.graph = graph
        w = graph_walk if graph_walk is not None else walk(graph, input_shape)
        io = w.io_shapes
        self.shapes = w.shapes
        self.inputs: dict[str, list[tuple[str, tuple[str, ...]]]] = {}  # weighted node -> (source, path)
        for layer in w.layers:
            for i, op in enumerate(layer.ops):
                if node_is(graph.nodes[op], weighted=True):
                    paths = self.inputs.setdefault(op, [])
                    if (layer.source, tuple(layer.ops[:i])) not in paths:
                        paths.append((layer.source, tuple(layer.ops[:i])))
        self.in_shapes = {k: tuple(io[k][0]) for k in self.inputs}
        self.fan_nz = {k: _fanout(graph.nodes[k], k, io[k], True) for k in self.inputs}
        self.fan_all = {k: int(_fanout(graph.nodes[k], k, io[k], False).sum()) for k in self.inputs}
        on_paths = {op for paths in self.inputs.values() for _, path in paths for op in path}
        self.apply = {op: stateless_kernel(graph.nodes[op], op, *io[op]) for op in on_paths}  # the real map
        self.spiking = [k for k, v in graph.nodes.items() if node_is(v, role="neuron", spiking=True)]
        self.neurons = {k: int(np.prod(self.shapes[k])) for k, v in graph.nodes.items() if node_is(v, role="neuron")}
        self.samples = self.steps = 0
        self.ops = {k: {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0} for k in self.inputs}
        self.spike_totals = {k: 0 for k in self.spiking}
        self.notes: list[str] = []

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        import torch

        T, B = np.asarray(frames).shape[:2]
        self.samples += B
        self.steps = T
        for k in self.spiking:
            if k in result.spike_counts:
                self.spike_totals[k] += int(np.sum(result.spike_counts[k]))
        inputs = [k for k, v in self.graph.nodes.items() if node_is(v, role="input")]
        for w, paths in self.inputs.items():
            x = None
            for src, path in paths:
                if src in inputs:
                    a = np.asarray(frames, dtype=np.float64)
                elif src in result.spikes:
                    a = np.asarray(result.spikes[src], dtype=np.float64)
                else:
                    note = (f"{w}: the spikes of {src!r} are not recorded per neuron; its synaptic operations are "
                            "not counted")
                    if note not in self.notes:
                        self.notes.append(note)
                    continue
                y = torch.as_tensor(a.reshape(T * B, *a.shape[2:]))
                with torch.no_grad():
                    for op in path:
                        y = self.apply[op](y).reshape(T * B, *self.shapes[op])
                x = y if x is None else x + y
            if x is None:
                continue
            reached = x.reshape(T, B, -1).numpy()
            fan = self.fan_nz[w].reshape(-1)
            for t in range(T):
                xt = reached[t]
                spiking = bool(np.all((xt == 0) | (xt == 1) | (xt == -1)))
                eff = int(((xt != 0) * fan).sum())
                self.ops[w]["Effective_ACs" if spiking else "Effective_MACs"] += eff
                self.ops[w]["Dense"] += self.fan_all[w] * B

    def result(self) -> dict[str, Any]:
        """The workload metrics per sample, NeuroBench's names as keys, and the per-layer parts."""
        n = max(self.samples, 1)
        total = {key: sum(o[key] for o in self.ops.values()) / n
                 for key in ("Effective_MACs", "Effective_ACs", "Dense")}
        by_layer = {}
        spikes = cells = 0
        for k in self.spiking:
            c = self.neurons[k] * self.steps * self.samples
            by_layer[k] = (c - self.spike_totals[k]) / c if c else 0.0
            spikes += self.spike_totals[k]
            cells += c
        return {
            "activation_sparsity": (cells - spikes) / cells if cells else 0.0,
            "activation_sparsity_by_layer": by_layer,
            "synaptic_operations": total,
            "synaptic_operations_by_layer": {w: {k: v / n for k, v in o.items()} for w, o in self.ops.items()},
            "membrane_updates": float(sum(self.neurons.values()) * self.steps),
            "notes": list(self.notes),
        }


def neurobench_metrics(graph: nir.NIRGraph, counter: NeuroBenchCounter, target: str,
                       options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Static and workload metrics of a run, as ``energy.json`` carries them under ``neurobench``."""
    precision, bytes_per = precision_of(target, options)
    fp = footprint(graph, counter.shapes, bytes_per)
    return {
        "footprint": fp["footprint"], "footprint_bytes": fp,
        "precision": {"name": precision, "bytes_per_value": bytes_per},
        "connection_sparsity": connection_sparsity(graph),
        **counter.result(), "source": SOURCE,
    }
