"""The ONNX step graph under construction, shared by the builder and every node emitter.

:class:`StepGraph` holds the nodes, constants, graph inputs and outputs written so far, the interface
(:class:`~.spec.StepSpec`) they add up to, and what the int8 quantizer needs to know of them: which ONNX
nodes are neuron arithmetic or pooling, and which tensors hold values on a known grid (spikes, sums of
spikes). Node and constant names get a running number, so the same graph always gives the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nir
import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import TensorProto, helper, numpy_helper

from neuromoco.deploy.targets.onnx.spec import StepSpec

BATCH = "batch"


class StepGraph:
    """ONNX nodes, constants and interface of one time step, with the helpers emitters write through."""

    def __init__(self, spec: StepSpec, inferred: dict[str, list[int]], spike_tensors: bool) -> None:
        self.spec = spec
        self.inferred = inferred  # NIR node -> output shape without batch (neuromoco.deploy.graph)
        self.want_spikes = spike_tensors
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.neuron_ops: list[str] = []
        self.pool_ops: list[str] = []
        self.grid: dict[str, tuple[int, int]] = {}  # tensor -> (d, u): values k / d, k = 0..u (spikes: 1, 1)
        self._n = 0

    def name(self, base: str) -> str:
        """``base`` made unique with the running number."""
        self._n += 1
        return f"{base}#{self._n}"

    def const(self, base: str, array: ArrayLike, dtype: type = np.float32) -> str:
        name = self.name(base)
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
        """Append one ONNX node of NIR node ``owner``; returns its output tensor (``out`` or a fresh name)."""
        name = self.name(f"{owner}/{op_type}")
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

    def model(self) -> onnx.ModelProto:
        """The finished model, with the interface (and what the quantizer reads) in its metadata."""
        self._private_synapse_inputs()
        self.spec.neuron_nodes = list(self.neuron_ops)
        self.spec.pooling_nodes = list(self.pool_ops)
        self.spec.grid_tensors = {k: list(v) for k, v in self.grid.items()}
        g = helper.make_graph(self.nodes, "snn_step", self.inputs, self.outputs, self.inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.spec.opset)],
                                  producer_name="neuromoco-deploy")
        model.ir_version = min(model.ir_version, 8 if self.spec.opset <= 17 else 9)
        self.spec.attach(model)
        return model

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
            if x is not None and n.op_type in ("Conv", "Gemm", "MatMul") and n.name not in self.pool_ops and \
                    (readers.get(x, 0) > 1 or x in outputs):
                owner = n.name.split("/")[0]
                copy = self.name(f"{owner}/Identity")
                nodes.append(helper.make_node("Identity", [x], [copy + ":0"], name=copy))
                n.input[0] = copy + ":0"
                if x in self.grid:
                    self.grid[copy + ":0"] = self.grid[x]
            nodes.append(n)
        self.nodes = nodes


# One NIR node into the step graph: (graph, node name, node, input tensor, input shape without batch)
# -> (output tensor, output shape without batch).
Emitter = Callable[[StepGraph, str, nir.NIRNode, str, list[int]], tuple[str, list[int]]]
