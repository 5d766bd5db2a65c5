"""Synaptic operations, neuron updates, spikes and ANN MACs per inference, per layer and in total.

Counting (per inference, i.e. per sample), over the synaptic layers of :mod:`.walk`:

* **Synaptic operations** of a layer: every spike of the source, times its fan-out. With per-neuron spike records
  (``RunResult.spikes``) the count is exact; with per-layer totals only, each spike is charged the mean fan-out
  (``exact: false`` in the output). A weight that happens to be zero still counts as a synapse.
* **Input events** are the first layer's sources (:func:`.activity.input_events`).
* **Neuron updates**: neurons x time steps, for every neuron node (LIF, IF, LI, CubaLIF, CubaLI).
* **ANN MACs**: the same synaptic layers run once per inference as a conventional network, every
  multiply-accumulate counted densely (output elements x taps per output, padding taps included), as
  frameworks compute them; pooling adds are counted as MACs; Flatten costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nir

from neuromoco.deploy.metrics.activity import Activity
from neuromoco.deploy.metrics.walk import SynapticLayer, Walk, walk
from neuromoco.deploy.nodes import node_is
from neuromoco.errors import UserError


def profile(graph: nir.NIRGraph, activity: Activity, input_shape: Sequence[int] | None = None,
            graph_walk: Walk | None = None) -> dict[str, Any]:
    """Synaptic operations, neuron updates, spikes and ANN MACs per inference, per layer and in total (over
    ``graph_walk`` where the caller has made it already)."""
    if activity.samples == 0:
        raise ValueError("no samples profiled")
    n = activity.samples
    input_names = [k for k, v in graph.nodes.items() if node_is(v, role="input")]
    if input_shape is None and activity.input_positions is not None:
        input_shape = activity.input_positions.shape
    w = graph_walk if graph_walk is not None else walk(graph, input_shape)
    sizes = w.neuron_sizes(graph)
    notes: list[str] = []
    rows = _layer_rows(w.layers, activity, sizes, input_names, notes)
    if not all(r["exact"] for r in rows):
        notes.append("some sources have only per-layer spike totals: their spikes are charged the mean fan-out")
    spiking = [k for k in activity.totals if k not in input_names]
    return {
        "samples": n, "time_steps": activity.steps, "layers": rows,
        "per_inference": _per_inference(rows, activity, sizes, spiking),
        "spikes_per_layer_per_inference": {k: activity.totals[k] / n for k in spiking},
        "input_basis": activity.input_basis, "exact": all(r["exact"] for r in rows), "notes": notes,
    }


def _layer_rows(layers: list[SynapticLayer], activity: Activity, sizes: dict[str, int], input_names: list[str],
                notes: list[str]) -> list[dict[str, Any]]:
    """One row per synaptic layer whose source's spikes the run reports (``notes`` says which are not),
    then one per neuron node no layer feeds. A node shared by layers has its MACs and updates counted once.
    Layers into one node (a residual ADD: several sources summed into one conv) are named ``conv<-source``."""
    n, T = activity.samples, activity.steps
    names = [layer.name for layer in layers]
    rows = []
    counted_ann: set[str] = set()
    charged_neurons: set[str] = set()
    for layer in layers:
        if layer.source not in input_names and layer.source not in activity.totals:
            notes.append(f"layer {layer.name} is fed by {layer.source!r}, whose spikes the run does not report: "
                         "not counted")
            continue
        spikes_in, synops, exact = _spikes_through(layer, activity, layer.source in input_names)
        ann = sum(m for o, m in layer.op_macs.items() if o not in counted_ann)  # a shared node once
        counted_ann.update(layer.op_macs)
        nu = 0
        if layer.sink in sizes and layer.sink not in charged_neurons:
            nu = sizes[layer.sink] * T
            charged_neurons.add(layer.sink)
        rows.append({
            "layer": layer.name if names.count(layer.name) == 1 else f"{layer.name}<-{layer.source}",
            "source": layer.source, "sink": layer.sink, "ops": layer.ops,
            "fanout": {"min": int(layer.fanout.min()), "max": int(layer.fanout.max()),
                       "mean": float(layer.fanout.mean())},
            "connections": layer.connections,
            "spikes_in_per_inference": spikes_in / n,
            "synops_per_inference": synops / n,
            "neuron_updates_per_inference": float(nu),
            "ann_macs": float(ann),
            "exact": exact,
        })
    for name, size in sizes.items():  # neurons no synaptic layer feeds (e.g. driven by the input directly)
        if name not in charged_neurons:
            rows.append({"layer": name, "source": None, "sink": name, "ops": [], "fanout": None,
                         "connections": 0, "spikes_in_per_inference": 0.0, "synops_per_inference": 0.0,
                         "neuron_updates_per_inference": float(size * T), "ann_macs": 0.0, "exact": True})
    return rows


def _spikes_through(layer: SynapticLayer, activity: Activity, from_input: bool) -> tuple[float, float, bool]:
    """Spikes into ``layer`` over the run, its synaptic operations and whether they are exact (per position)."""
    if from_input:
        pos = activity.input_positions
        if pos is None or pos.shape != layer.fanout.shape:
            raise UserError(f"input events of shape {None if pos is None else list(pos.shape)} do not fit "
                            f"the input node's shape {list(layer.fanout.shape)}")
        return float(pos.sum()), float((pos * layer.fanout).sum()), True
    pn = activity.per_neuron.get(layer.source)
    if pn is not None and pn.shape == layer.fanout.shape:
        return float(pn.sum()), float((pn * layer.fanout).sum()), True
    spikes_in = activity.totals[layer.source]
    return spikes_in, spikes_in * float(layer.fanout.mean()), False


def _per_inference(rows: list[dict[str, Any]], activity: Activity, sizes: dict[str, int],
                   spiking: list[str]) -> dict[str, float]:
    """The totals per inference over all rows."""
    n = activity.samples
    return {
        "synops": sum(r["synops_per_inference"] for r in rows),
        "neuron_updates": sum(r["neuron_updates_per_inference"] for r in rows),
        "spikes": sum(activity.totals[k] for k in spiking) / n,
        "input_events": float(activity.input_positions.sum()) / n if activity.input_positions is not None else 0.0,
        "ann_macs": sum(r["ann_macs"] for r in rows),
        "neurons": sum(sizes.values()),
        "synapses": sum(r["connections"] for r in rows),
    }
