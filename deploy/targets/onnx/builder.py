"""Build one time step of a NIR graph as an ONNX graph, with every neuron's state as explicit inputs/outputs.

The step graph (the form streaming runtimes need) has

* inputs: ``input`` — the frame at step t, ``[B, *input_shape]``; and per neuron node ``state/<node>/v``
  (plus ``state/<node>/i`` for CubaLIF / CubaLI), and per delayed (recurrent) edge source
  ``delay/<node>`` — that node's output at step t-1;
* outputs: ``output`` — the output node at step t flattened to ``[B, n_out]``; the matching
  ``new_state/...`` and ``new_delay/...`` tensors; per spiking node ``spike_count/<node>`` (int64 ``[B]``)
  and, optionally, ``spikes/<node>`` (uint8 ``[B, *shape]``).

This module walks the graph in execution order; each node kind has its emitter (:mod:`.synapses`,
:mod:`.pooling`, :mod:`.neurons`, :mod:`.elementwise`), looked up in :data:`EMITTERS` by NIR type.
Several edges into one node are summed in edge order. A cycle is cut at the edge that closes it: that edge
carries its source's value from the previous step (``delay/<node>`` state, zeros at t = 0).

The model carries a JSON description of its interface in ``metadata_props["neuromoco"]``
(:class:`~.spec.StepSpec`), which the runner and the quantizer read.
"""

from __future__ import annotations

import nir
import numpy as np
import onnx
from onnx import TensorProto

from neuromoco.deploy.nodes import facts, handler
from neuromoco.deploy.targets.onnx import elementwise, neurons, pooling, synapses
from neuromoco.deploy.targets.onnx.spec import DEFAULT_OPSET, StateSpec, StepSpec
from neuromoco.deploy.targets.onnx.step import BATCH, Emitter, StepGraph
from neuromoco.errors import UserError

EMITTERS: dict[type, Emitter] = {**synapses.EMITTERS, **pooling.EMITTERS, **neurons.EMITTERS,
                                 **elementwise.EMITTERS}
WHERE = "the ONNX target"

Value = tuple[str, list[int]]  # an ONNX tensor and its shape without the batch


def build_step_model(graph: nir.NIRGraph, dt: float, opset: int = DEFAULT_OPSET, spike_tensors: bool = False,
                     input_shape: list[int] | None = None) -> tuple[onnx.ModelProto, StepSpec]:
    """The one-time-step ONNX model of ``graph`` (Euler step ``dt`` seconds) and its interface.

    Raises :class:`UserError` naming the node for anything the ONNX target cannot express.
    The model passes ``onnx.checker.check_model(full_check=True)`` (strict shape inference).
    """
    if opset < 13:
        raise UserError(f"opset {opset} is too old for the ONNX target; use 13 or newer (default "
                        f"{DEFAULT_OPSET})")
    model, spec = _build(graph, float(dt), opset, spike_tensors, input_shape)
    check_model(model)
    return model, spec


def check_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.checker`` plus strict shape inference; returns the model with inferred value infos."""
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def _emitters(graph: nir.NIRGraph) -> dict[str, Emitter]:
    """Each node's emitter (inputs and outputs have none); a node the target cannot map is named first."""
    return {name: handler(EMITTERS, node, name, WHERE) for name, node in graph.nodes.items()
            if facts(node, name).role not in ("input", "output")}


def _build(graph: nir.NIRGraph, dt: float, opset: int, spike_tensors: bool,
           input_shape: list[int] | None) -> tuple[onnx.ModelProto, StepSpec]:
    from neuromoco.deploy.graph import node_io_shapes, normalize_graph, structure

    graph = normalize_graph(graph)
    emit = _emitters(graph)
    st = structure(graph)
    io = node_io_shapes(graph, input_shape)
    g = StepGraph(StepSpec(input="input", input_shape=list(io[st.input][1]), output="output", n_out=0, dt=dt,
                           opset=opset, delayed_edges=[list(e) for e in st.recurrent]),
                  {n: list(v[1]) for n, v in io.items()}, spike_tensors)
    delayed = _delay_inputs(g, [src for src, _ in st.recurrent])
    values: dict[str, Value] = {}  # NIR node -> its output at step t
    for name in st.order:
        node = graph.nodes[name]
        role = facts(node, name).role
        if role == "input":
            values[name] = (g.graph_input("input", g.spec.input_shape), g.spec.input_shape)
            continue
        # file order: the order the reference adds them
        x, xs = _sum(g, name, [delayed[p] if rec else values[p] for p, rec in st.preds[name]])
        if role == "output":
            values[name] = _output(g, name, x, xs)
        else:
            values[name] = _node(g, name, node, emit[name], x, xs)
    _delay_outputs(g, {p: values[p] for p in delayed})
    return g.model(), g.spec


def _node(g: StepGraph, name: str, node: nir.NIRNode, emit: Emitter, x: str, xs: list[int]) -> Value:
    y, yshape = emit(g, name, node, x, xs)
    if list(yshape) != g.inferred[name]:  # pragma: no cover - the two inferences must agree
        raise UserError(f"node {name!r}: the ONNX build computes output shape {yshape} but the graph "
                        f"checker inferred {g.inferred[name]}")
    return y, list(yshape)


def _output(g: StepGraph, name: str, x: str, xs: list[int]) -> Value:
    """The output node: its input flattened to ``[B, n_out]`` as graph output ``output``."""
    n_out = int(np.prod(xs)) if xs else 1
    g.op("Flatten", [x], name, out="output", axis=1)
    g.graph_output("output", TensorProto.FLOAT, [BATCH, n_out])
    g.spec.n_out = n_out
    return "output", [n_out]


def _sum(g: StepGraph, owner: str, srcs: list[Value]) -> Value:
    """The inputs of a node added in edge order (a sum of grids with one denominator stays on a grid)."""
    x, shape = srcs[0]
    for y, yshape in srcs[1:]:
        if yshape != shape:
            raise UserError(f"node {owner!r}: inputs of shapes {shape} and {yshape} cannot be summed")
        gx, gy = g.grid.get(x), g.grid.get(y)
        x = g.op("Add", [x, y], owner)
        if gx and gy and gx[0] == gy[0]:
            g.grid[x] = (gx[0], gx[1] + gy[1])
    return x, shape


def _delay_inputs(g: StepGraph, sources: list[str]) -> dict[str, Value]:
    """A graph input (and state) per delayed edge source, holding that node's output of the previous step."""
    delayed: dict[str, Value] = {}
    for src in sources:
        if src not in delayed:
            shape = g.inferred[src]
            delayed[src] = (g.graph_input(f"delay/{src}", shape), shape)
            g.spec.states.append(StateSpec(src, "delay", f"delay/{src}", f"new_delay/{src}", shape))
    return delayed


def _delay_outputs(g: StepGraph, sources: dict[str, Value]) -> None:
    """Each delayed source's output at step t, as graph output ``new_delay/<node>`` for the next step."""
    for p, (value, shape) in sources.items():
        if value in g.grid:
            g.grid[f"delay/{p}"] = g.grid[value]
        g.op("Identity", [value], p, out=f"new_delay/{p}")
        g.graph_output(f"new_delay/{p}", TensorProto.FLOAT, [BATCH, *shape])
