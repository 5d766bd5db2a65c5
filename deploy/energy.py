"""Synaptic operations, neuron updates and energy per inference, from the spikes of a run.

Counting (per inference, i.e. per sample):

* A **synaptic layer** is a chain of weight-carrying nodes (Affine, Linear, Conv1d, Conv2d, SumPool2d,
  AvgPool2d, Scale; Flatten and Delay only reshape or shift) from a *spike source* to a *sink*. Sources
  are the graph's Input (its events) and every spiking node (LIF, IF, CubaLIF, Threshold); sinks are neuron
  nodes, Threshold and Output. A recurrent edge (neuron -> Affine -> the same neuron) is a layer like any
  other.
* **Synaptic operations** of a layer: every spike of the source, times its **fan-out**, the number of
  synapses it reaches. The fan-out is computed per source position, exactly: the chain is run with every
  weight replaced by 1 and the gradient of the sum of its output with respect to its input is taken, which
  for each input position counts the (output position, output channel) pairs it reaches through the
  chain, respecting padding (padded taps reach nothing), stride, dilation and groups. For a chain of one
  weighted node (the normal case), this is exactly the number of synapses; for a chain of several (say
  SumPool2d -> Conv2d) it counts paths, which equals the synapse count of the folded layer whenever no two
  paths join the same pair (non-overlapping pooling). Structural: a weight that happens to be zero still
  counts as a synapse.
  With per-neuron spike records (``RunResult.spikes``) the count is exact; with per-layer totals only,
  each spike is charged the mean fan-out (``exact: false`` in the output).
* **Input events** are the first layer's sources: the frames' values summed when they are non-negative
  integers (event counts per bin), otherwise the number of non-zero entries (graded input; noted).
* **Neuron updates**: neurons x time steps, for every neuron node (LIF, IF, LI, CubaLIF, CubaLI).
* **ANN MACs**: the same synaptic layers run once per inference as a conventional network, every
  multiply-accumulate counted densely (output elements x taps per output, padding taps included), as
  frameworks compute them; pooling adds are counted as MACs; Flatten and Delay cost nothing.

Energy: ``synops * E_synop + neuron_updates * E_neuron_update`` for the SNN and ``ann_macs * E_ann_mac``
for the ANN, with the energies of a named model from ``deploy/energy_models.json`` (extendable with
user files). The models, their sources and caveats travel into ``energy.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import nir
import numpy as np

from neuromoco.deploy.nodes import NODES, node_is
from neuromoco.deploy.result import RunResult
from neuromoco.errors import UserError

DEFAULT_MODELS = ("loihi", "45nm")


# ---------------------------------------------------------------------------------------- energy models
def load_energy_models(extra: Iterable[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """The table of named energy models: the packaged one, extended (or overridden by name) by ``extra`` files."""
    text = resources.files("neuromoco.deploy").joinpath("energy_models.json").read_text()
    table = dict(json.loads(text)["models"])
    for path in extra:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"energy model file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"energy model file {path} is not valid JSON: {err}") from None
        models = data.get("models", data) if isinstance(data, dict) else None
        if not isinstance(models, dict):
            raise UserError(f"energy model file {path}: expected {{\"models\": {{NAME: {{...}}}}}}")
        table.update({k: v for k, v in models.items() if not k.startswith("_")})
    for name, model in table.items():
        _validate_model(name, model)
    return table


def _validate_model(name: str, model: Any) -> None:
    if not isinstance(model, dict) or not isinstance(model.get("energy_pj"), dict):
        raise UserError(f"energy model {name!r} needs an 'energy_pj' object with 'synop' (pJ)")
    e = model["energy_pj"]
    for key in ("synop", "neuron_update", "ann_mac"):
        value = e.get(key)
        if key == "synop" and value is None:
            raise UserError(f"energy model {name!r} lacks energy_pj.synop")
        if value is not None and (not isinstance(value, (int, float)) or value < 0 or not np.isfinite(value)):
            raise UserError(f"energy model {name!r}: energy_pj.{key} must be a non-negative number, got {value!r}")
    if not model.get("source"):
        raise UserError(f"energy model {name!r} states no source; every model must say where its figures come from")


def select_models(table: dict[str, dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UserError(f"unknown energy model(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return {n: table[n] for n in names}


# ---------------------------------------------------------------------------------------- graph structure
@dataclass
class SynapticLayer:
    """A chain of nodes carrying the spikes of ``source`` to ``sink``, with its exact fan-out map."""

    source: str
    sink: str
    ops: list[str]  # node names along the chain (weighted and pass-through)
    fanout: np.ndarray  # per source position: synapses reached (path count)
    op_macs: dict[str, int] = field(default_factory=dict)  # dense MACs of each weighted node, once per inference

    @property
    def ann_ops(self) -> list[str]:
        return list(self.op_macs)

    @property
    def ann_macs(self) -> int:
        return int(sum(self.op_macs.values()))

    @property
    def name(self) -> str:
        return "+".join(self.ann_ops) if self.ann_ops else f"{self.source}->{self.sink}"

    @property
    def connections(self) -> int:
        return int(self.fanout.sum())


# Unit-weight rules: apply a node with every weight 1 to ``x`` ([1, *shape], float64) and count its dense MACs.
# Geometry (padding before/after, 'same', Affine on the last dim) is the graph loader's, so the counts follow
# exactly what the reference executor computes.
UnitRule = Callable[[Any, str, Any], tuple[Any, int]]


def _unit_linear(node: Any, name: str, x: Any) -> tuple[Any, int]:
    import torch
    import torch.nn.functional as F

    w = torch.ones(tuple(np.shape(node.weight)), dtype=x.dtype)
    y = F.linear(x, w)
    return y, int(y[0].numel() * w.shape[1])


def _unit_conv(node: Any, name: str, x: Any) -> tuple[Any, int]:
    import torch
    import torch.nn.functional as F

    from neuromoco.deploy.graph import conv_geometry

    g = conv_geometry(node, name)
    w = torch.ones(tuple(np.shape(node.weight)), dtype=x.dtype)
    pad = [p for pair in reversed(g["padding"]) for p in pair]  # F.pad: last dim first
    xp = F.pad(x, pad)  # padded taps are constants: they reach nothing from the input
    conv = F.conv1d if g["nd"] == 1 else F.conv2d
    y = conv(xp, w, None, g["stride"], 0, g["dilation"], g["groups"])
    return y, int(y[0].numel() * w[0].numel())


def _unit_pool(node: Any, name: str, x: Any) -> tuple[Any, int]:
    import torch
    import torch.nn.functional as F

    from neuromoco.deploy.graph import pool_geometry

    g = pool_geometry(node, name)
    c = x.shape[1]
    w = torch.ones((c, 1, *g["kernel"]), dtype=x.dtype)
    y = F.conv2d(x, w, None, g["stride"], g["padding"], 1, c)  # depthwise window sum
    return y, int(y[0].numel() * g["kernel"][0] * g["kernel"][1])


def _unit_scale(node: Any, name: str, x: Any) -> tuple[Any, int]:
    return x, int(x[0].numel())


#: the node types a synaptic layer counts (synapses, pooling windows, Scale) and their unit-weight rules;
#: any other node on a chain (Flatten; NIR's Delay, were it let through) passes its input on at no cost
UNIT_RULES: dict[type, UnitRule] = {
    nir.Affine: _unit_linear, nir.Linear: _unit_linear,
    nir.Conv1d: _unit_conv, nir.Conv2d: _unit_conv,
    nir.SumPool2d: _unit_pool, nir.AvgPool2d: _unit_pool,
    nir.Scale: _unit_scale,
}


def _is_source(node: Any) -> bool:
    """The graph's Input and every node whose output is 0/1 spikes (LIF, IF, CubaLIF, Threshold)."""
    row = NODES.get(type(node))
    return row is not None and (row.spiking or row.role in ("input", "threshold"))


def _is_sink(node: Any) -> bool:
    """Where a synaptic layer ends: a neuron, a Threshold or the Output."""
    row = NODES.get(type(node))
    return row is not None and row.role in ("neuron", "threshold", "output")


def _chains(graph: nir.NIRGraph, src: str, succ: dict[str, list[str]]) -> Iterator[tuple[str, list[str]]]:
    """Every ``(sink, chain)`` reached from ``src`` through non-sink nodes, depth first, edges in file order."""
    stack: list[tuple[str, list[str]]] = [(b, []) for b in reversed(succ.get(src, []))]
    while stack:
        name, chain = stack.pop()
        if _is_sink(graph.nodes[name]):
            yield name, chain
        elif name in chain or name == src:
            raise UserError(f"graph has a cycle through {name!r} without a neuron on it")
        else:
            stack.extend((b, chain + [name]) for b in reversed(succ.get(name, [])))


def _fanout(graph: nir.NIRGraph, chain: list[str], shape: tuple[int, ...],
            shapes: dict[str, tuple[int, ...]]) -> tuple[np.ndarray, dict[str, int]]:
    """Per source position the synapses reached through ``chain`` (path count), and each counted node's MACs."""
    import torch

    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    y, op_macs = x, {}
    for c in chain:
        rule = UNIT_RULES.get(type(graph.nodes[c]))
        if rule is None:
            y = y.reshape(1, *shapes[c])
        else:
            y, op_macs[c] = rule(graph.nodes[c], c, y)
    y.sum().backward()
    return np.rint(x.grad[0].numpy()).astype(np.int64), op_macs


def synaptic_layers(graph: nir.NIRGraph, input_shape: Sequence[int] | None = None,
                    shapes: dict[str, tuple[int, ...]] | None = None) -> list[SynapticLayer]:
    """Every source -> sink chain of ``graph`` with its exact per-position fan-out (see module docstring).

    ``input_shape``: the Input node's ``[C, H, W]`` (the model card's); ``shapes``: every node's output
    shape as :func:`neuromoco.deploy.graph.node_shapes` infers it (computed here when not given).
    """
    from neuromoco.deploy.graph import node_shapes

    if shapes is None:
        shapes = node_shapes(graph, list(input_shape) if input_shape is not None else None)
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    layers: list[SynapticLayer] = []
    for src in (n for n, node in graph.nodes.items() if _is_source(node)):
        for sink, chain in _chains(graph, src, succ):
            counted = [c for c in chain if type(graph.nodes[c]) in UNIT_RULES]
            if not counted and node_is(graph.nodes[sink], role="output"):
                continue  # a spike read out as it is: no synapse
            fan, op_macs = _fanout(graph, chain, tuple(shapes[src]), shapes)
            layers.append(SynapticLayer(src, sink, chain, fan, op_macs))
    return layers


def neuron_sizes(graph: nir.NIRGraph, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Number of neurons of every neuron node."""
    return {name: int(np.prod(shapes[name])) for name, node in graph.nodes.items()
            if node_is(node, role="neuron")}


# ---------------------------------------------------------------------------------------- activity
def input_events(frames: np.ndarray) -> tuple[np.ndarray, str]:
    """Per input position (``[C, H, W]``) event totals over time and samples, and how they were counted."""
    f = np.asarray(frames)
    integral = bool(np.all(f >= 0) and np.all(np.mod(f, 1) == 0))
    if integral:
        return f.sum(axis=(0, 1), dtype=np.float64), "events (sum of integer frame counts)"
    return (f != 0).sum(axis=(0, 1)).astype(np.float64), "non-zero frame entries (graded input, one event each)"


class Activity:
    """Spike totals of a run, per source and (when recorded) per neuron, accumulated over batches.

    ``frames`` of each batch are ``[T, B, C, H, W]``; the Input node's events are taken from them.
    """

    def __init__(self) -> None:
        self.samples = 0
        self.steps = 0
        self.per_neuron: dict[str, np.ndarray] = {}
        self.totals: dict[str, float] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.exact: dict[str, bool] = {}
        self.input_positions: np.ndarray | None = None
        self.input_basis = ""

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        T, B = result.output.shape[:2]
        self.samples += B
        self.steps = T
        ev, self.input_basis = input_events(frames)
        self.input_positions = ev if self.input_positions is None else self.input_positions + ev
        for k, counts in result.spike_counts.items():
            self.totals[k] = self.totals.get(k, 0.0) + float(np.sum(counts))
            if k in result.spikes:
                s = result.spikes[k].sum(axis=(0, 1), dtype=np.int64)
                self.shapes[k] = tuple(s.shape)
                self.per_neuron[k] = self.per_neuron.get(k, 0) + s
                self.exact[k] = self.exact.get(k, True)
            else:
                self.exact[k] = False
                self.per_neuron.pop(k, None)


def profile(graph: nir.NIRGraph, activity: Activity, input_shape: Sequence[int] | None = None,
            shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, Any]:
    """Synaptic operations, neuron updates, spikes and ANN MACs per inference, per layer and in total."""
    if activity.samples == 0:
        raise ValueError("no samples profiled")
    n = activity.samples
    input_names = [k for k, v in graph.nodes.items() if node_is(v, role="input")]
    if input_shape is None and activity.input_positions is not None:
        input_shape = activity.input_positions.shape
    if shapes is None:
        from neuromoco.deploy.graph import node_shapes

        shapes = node_shapes(graph, list(input_shape) if input_shape is not None else None)
    layers = synaptic_layers(graph, input_shape, shapes)
    sizes = neuron_sizes(graph, shapes)
    notes: list[str] = []
    rows = _layer_rows(layers, activity, sizes, input_names, notes)
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


def energy(prof: dict[str, Any], models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Energy per inference (pJ) under each model, in total and per layer, for the SNN and the ANN."""
    out: dict[str, Any] = {}
    for name, model in models.items():
        e = model["energy_pj"]
        e_syn, e_nu, e_mac = e["synop"], e.get("neuron_update") or 0.0, e.get("ann_mac")
        per_layer = []
        for r in prof["layers"]:
            snn = r["synops_per_inference"] * e_syn + r["neuron_updates_per_inference"] * e_nu
            per_layer.append({"layer": r["layer"], "snn_pj": snn,
                              "ann_pj": None if e_mac is None else r["ann_macs"] * e_mac})
        t = prof["per_inference"]
        snn_syn = t["synops"] * e_syn
        snn_nu = t["neuron_updates"] * e_nu
        ann = None if e_mac is None else t["ann_macs"] * e_mac
        snn = snn_syn + snn_nu
        out[name] = {
            "snn_pj": snn, "snn_synops_pj": snn_syn, "snn_neuron_updates_pj": snn_nu, "ann_pj": ann,
            "ann_over_snn": None if ann is None or snn == 0 else ann / snn,
            "layers": per_layer,
        }
    return out
