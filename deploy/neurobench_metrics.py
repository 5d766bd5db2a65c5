"""NeuroBench's metrics computed from a run's spike records, with NeuroBench's names, definitions and units.

Definitions (NeuroBench 2.3.0, ``neurobench/metrics/static`` and ``neurobench/metrics/workload``; Yik et al.,
"The NeuroBench framework for benchmarking neuromorphic computing algorithms and systems", Nature
Communications 16:1545, 2025, doi:10.1038/s41467-025-56739-4):

* ``footprint`` (bytes): parameters plus buffers of the network. Here: the weights and biases of every
  weighted node, the neuron constants and the neuron state (one sample) at the target's precision
  (:data:`PRECISION_BYTES`); the breakdown says which is which.
* ``connection_sparsity``: zero weights over all weights of the connection layers (Linear, Conv; biases,
  pooling and neurons excluded), rounded to 4 decimals as NeuroBench rounds it.
* ``activation_sparsity``: 1 - non-zero outputs / all outputs of the spiking neuron layers, over every
  neuron, time step and sample; ``activation_sparsity_by_layer``: the same per layer.
* ``synaptic_operations`` per sample: for every weighted node (Linear, Affine, Conv1d, Conv2d) and every
  forward call (one time step of one batch), with its input binarized (non-zero -> 1) and its weights
  binarized, the sum of its outputs (bias excluded): ``Effective_ACs`` when every input value of that call is
  0, 1 or -1 (spikes), else ``Effective_MACs``; ``Dense``: the same with all-ones inputs and weights (every
  in-bounds synapse, every step, whatever the activity). The input of a weighted node is what really reaches
  it (e.g. averaged spikes after AvgPool2d are graded: MACs); pooling itself is not counted.
* ``membrane_updates`` per sample: NeuroBench counts the first step's neurons and then only neurons whose
  membrane changed in a step; a time-stepped chip updates every neuron every step, and membrane values are
  not in a spike record, so here it is neurons x time steps of every neuron node: an upper bound, equal to
  NeuroBench's whenever every membrane moves every step (any non-zero input or leak with non-zero state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nir
import numpy as np

from neuromoco.deploy.nodes import node_is
from neuromoco.deploy.result import RunResult

SOURCE = ("NeuroBench 2.3.0 (neurobench.metrics.static, neurobench.metrics.workload); Yik et al., Nature "
          "Communications 16:1545, 2025, doi:10.1038/s41467-025-56739-4")

#: bytes per value of each target's parameters and state: weights, biases, neuron constants, neuron state
PRECISION_BYTES: dict[str, dict[str, int]] = {
    "float32": {"weight": 4, "bias": 4, "neuron": 4, "state": 4},
    "float64": {"weight": 8, "bias": 8, "neuron": 8, "state": 8},
    # onnx-int8: int8 QDQ weights, int32 biases (onnxruntime's QDQ convention), float32 neurons
    "int8": {"weight": 1, "bias": 4, "neuron": 4, "state": 4},
    # lava-fixed: 8-bit weight mantissas (16 with weight_bits=16), 13-bit bias mantissas in 16 bits, 12 to 17-bit
    # neuron constants and 24-bit states each in a 32-bit word (an assumption about packing, not a chip figure)
    "loihi2-fixed": {"weight": 1, "bias": 2, "neuron": 4, "state": 4},
}
TARGET_PRECISION = {"reference": "float32", "onnx": "float32", "onnx-int8": "int8", "lava": "float64",
                    "lava-float": "float64", "lava-fixed": "loihi2-fixed", "reference-fixed": "loihi2-fixed"}

#: per neuron type: the NIR parameters a deployed neuron keeps (a zero-valued leak or reset needs no storage)
#: and its state variables per neuron
NEURON_STORAGE: dict[type, tuple[tuple[str, ...], int]] = {
    nir.LIF: (("tau", "r", "v_leak", "v_threshold", "v_reset"), 1),
    nir.IF: (("r", "v_threshold", "v_reset"), 1),
    nir.LI: (("tau", "r", "v_leak"), 1),
    nir.CubaLIF: (("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"), 2),
    nir.CubaLI: (("tau_syn", "tau_mem", "r", "v_leak", "w_in"), 2),
}


def precision_of(target: str, options: dict[str, Any] | None = None) -> tuple[str, dict[str, int]]:
    """The precision name and bytes per value of ``target`` (options may change it: ``precision``, ``quantize``)."""
    options = options or {}
    name = TARGET_PRECISION.get(target, "float32")
    if target == "lava":
        name = "loihi2-fixed" if options.get("precision") == "fixed" else "float64"
    if target == "onnx" and options.get("quantize") == "int8":
        name = "int8"
    b = dict(PRECISION_BYTES[name])
    if name == "loihi2-fixed" and int(options.get("weight_bits") or 8) > 8:
        b["weight"] = 2
    return name, b


# ---------------------------------------------------------------------------------------- static metrics
def _weighted(graph: nir.NIRGraph) -> dict[str, Any]:
    return {k: v for k, v in graph.nodes.items() if node_is(v, weighted=True)}


def connection_sparsity(graph: nir.NIRGraph) -> float:
    """Zero weights / all weights of the weighted nodes, rounded to 4 decimals (NeuroBench's rounding)."""
    zeros = total = 0
    for node in _weighted(graph).values():
        w = np.asarray(node.weight)
        zeros += int((w == 0).sum())
        total += int(w.size)
    return round(zeros / total, 4) if total else 0.0


def _stored_values(node: Any, size: int) -> int:
    """Values a neuron node keeps: each parameter once when uniform over the layer, per neuron otherwise."""
    names, _ = NEURON_STORAGE.get(type(node), ((), 1))
    count = 0
    for p in names:
        a = getattr(node, p, None)
        if a is None:
            continue
        a = np.asarray(a, dtype=np.float64)
        if p in ("v_leak", "v_reset") and not np.any(a):
            continue
        count += 1 if a.size <= 1 or np.all(a == a.flat[0]) else size
    return count


def footprint(graph: nir.NIRGraph, shapes: dict[str, tuple[int, ...]], bytes_per: dict[str, int]) -> dict[str, int]:
    """Bytes of weights, biases, neuron constants and neuron state (one sample), and their sum ``footprint``."""
    weights = biases = constants = state = 0
    for node in _weighted(graph).values():
        weights += int(np.asarray(node.weight).size)
        b = getattr(node, "bias", None)
        biases += 0 if b is None else int(np.asarray(b).size)
    for name, node in graph.nodes.items():
        if node_is(node, role="neuron"):
            size = int(np.prod(shapes[name]))
            constants += _stored_values(node, size)
            state += size * NEURON_STORAGE.get(type(node), ((), 1))[1]
    out = {"weights": weights * bytes_per["weight"], "biases": biases * bytes_per["bias"],
           "neuron_constants": constants * bytes_per["neuron"], "neuron_state": state * bytes_per["state"]}
    out["footprint"] = sum(out.values())
    return out


# ---------------------------------------------------------------------------------------- workload metrics
Apply = Callable[[Any, str, Any, Any], Any]  # (node, name, x [N, *in], weight override or None) -> [N, *out]


def _apply_linear(node: Any, name: str, x: Any, w: Any) -> Any:
    import torch.nn.functional as F

    return F.linear(x, w)


def _apply_conv(node: Any, name: str, x: Any, w: Any) -> Any:
    import torch.nn.functional as F

    from neuromoco.deploy.graph import conv_geometry

    g = conv_geometry(node, name)
    xp = F.pad(x, [p for pair in reversed(g["padding"]) for p in pair])
    conv = F.conv1d if g["nd"] == 1 else F.conv2d
    return conv(xp, w, None, g["stride"], 0, g["dilation"], g["groups"])


def _apply_pool(node: Any, name: str, x: Any, w: Any) -> Any:
    import torch.nn.functional as F

    from neuromoco.deploy.graph import pool_geometry

    g = pool_geometry(node, name)
    div = 1 if type(node) is nir.SumPool2d else None
    return F.avg_pool2d(x, g["kernel"], g["stride"], g["padding"], count_include_pad=True, divisor_override=div)


def _apply_scale(node: Any, name: str, x: Any, w: Any) -> Any:
    import torch

    return x * torch.as_tensor(np.asarray(node.scale), dtype=x.dtype)


#: how the value reaching a weighted node is computed from a source's activity, per node type on the way
#: (a weighted node in the way applies its real weights and bias); a type not here only reshapes
APPLY: dict[type, Apply] = {
    nir.Affine: _apply_linear, nir.Linear: _apply_linear, nir.Conv1d: _apply_conv, nir.Conv2d: _apply_conv,
    nir.SumPool2d: _apply_pool, nir.AvgPool2d: _apply_pool, nir.Scale: _apply_scale,
}


def _real(node: Any, name: str, x: Any) -> Any:
    import torch

    rule = APPLY.get(type(node))
    if rule is None:
        return x
    if node_is(node, weighted=True):
        y = rule(node, name, x, torch.as_tensor(np.asarray(node.weight), dtype=x.dtype))
        b = getattr(node, "bias", None)
        if b is not None:
            bt = torch.as_tensor(np.asarray(b), dtype=x.dtype)
            y = y + bt.reshape(-1, *([1] * (y.ndim - 2)))
        return y
    return rule(node, name, x, None)


def _fanout(node: Any, name: str, in_shape: tuple[int, ...], binary: bool) -> np.ndarray:
    """Per input position of one weighted node: synapses reached (all, or only non-zero weights)."""
    import torch

    w = np.asarray(node.weight)
    wt = torch.as_tensor((w != 0) if binary else np.ones_like(w), dtype=torch.float64)
    x = torch.ones((1, *in_shape), dtype=torch.float64, requires_grad=True)
    APPLY[type(node)](node, name, x, wt).sum().backward()
    return np.rint(x.grad[0].numpy()).astype(np.int64)


class NeuroBenchCounter:
    """NeuroBench's workload metrics accumulated over the batches of a run (see the module docstring).

    Each :meth:`update` is one batch; a forward call is one of its time steps, as in NeuroBench, so the
    AC / MAC decision per call matches NeuroBench's when both see the same batches.
    """

    def __init__(self, graph: nir.NIRGraph, input_shape: list[int] | None = None) -> None:
        from neuromoco.deploy.energy import synaptic_layers
        from neuromoco.deploy.graph import node_io_shapes

        self.graph = graph
        io = node_io_shapes(graph, input_shape)
        self.shapes = {k: tuple(v[1]) for k, v in io.items()}
        self.inputs: dict[str, list[tuple[str, tuple[str, ...]]]] = {}  # weighted node -> (source, path)
        for layer in synaptic_layers(graph, input_shape, self.shapes):
            for i, op in enumerate(layer.ops):
                if node_is(graph.nodes[op], weighted=True):
                    paths = self.inputs.setdefault(op, [])
                    if (layer.source, tuple(layer.ops[:i])) not in paths:
                        paths.append((layer.source, tuple(layer.ops[:i])))
        self.in_shapes = {w: tuple(io[w][0]) for w in self.inputs}
        self.fan_nz = {w: _fanout(graph.nodes[w], w, self.in_shapes[w], True) for w in self.inputs}
        self.fan_all = {w: int(_fanout(graph.nodes[w], w, self.in_shapes[w], False).sum()) for w in self.inputs}
        self.spiking = [k for k, v in graph.nodes.items() if node_is(v, role="neuron", spiking=True)]
        self.neurons = {k: int(np.prod(self.shapes[k])) for k, v in graph.nodes.items() if node_is(v, role="neuron")}
        self.samples = self.steps = 0
        self.ops = {w: {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0} for w in self.inputs}
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
                    note = f"{w}: the spikes of {src!r} are not recorded per neuron; its synaptic operations are not counted"
                    if note not in self.notes:
                        self.notes.append(note)
                    continue
                y = torch.as_tensor(a.reshape(T * B, *a.shape[2:]))
                for op in path:
                    y = _real(self.graph.nodes[op], op, y).reshape(T * B, *self.shapes[op])
                x = y if x is None else x + y
            if x is None:
                continue
            x = x.reshape(T, B, -1).numpy()
            fan = self.fan_nz[w].reshape(-1)
            for t in range(T):
                xt = x[t]
                spiking = bool(np.all((xt == 0) | (xt == 1) | (xt == -1)))
                eff = int(((xt != 0) * fan).sum())
                self.ops[w]["Effective_ACs" if spiking else "Effective_MACs"] += eff
                self.ops[w]["Dense"] += self.fan_all[w] * B

    def result(self) -> dict[str, Any]:
        """The workload metrics per sample, NeuroBench's names as keys, and the per-layer parts."""
        n = max(self.samples, 1)
        total = {key: sum(o[key] for o in self.ops.values()) / n for key in ("Effective_MACs", "Effective_ACs", "Dense")}
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

