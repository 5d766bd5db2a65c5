"""Neuron emitters (LIF, IF, LI, CubaLIF, CubaLI): ``deploy/semantics.py`` op for op, in float32.

    CubaLIF / CubaLI   i = i + k_syn * (w_in * I - i)
    LIF / LI           v = v + k_mem * (r * I + v_leak - v)        (Norse's evaluation order)
    IF                 v = v + r * I
    spike              s = v > v_th (Greater) ;  v = Where(s, v_reset, v)

with ``k = dt * float32(1/tau)`` (:func:`neuromoco.deploy.semantics.euler_gain`). A multiplication by a
constant 1 or an addition of a constant 0 is left out: both are exact in IEEE arithmetic. Each neuron's
states become graph inputs ``state/<node>/<var>`` and outputs ``new_state/<node>/<var>``; a spiking one
also outputs ``spike_count/<node>`` (and, when asked, ``spikes/<node>``). Every ONNX node written here is
listed as neuron arithmetic, which int8 leaves in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
from onnx import TensorProto

from neuromoco.deploy.nodes import NODES
from neuromoco.deploy.semantics import DiscreteNeuron, discretize
from neuromoco.deploy.targets.onnx.spec import StateSpec
from neuromoco.deploy.targets.onnx.step import BATCH, Emitter, StepGraph

F32 = np.float32


def _is(arr: np.ndarray, value: float) -> bool:
    """Every element equals ``value`` in float32 (the term can then be left out exactly)."""
    return bool(np.all(np.asarray(arr, dtype=F32) == F32(value)))


@dataclass
class _Layer:
    """One neuron node being written: its ops, parameters and states all carry its name and shape."""

    g: StepGraph
    name: str
    shape: list[int]

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: object) -> str:
        return self.g.op(op_type, inputs, self.name, out=out, neuron=True, **attrs)

    def param(self, label: str, arr: np.ndarray) -> str:
        """A parameter broadcast to the layer (Sinabs/Rockpool write scalar or flat parameters)."""
        a = np.asarray(arr, dtype=F32)
        if a.size > 1:
            fits = a.size == int(np.prod(self.shape))
            a = a.reshape(self.shape) if fits else np.broadcast_to(a, self.shape)
        return self.g.param(f"{self.name}/{label}", a)

    def state(self, var: str) -> str:
        """Declare state ``var`` (zero at t = 0); returns the graph input holding its value at t-1."""
        inp = f"state/{self.name}/{var}"
        out = f"new_state/{self.name}/{var}"
        self.g.spec.states.append(StateSpec(self.name, var, inp, out, self.shape, 0.0))
        return self.g.graph_input(inp, self.shape)

    def output(self, tensor: str, elem: int = TensorProto.FLOAT) -> None:
        self.g.graph_output(tensor, elem, [BATCH, *self.shape])


def _current(layer: _Layer, n: DiscreteNeuron, x: str) -> str:
    """i = i + k_syn * (w_in * I - i); returns the new current (graph output ``new_state/<node>/i``)."""
    k_syn = n.k_syn(F32)
    if n.w_in is None or k_syn is None:
        raise ValueError(f"node {layer.name!r}: a neuron with a synaptic current needs tau_syn and w_in")
    i_old = layer.state("i")
    a = x if _is(n.w_in, 1.0) else layer.op("Mul", [layer.param("w_in", n.w_in), x])
    a = layer.op("Sub", [a, i_old])
    a = layer.op("Mul", [layer.param("k_syn", k_syn), a])
    i_new = layer.op("Add", [i_old, a], out=f"new_state/{layer.name}/i")
    layer.output(i_new)
    return i_new


def _membrane(layer: _Layer, n: DiscreteNeuron, cur: str, leak: bool) -> str:
    """v = v + r * I (IF) or v = v + k_mem * (r * I + v_leak - v); returns v before any reset."""
    v_old = layer.state("v")
    a = cur if _is(n.r, 1.0) else layer.op("Mul", [layer.param("r", n.r), cur])
    if not leak:
        return layer.op("Add", [v_old, a])
    if not _is(n.v_leak, 0.0):
        a = layer.op("Add", [a, layer.param("v_leak", n.v_leak)])
    a = layer.op("Sub", [a, v_old])
    a = layer.op("Mul", [layer.param("k_mem", n.k_mem(F32)), a])
    return layer.op("Add", [v_old, a])


def _spike(layer: _Layer, n: DiscreteNeuron, v: str) -> str:
    """Threshold, reset and the spike outputs; returns the 0/1 float spikes."""
    g, name = layer.g, layer.name
    if n.v_threshold is None:
        raise ValueError(f"node {name!r}: a non-spiking neuron has no threshold to spike at")
    s = layer.op("Greater", [v, layer.param("v_threshold", n.v_threshold)])
    layer.op("Where", [s, layer.param("v_reset", n.v_reset), v], out=f"new_state/{name}/v")
    layer.output(f"new_state/{name}/v")
    z = layer.op("Cast", [s], to=TensorProto.FLOAT)
    g.grid[z] = (1, 1)
    axes = g.const(f"{name}/axes", np.arange(1, len(layer.shape) + 1, dtype=np.int64), np.int64)
    total = layer.op("ReduceSum", [z, axes], keepdims=0)
    count = layer.op("Cast", [total], out=f"spike_count/{name}", to=TensorProto.INT64)
    g.graph_output(count, TensorProto.INT64, [BATCH])
    g.spec.spike_counts[name] = count
    g.spec.spiking_nodes.append(name)
    if g.want_spikes:
        out = layer.op("Cast", [s], out=f"spikes/{name}", to=TensorProto.UINT8)
        layer.output(out, TensorProto.UINT8)
        g.spec.spike_tensors[name] = out
    return z


def neuron(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    n = discretize(node, g.spec.dt)
    layer = _Layer(g, name, list(g.inferred.get(name, xs)))  # parameters broadcast to the inferred shape
    cur = _current(layer, n, x) if n.has_current else x
    v = _membrane(layer, n, cur, NODES[type(node)].leak)
    if n.spiking:
        return _spike(layer, n, v), layer.shape
    layer.op("Identity", [v], out=f"new_state/{name}/v")
    layer.output(f"new_state/{name}/v")
    return v, layer.shape


EMITTERS: dict[type, Emitter] = {t: neuron for t in (nir.LIF, nir.IF, nir.LI, nir.CubaLIF, nir.CubaLI)}
