"""Build one time step of a NIR graph as an ONNX graph, with every neuron's state as explicit inputs/outputs.

The step graph (the form streaming runtimes need) has

* inputs: ``input`` — the frame at step t, ``[B, *input_shape]``; and per neuron node ``state/<node>/v``
  (plus ``state/<node>/i`` for CubaLIF / CubaLI), and per delayed (recurrent) edge source
  ``delay/<node>`` — that node's output at step t-1;
* outputs: ``output`` — the output node at step t flattened to ``[B, n_out]``; the matching
  ``new_state/...`` and ``new_delay/...`` tensors; per spiking node ``spike_count/<node>`` (int64 ``[B]``)
  and, optionally, ``spikes/<node>`` (uint8 ``[B, *shape]``).

Arithmetic follows ``deploy/semantics.py`` exactly, op for op, in float32:

    CubaLIF / CubaLI   i = i + k_syn * (w_in * I - i)
    LIF / LI           v = v + k_mem * (r * I + v_leak - v)        (Norse's evaluation order)
    IF                 v = v + r * I
    spike              s = v > v_th (Greater) ;  v = Where(s, v_reset, v)

with ``k = dt * float32(1/tau)`` (:func:`neuromoco.deploy.semantics.euler_gain`). A multiplication by a constant 1 or
an addition of a constant 0 is left out: both are exact in IEEE arithmetic, so nothing changes.

Synapses: Conv1d/Conv2d -> ``Conv``; Affine -> ``Gemm`` (``MatMul``+``Add`` above rank 2); Linear ->
``Gemm`` without bias; Scale -> ``Mul``; SumPool2d -> depthwise ``Conv`` with a kernel of ones (exact on
spikes); AvgPool2d -> the same followed by ``Div`` by the window area; Flatten -> ``Flatten``/``Reshape``
to the shape the graph checker inferred; Threshold -> ``Greater`` + ``Cast``. Several edges into one node
are summed in edge order. A cycle is cut at the edge that closes it: that edge carries its source's value
from the previous step (``delay/<node>`` state, zeros at t = 0).

The model carries a JSON description of its interface in ``metadata_props["neuromoco"]``
(:class:`StepSpec`), which the runner and the quantizer read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import nir
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from neuromoco.deploy.semantics import NEURON_TYPES, SPIKING_TYPES, discretize
from neuromoco.errors import UserError

DEFAULT_OPSET = 17
META_KEY = "neuromoco"
BATCH = "batch"

SYNAPSE_TYPES = (nir.Conv1d, nir.Conv2d, nir.Affine, nir.Linear, nir.Scale, nir.SumPool2d, nir.AvgPool2d,
                 nir.Flatten, nir.Threshold)
SUPPORTED = ", ".join(sorted({t.__name__ for t in (nir.Input, nir.Output, *SYNAPSE_TYPES, *NEURON_TYPES)}))


@dataclass
class StateSpec:
    """One state tensor carried from step to step."""

    node: str  # NIR node name
    var: str  # "v", "i" or "delay"
    input: str  # graph input name (value at t-1)
    output: str  # graph output name (value at t)
    shape: list[int]  # without the batch dimension
    init: float = 0.0  # value at t = 0 (every element)


@dataclass
class StepSpec:
    """The step graph's interface: what the runner feeds and reads."""

    input: str
    input_shape: list[int]
    output: str
    n_out: int
    dt: float
    opset: int
    states: list[StateSpec] = field(default_factory=list)
    spike_counts: dict[str, str] = field(default_factory=dict)  # NIR node -> output name
    spike_tensors: dict[str, str] = field(default_factory=dict)  # NIR node -> output name (optional)
    spiking_nodes: list[str] = field(default_factory=list)
    neuron_nodes: list[str] = field(default_factory=list)  # ONNX node names of neuron arithmetic
    pooling_nodes: list[str] = field(default_factory=list)  # ONNX Conv nodes that implement pooling
    # tensors whose values lie on a known grid k / d, k = 0..u (spikes: d=1, u=1): tensor -> [d, u]
    grid_tensors: dict[str, list[int]] = field(default_factory=dict)
    delayed_edges: list[list[str]] = field(default_factory=list)
    quantization: dict[str, Any] = field(default_factory=dict)  # filled by the int8 quantizer
    mode: str = "step"  # "step": one time step per call; "sequence": the whole sequence (frames [T, B, ...])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> StepSpec:
        data = json.loads(text)
        data["states"] = [StateSpec(**s) for s in data.get("states", [])]
        return StepSpec(**data)

    @staticmethod
    def of(model: onnx.ModelProto) -> StepSpec:
        for prop in model.metadata_props:
            if prop.key == META_KEY:
                return StepSpec.from_json(prop.value)
        raise UserError("this ONNX model was not written by `deploy export --target onnx` (no step metadata)")

    def attach(self, model: onnx.ModelProto) -> None:
        kept = [p for p in model.metadata_props if p.key != META_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        model.metadata_props.add(key=META_KEY, value=self.to_json())


def _conv_out(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
              pads: tuple[int, ...], dilation: tuple[int, ...]) -> list[int]:
    n = len(size)
    return [(size[d] + pads[d] + pads[d + n] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1
            for d in range(n)]


# ----------------------------------------------------------------------------------------------- builder

class _Builder:
    def __init__(self, graph: nir.NIRGraph, dt: float, opset: int, spike_tensors: bool,
                 input_shape: list[int] | None = None) -> None:
        self.graph, self.dt, self.opset, self.want_spikes = graph, float(dt), opset, spike_tensors
        self.input_shape = input_shape
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.value: dict[str, str] = {}  # NIR node -> ONNX tensor holding its output at step t
        self.shape: dict[str, list[int]] = {}  # NIR node -> output shape without batch
        self.inferred: dict[str, list[int]] = {}
        self._n = 0
        self.spec: StepSpec | None = None
        self.neuron_ops: list[str] = []
        self.pool_ops: list[str] = []
        self.grid: dict[str, tuple[int, int]] = {}  # tensor -> (d, u): values k / d, k = 0..u (spikes: 1, 1)

    # -- small helpers
    def _name(self, base: str) -> str:
        self._n += 1
        return f"{base}#{self._n}"

    def const(self, base: str, array: np.ndarray, dtype: type = np.float32) -> str:
        name = self._name(f"{base}")
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(array, dtype=dtype)), name))
        return name

    def param(self, base: str, array: np.ndarray) -> str:
        """A float32 constant, stored as a scalar when all its elements are equal (broadcasts the same)."""
        a = np.asarray(array, dtype=np.float32)
        if a.size and np.all(a == a.reshape(-1)[0]):
            a = a.reshape(-1)[0]
        return self.const(base, a)

    def op(self, op_type: str, inputs: list[str], owner: str, out: str | None = None, neuron: bool = False,
           **attrs: Any) -> str:
        name = self._name(f"{owner}/{op_type}")
        out = out or name + ":0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        if neuron:
            self.neuron_ops.append(name)
        return out

    def graph_input(self, name: str, shape: list[int]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape]))
        return name

    def graph_output(self, name: str, elem: int, shape: list[int | str]) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))

    # -- the build
    def build(self) -> tuple[onnx.ModelProto, StepSpec]:
        from neuromoco.deploy.graph import node_io_shapes, normalize_graph, structure

        graph = self.graph = normalize_graph(self.graph)
        for name, node in graph.nodes.items():
            if not isinstance(node, (nir.Input, nir.Output, *SYNAPSE_TYPES, *NEURON_TYPES)):
                raise UserError(f"node {name!r} of type {type(node).__name__} has no ONNX mapping "
                                f"(supported: {SUPPORTED})")
        st = structure(graph)
        io = node_io_shapes(graph, self.input_shape)
        self.inferred = {n: list(v[1]) for n, v in io.items()}
        in_shape = list(io[st.input][1])
        self.spec = StepSpec(input="input", input_shape=in_shape, output="output", n_out=0, dt=self.dt,
                             opset=self.opset, delayed_edges=[list(e) for e in st.recurrent])
        delayed: dict[str, str] = {}  # source node -> graph input holding its output of the previous step
        for src, _ in st.recurrent:
            if src not in delayed:
                shp = self.inferred[src]
                delayed[src] = self.graph_input(f"delay/{src}", shp)
                self.spec.states.append(StateSpec(src, "delay", f"delay/{src}", f"new_delay/{src}", shp))
        for name in st.order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                self.value[name] = self.graph_input("input", in_shape)
                self.shape[name] = in_shape
                continue
            srcs = [(delayed[p], self.inferred[p]) if rec else (self.value[p], self.shape[p])
                    for p, rec in st.preds[name]]  # file order: the order the reference adds them
            x, xshape = self._sum(name, srcs)
            if isinstance(node, nir.Output):
                n_out = int(np.prod(xshape)) if xshape else 1
                self.op("Flatten", [x], name, out="output", axis=1)
                self.graph_output("output", TensorProto.FLOAT, [BATCH, n_out])
                self.spec.n_out = n_out
                self.value[name], self.shape[name] = "output", [n_out]
                continue
            y, yshape = self.node(name, node, x, xshape)
            self.value[name], self.shape[name] = y, list(yshape)
            if list(yshape) != self.inferred[name]:  # pragma: no cover - the two inferences must agree
                raise UserError(f"node {name!r}: the ONNX build computes output shape {yshape} but the graph "
                                f"checker inferred {self.inferred[name]}")
        for p in delayed:
            if self.value[p] in self.grid:
                self.grid[f"delay/{p}"] = self.grid[self.value[p]]
            self.op("Identity", [self.value[p]], p, out=f"new_delay/{p}")
            self.graph_output(f"new_delay/{p}", TensorProto.FLOAT, [BATCH, *self.shape[p]])
        self._private_synapse_inputs()
        self.spec.neuron_nodes = list(self.neuron_ops)
        self.spec.pooling_nodes = list(self.pool_ops)
        self.spec.grid_tensors = {k: list(v) for k, v in self.grid.items()}
        g = helper.make_graph(self.nodes, "snn_step", self.inputs, self.outputs, self.inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="neuromoco-deploy")
        model.ir_version = min(model.ir_version, 8 if self.opset <= 17 else 9)
        self.spec.attach(model)
        return model, self.spec

    def _private_synapse_inputs(self) -> None:
        """Give every synapse (Conv/Gemm/MatMul, not pooling) an input tensor of its own.

        A quantizer rewrites a tensor for all its readers; with its own ``Identity`` copy (free at run
        time: onnxruntime removes it) a synapse's input can be quantized while the spike counts, the
        delayed states and the other readers keep the exact float tensor.
        """
        readers: dict[str, int] = {}
        for n in self.nodes:
            for i in n.input:
                readers[i] = readers.get(i, 0) + 1
        outputs = {o.name for o in self.outputs}
        nodes: list[onnx.NodeProto] = []
        for n in self.nodes:
            x = n.input[0] if n.input else None
            if n.op_type in ("Conv", "Gemm", "MatMul") and n.name not in self.pool_ops and \
                    (readers.get(x, 0) > 1 or x in outputs):
                owner = n.name.split("/")[0]
                copy = self._name(f"{owner}/Identity")
                nodes.append(helper.make_node("Identity", [x], [copy + ":0"], name=copy))
                n.input[0] = copy + ":0"
                if x in self.grid:
                    self.grid[copy + ":0"] = self.grid[x]
            nodes.append(n)
        self.nodes = nodes

    def _sum(self, owner: str, srcs: list[tuple[str, list[int]]]) -> tuple[str, list[int]]:
        x, shape = srcs[0]
        for y, yshape in srcs[1:]:
            if yshape != shape:
                raise UserError(f"node {owner!r}: inputs of shapes {shape} and {yshape} cannot be summed")
            gx, gy = self.grid.get(x), self.grid.get(y)
            x = self.op("Add", [x, y], owner)
            if gx and gy and gx[0] == gy[0]:
                self.grid[x] = (gx[0], gx[1] + gy[1])
        return x, shape

    # -- one NIR node
    def node(self, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
        if isinstance(node, (nir.Conv1d, nir.Conv2d)):
            return self.conv(name, node, x, xs)
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            return self.pool(name, node, x, xs)
        if isinstance(node, (nir.Affine, nir.Linear)):
            return self.dense(name, node, x, xs)
        if isinstance(node, nir.Scale):
            return self.op("Mul", [x, self.const(f"{name}/scale", node.scale)], name), xs
        if isinstance(node, nir.Flatten):
            return self.flatten(name, node, x, xs)
        if isinstance(node, nir.Threshold):
            g = self.op("Greater", [x, self.param(f"{name}/threshold", node.threshold)], name)
            y = self.op("Cast", [g], name, to=TensorProto.FLOAT)
            self.grid[y] = (1, 1)
            return y, xs
        if isinstance(node, NEURON_TYPES):
            return self.neuron(name, node, x, xs)
        raise UserError(f"node {name!r} of type {type(node).__name__} has no ONNX mapping")  # pragma: no cover

    def conv(self, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
        from neuromoco.deploy.graph import conv_geometry

        g = conv_geometry(node, name)
        w = np.asarray(node.weight, dtype=np.float32)
        kernel, stride, dil, groups = g["kernel"], g["stride"], g["dilation"], g["groups"]
        pads = tuple(b for b, _ in g["padding"]) + tuple(e for _, e in g["padding"])
        ins = [x, self.const(f"{name}/weight", w)]
        bias = getattr(node, "bias", None)
        if bias is not None and np.any(np.asarray(bias, dtype=np.float64)):  # a zero bias adds nothing
            ins.append(self.const(f"{name}/bias", np.broadcast_to(np.asarray(bias, np.float32), (w.shape[0],))))
        y = self.op("Conv", ins, name, kernel_shape=list(kernel), strides=list(stride), pads=list(pads),
                    dilations=list(dil), group=groups)
        return y, [int(w.shape[0]), *_conv_out(tuple(xs[1:]), kernel, stride, pads, dil)]

    def pool(self, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
        from neuromoco.deploy.graph import pool_geometry

        g = pool_geometry(node, name)
        kernel, stride, pads = g["kernel"], g["stride"], tuple(g["padding"]) * 2
        c = xs[0]
        w = np.ones((c, 1, *kernel), dtype=np.float32)
        y = self.op("Conv", [x, self.const(f"{name}/ones", w)], name, kernel_shape=list(kernel),
                    strides=list(stride), pads=list(pads), dilations=[1, 1], group=c)
        self.pool_ops.append(self.nodes[-1].name)
        area = kernel[0] * kernel[1]
        if x in self.grid:
            self.grid[y] = (self.grid[x][0], self.grid[x][1] * area)
        if isinstance(node, nir.AvgPool2d):
            s = y
            y = self.op("Div", [s, self.const(f"{name}/area", np.float32(area))], name)
            if s in self.grid:
                self.grid[y] = (self.grid[s][0] * area, self.grid[s][1])
        return y, [c, *_conv_out(tuple(xs[1:]), kernel, stride, pads, (1, 1))]

    def dense(self, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
        w = np.asarray(node.weight, dtype=np.float32)
        if w.ndim != 2 or xs[-1] != w.shape[1]:
            raise UserError(f"node {name!r}: weight {list(w.shape)} does not fit an input of shape {xs}")
        bias = getattr(node, "bias", None)
        b = None if bias is None or not np.any(np.asarray(bias, dtype=np.float64)) else \
            np.broadcast_to(np.asarray(bias, np.float32), (w.shape[0],))
        if len(xs) == 1:
            ins = [x, self.const(f"{name}/weight", w)]
            if b is not None:
                ins.append(self.const(f"{name}/bias", b))
            y = self.op("Gemm", ins, name, transB=1)
        else:
            y = self.op("MatMul", [x, self.const(f"{name}/weight_t", w.T)], name)
            if b is not None:
                y = self.op("Add", [y, self.const(f"{name}/bias", b)], name)
        return y, [*xs[:-1], int(w.shape[0])]

    def flatten(self, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
        out = self.inferred[name]  # NIR's convention (dims without the batch), as neuromoco.deploy.graph infers it
        out = [int(v) for v in out]
        if len(out) == 1:
            y = self.op("Flatten", [x], name, axis=1)
        else:
            shape = self.const(f"{name}/shape", np.array([0, *out], dtype=np.int64), np.int64)
            y = self.op("Reshape", [x, shape], name)
        if x in self.grid:
            self.grid[y] = self.grid[x]
        return y, out

    def neuron(self, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
        n = discretize(node, self.dt)
        shape = list(self.inferred.get(name, xs))  # parameters broadcast to the input (neuromoco.deploy.graph)
        f32 = np.float32

        def p(label: str, arr: np.ndarray) -> str:
            a = np.asarray(arr, dtype=f32)
            if a.size > 1:
                a = a.reshape(shape) if a.size == int(np.prod(shape)) else np.broadcast_to(a, shape)
            return self.param(f"{name}/{label}", a)

        def is_const(arr: np.ndarray, value: float) -> bool:
            return bool(np.all(np.asarray(arr, dtype=f32) == f32(value)))

        def state(var: str) -> str:
            init = 0.0
            self.spec.states.append(StateSpec(name, var, f"state/{name}/{var}", f"new_state/{name}/{var}",
                                              shape, init))
            return self.graph_input(f"state/{name}/{var}", shape)

        cur = x
        if n.has_current:  # i = i + k_syn * (w_in * I - i)
            i_old = state("i")
            a = cur if is_const(n.w_in, 1.0) else self.op("Mul", [p("w_in", n.w_in), cur], name, neuron=True)
            a = self.op("Sub", [a, i_old], name, neuron=True)
            a = self.op("Mul", [p("k_syn", n.k_syn(f32)), a], name, neuron=True)
            cur = self.op("Add", [i_old, a], name, out=f"new_state/{name}/i", neuron=True)
            self.graph_output(cur, TensorProto.FLOAT, [BATCH, *shape])
        v_old = state("v")
        a = cur if is_const(n.r, 1.0) else self.op("Mul", [p("r", n.r), cur], name, neuron=True)
        if n.kind == "IF":  # v = v + r * I
            v = self.op("Add", [v_old, a], name, neuron=True)
        else:  # v = v + k * (r * I + v_leak - v)
            if not is_const(n.v_leak, 0.0):
                a = self.op("Add", [a, p("v_leak", n.v_leak)], name, neuron=True)
            a = self.op("Sub", [a, v_old], name, neuron=True)
            a = self.op("Mul", [p("k_mem", n.k_mem(f32)), a], name, neuron=True)
            v = self.op("Add", [v_old, a], name, neuron=True)
        v_out = f"new_state/{name}/v"
        if not n.spiking:
            self.op("Identity", [v], name, out=v_out, neuron=True)
            self.graph_output(v_out, TensorProto.FLOAT, [BATCH, *shape])
            return v, shape
        s = self.op("Greater", [v, p("v_threshold", n.v_threshold)], name, neuron=True)
        self.op("Where", [s, p("v_reset", n.v_reset), v], name, out=v_out, neuron=True)
        self.graph_output(v_out, TensorProto.FLOAT, [BATCH, *shape])
        z = self.op("Cast", [s], name, to=TensorProto.FLOAT, neuron=True)
        self.grid[z] = (1, 1)
        axes = self.const(f"{name}/axes", np.arange(1, len(shape) + 1, dtype=np.int64), np.int64)
        total = self.op("ReduceSum", [z, axes], name, keepdims=0, neuron=True)
        count = f"spike_count/{name}"
        self.op("Cast", [total], name, out=count, to=TensorProto.INT64, neuron=True)
        self.graph_output(count, TensorProto.INT64, [BATCH])
        self.spec.spike_counts[name] = count
        self.spec.spiking_nodes.append(name)
        if self.want_spikes:
            out = f"spikes/{name}"
            self.op("Cast", [s], name, out=out, to=TensorProto.UINT8, neuron=True)
            self.graph_output(out, TensorProto.UINT8, [BATCH, *shape])
            self.spec.spike_tensors[name] = out
        return z, shape


def build_step_model(graph: nir.NIRGraph, dt: float, opset: int = DEFAULT_OPSET, spike_tensors: bool = False,
                     input_shape: list[int] | None = None) -> tuple[onnx.ModelProto, StepSpec]:
    """The one-time-step ONNX model of ``graph`` (Euler step ``dt`` seconds) and its interface.

    Raises :class:`UserError` naming the node for anything the ONNX target cannot express.
    The model passes ``onnx.checker.check_model(full_check=True)`` (strict shape inference).
    """
    if opset < 13:
        raise UserError(f"opset {opset} is too old for the ONNX target; use 13 or newer (default "
                        f"{DEFAULT_OPSET})")
    model, spec = _Builder(graph, dt, opset, spike_tensors, input_shape).build()
    check_model(model)
    return model, spec


def check_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.checker`` plus strict shape inference; returns the model with inferred value infos."""
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def spiking_node_names(graph: nir.NIRGraph) -> list[str]:
    return [n for n, v in graph.nodes.items() if isinstance(v, SPIKING_TYPES)]
