"""The whole sequence as one ONNX graph (an option; the step graph is the default): a ``Scan`` over time.

The step graph becomes the body of an ONNX ``Scan`` whose state variables are the neuron states and whose
scan input is the frame sequence, so the arithmetic is the step graph's, op for op, and a quantized step
graph wraps the same way. Inputs: ``frames`` ``[T, B, *input_shape]`` (T and B dynamic). Outputs:
``output`` ``[T, B, n_out]``, ``spike_count/<node>`` ``[T, B]`` (and ``spikes/<node>`` when the step graph
has them), and the states after the last step as ``final_state/...``. States start at their initial value
(zero) inside the graph. One ``session.run`` per batch instead of one per step.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from neuromoco.deploy.targets.onnx.builder import check_model
from neuromoco.deploy.targets.onnx.spec import StepSpec

FRAMES = "frames"


def wrap_sequence(step: onnx.ModelProto) -> onnx.ModelProto:
    """A sequence model running ``step`` (a model written by the ONNX target) over all time steps."""
    spec = StepSpec.of(step)
    scan_outs = [spec.output, *spec.spike_counts.values(), *spec.spike_tensors.values()]
    nodes, inits, init_names = _initial_states(spec)
    final = [f"final_{s.output}" for s in spec.states]
    nodes.append(helper.make_node("Scan", [*init_names, FRAMES], [*final, *scan_outs], name="seq/Scan",
                                  body=_body(step, spec, scan_outs), num_scan_inputs=1))
    graph = helper.make_graph(nodes, "snn_sequence", _inputs(spec), _outputs(spec, final), inits)
    model = helper.make_model(graph, opset_imports=list(step.opset_import), producer_name=step.producer_name)
    model.ir_version = step.ir_version
    seq = StepSpec.from_json(spec.to_json())
    seq.mode = "sequence"
    seq.input = FRAMES
    seq.attach(model)
    check_model(model)
    return model


def _body(step: onnx.ModelProto, spec: StepSpec, scan_outs: list[str]) -> onnx.GraphProto:
    """The step graph as the Scan body: inputs states then frame, outputs new states then per-step outputs."""
    body = copy.deepcopy(step.graph)
    body.name = "snn_step_body"
    by_name = {i.name: i for i in body.input}
    outs = {o.name: o for o in body.output}
    state_in = [by_name[s.input] for s in spec.states]
    state_out = [outs[s.output] for s in spec.states]
    del body.input[:]
    body.input.extend([*state_in, by_name[spec.input]])
    del body.output[:]
    body.output.extend([*state_out, *(outs[n] for n in scan_outs)])
    return body


def _initial_states(spec: StepSpec) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[str]]:
    """Nodes that fill each state with its initial value at the batch size of ``frames``."""
    nodes, inits, names = [], [], []
    shape = "frames_shape"
    nodes.append(helper.make_node("Shape", [FRAMES], [shape], name="seq/Shape"))
    inits += [numpy_helper.from_array(np.array([1], np.int64), "seq/one"),
              numpy_helper.from_array(np.array([2], np.int64), "seq/two")]
    nodes.append(helper.make_node("Slice", [shape, "seq/one", "seq/two"], ["batch_dim"], name="seq/Slice"))
    for k, s in enumerate(spec.states):
        dims = f"seq/dims{k}"
        inits.append(numpy_helper.from_array(np.array(s.shape, np.int64), dims))
        nodes.append(helper.make_node("Concat", ["batch_dim", dims], [f"{dims}:full"], axis=0,
                                      name=f"seq/Concat{k}"))
        name = f"initial/{s.input}"
        nodes.append(helper.make_node("ConstantOfShape", [f"{dims}:full"], [name], name=f"seq/Init{k}",
                                      value=numpy_helper.from_array(np.array([s.init], np.float32))))
        names.append(name)
    return nodes, inits, names


def _inputs(spec: StepSpec) -> list[onnx.ValueInfoProto]:
    return [helper.make_tensor_value_info(FRAMES, TensorProto.FLOAT, ["time", "batch", *spec.input_shape])]


def _outputs(spec: StepSpec, final: list[str]) -> list[onnx.ValueInfoProto]:
    """Per-step outputs over time (output, spike counts, spike tensors), then the final states."""
    outputs = [helper.make_tensor_value_info(spec.output, TensorProto.FLOAT, ["time", "batch", spec.n_out])]
    outputs += [helper.make_tensor_value_info(n, TensorProto.INT64, ["time", "batch"])
                for n in spec.spike_counts.values()]
    shapes = {s.node: s.shape for s in spec.states if s.var == "v"}
    outputs += [helper.make_tensor_value_info(spec.spike_tensors[n], TensorProto.UINT8,
                                              ["time", "batch", *shapes[n]]) for n in spec.spike_tensors]
    outputs += [helper.make_tensor_value_info(f, TensorProto.FLOAT, ["batch", *s.shape])
                for f, s in zip(final, spec.states, strict=True)]
    return outputs
