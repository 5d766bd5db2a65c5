"""The ONNX step graph: valid ONNX (checker, strict shape inference), its interface, and clear errors."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import onnx
import pytest
from test_onnx_graphs import DT, GRAPHS, convnet, cuba_rnn, lif

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.targets import get_target
from neuromoco.deploy.targets.onnx import FP32_NAME, TARGET, describe
from neuromoco.deploy.targets.onnx.builder import build_step_model
from neuromoco.deploy.targets.onnx.options import OnnxOptions
from neuromoco.deploy.targets.onnx.runner import OnnxRunner
from neuromoco.deploy.targets.onnx.spec import DEFAULT_OPSET, StepSpec
from neuromoco.errors import UserError


def card_for(frames: np.ndarray, dt: float = DT) -> ModelCard:
    return ModelCard(input_shape=list(frames.shape[2:]), time_steps=int(frames.shape[0]), dt=dt)


def test_registry_names_resolve_to_this_target():
    for name, quantize in (("onnx", "none"), ("onnx-int8", "int8")):
        target, options = get_target(name)
        assert target is TARGET and options == OnnxOptions(quantize=quantize)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_export_passes_checker_and_strict_shape_inference(name, tmp_path):
    g, dt, frames = GRAPHS[name]()
    path = TARGET.export(g, card_for(frames, dt), tmp_path)
    assert path == tmp_path / FP32_NAME
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    assert [o.domain for o in model.opset_import] == [""] and model.opset_import[0].version == DEFAULT_OPSET
    # every value the graph computes has a known type after inference
    assert len(inferred.graph.value_info) >= len({o for n in model.graph.node for o in n.output}) - len(
        model.graph.output)


def test_interface_states_in_and_out_spike_counts_dynamic_batch(tmp_path):
    g, dt, frames = cuba_rnn()
    path = TARGET.export(g, card_for(frames, dt), tmp_path, record_spikes=True)
    model = onnx.load(str(path))
    spec = StepSpec.of(model)
    ins = {i.name: i for i in model.graph.input}
    outs = {o.name: o for o in model.graph.output}
    assert set(ins) == {"input", "state/cuba/v", "state/cuba/i", "state/readout/v", "state/readout/i",
                        "delay/w_rec"}
    assert {"output", "new_state/cuba/v", "new_state/cuba/i", "new_state/readout/v", "new_state/readout/i",
            "new_delay/w_rec", "spike_count/cuba", "spikes/cuba"} == set(outs)
    assert spec.delayed_edges == [["w_rec", "cuba"]]  # the edge that closes the cycle (neuromoco.deploy.graph)
    for vi in list(ins.values()) + list(outs.values()):  # dynamic batch on every tensor
        assert vi.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert outs["spike_count/cuba"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert outs["spikes/cuba"].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    # the same model runs at batch 1 and batch 5
    r = OnnxRunner(path, record_spikes=True)
    for b in (1, 5):
        res = r.run(frames[:, :b])
        assert res.output.shape == (frames.shape[0], b, 5)
        assert res.spike_counts["cuba"].shape == (frames.shape[0], b)
        assert set(np.unique(res.spikes["cuba"])) <= {0, 1}
    assert describe(path)["states"][0]["input"].startswith(("state/", "delay/"))


def test_one_step_by_hand(tmp_path):
    """Three neurons (IF, LIF, CubaLIF) fed a constant current: the ONNX states match numpy step by step."""
    import onnxruntime as ort

    x = np.array([0.45, 0.45, 0.45], np.float32)
    nodes = {
        "input": nir.Input({"input": np.array([3])}),
        "w": nir.Linear(np.eye(3, dtype=np.float32)),
        "if_": nir.IF(r=np.full(1, 1.0), v_threshold=np.full(1, 1.0), v_reset=np.zeros(1)),
        "output": nir.Output({"output": np.array([3])}),
    }
    g = nir.NIRGraph(nodes, [("input", "w"), ("w", "if_"), ("if_", "output")], type_check=False)
    model, _spec = build_step_model(g, DT)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    v = np.zeros((1, 3), np.float32)
    expect_v = np.float32(0)
    for t in range(6):
        out, v_new = sess.run(["output", "new_state/if_/v"], {"input": x[None], "state/if_/v": v})
        expect_v = np.float32(expect_v + x[0])
        spike = expect_v > 1.0
        if spike:
            expect_v = np.float32(0)
        assert out[0, 0] == float(spike) and v_new[0, 0] == expect_v, t
        v = v_new

    # LIF: v = v + k * (r I + v_leak - v), k = dt * float32(1 / tau); CubaLIF: current first
    k = np.float32(DT) * np.float32(1 / 2e-3)
    ks = np.float32(DT) * np.float32(1 / 4e-3)
    nodes = {
        "input": nir.Input({"input": np.array([1])}),
        "lif": nir.LIF(tau=np.full(1, 2e-3), r=np.full(1, 2.0), v_leak=np.full(1, 0.1),
                       v_threshold=np.full(1, 1.0), v_reset=np.full(1, -0.2)),
        "output": nir.Output({"output": np.array([1])}),
    }
    g = nir.NIRGraph(nodes, [("input", "lif"), ("lif", "output")], type_check=False)
    sess = ort.InferenceSession(build_step_model(g, DT)[0].SerializeToString(), providers=["CPUExecutionProvider"])
    cuba = nir.CubaLIF(tau_syn=np.full(1, 4e-3), tau_mem=np.full(1, 2e-3), r=np.ones(1), v_leak=np.zeros(1),
                       v_threshold=np.full(1, 1.0), v_reset=np.zeros(1), w_in=np.full(1, 3.0))
    g2 = nir.NIRGraph({"input": nodes["input"], "c": cuba, "output": nodes["output"]},
                      [("input", "c"), ("c", "output")], type_check=False)
    sess2 = ort.InferenceSession(build_step_model(g2, DT)[0].SerializeToString(), providers=["CPUExecutionProvider"])
    v1 = np.zeros((1, 1), np.float32)
    v2, i2 = np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32)
    e1 = e2 = ei = np.float32(0)
    fired = [0, 0]
    for t in range(12):
        inp = np.full((1, 1), 0.5, np.float32)
        s1, v1 = sess.run(["output", "new_state/lif/v"], {"input": inp, "state/lif/v": v1})
        s2, v2, i2 = sess2.run(["output", "new_state/c/v", "new_state/c/i"],
                               {"input": inp, "state/c/v": v2, "state/c/i": i2})
        e1 = np.float32(e1 + k * (np.float32(np.float32(2.0) * inp[0, 0] + np.float32(0.1)) - e1))
        f1 = e1 > 1.0
        e1 = np.float32(-0.2) if f1 else e1
        ei = np.float32(ei + ks * (np.float32(3.0) * inp[0, 0] - ei))
        e2 = np.float32(e2 + k * (ei - e2))
        f2 = e2 > 1.0
        e2 = np.float32(0) if f2 else e2
        fired[0] += int(f1)
        fired[1] += int(f2)
        assert (s1[0, 0], v1[0, 0]) == (float(f1), e1), t
        assert (s2[0, 0], v2[0, 0], i2[0, 0]) == (float(f2), e2, ei), t
    assert fired[0] >= 2 and fired[1] >= 2  # the resets were exercised


def test_unsupported_node_is_named(tmp_path):
    g, dt, frames = convnet()
    g.nodes["delay"] = nir.Delay(np.ones(10))
    g.edges = [e for e in g.edges if e != ("li", "output")] + [("li", "delay"), ("delay", "output")]
    with pytest.raises(UserError, match=r"'delay'.*Delay"):
        TARGET.export(g, card_for(frames, dt), tmp_path)
    with pytest.raises(UserError, match=r"'delay'.*Delay"):
        build_step_model(g, dt)


def test_bad_options_are_clear(tmp_path):
    g, dt, frames = convnet()
    with pytest.raises(UserError, match="opset"):
        TARGET.export(g, card_for(frames, dt), tmp_path, opset=11)
    with pytest.raises(UserError, match="quantization"):
        TARGET.export(g, card_for(frames, dt), tmp_path, quantize="int4")
    with pytest.raises(UserError, match="not found"):
        OnnxRunner(tmp_path / "nothing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        OnnxRunner(tmp_path / "junk.onnx")
    plain = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(UserError, match="not written by"):
        OnnxRunner(tmp_path / "plain.onnx")
    path = TARGET.export(g, card_for(frames, dt), tmp_path)
    with pytest.raises(UserError, match="holds no model.int8.onnx"):
        TARGET.load(tmp_path, quantize="int8")
    with pytest.raises(UserError, match="without spike tensors"):
        TARGET.load(tmp_path, record_spikes=True)
    with pytest.raises(UserError, match="do not fit"):
        OnnxRunner(path).run(np.zeros((3, 2, 5), np.float32))


def test_runner_owns_its_export_folder():
    """``runner()`` exports to a temporary folder the runner owns: removed by ``close()`` or with the runner."""
    import gc

    g, dt, frames = convnet(B=2, T=3)
    run = TARGET.runner(g, card_for(frames, dt))
    folder = run.path.parent
    assert folder.is_dir() and run.workdir is not None and run.workdir.name == str(folder)
    assert run.run(frames).output.shape == (3, 2, 10)
    run.close()
    assert not folder.exists() and run.workdir is None
    run = TARGET.runner(g, card_for(frames, dt))
    folder = run.path.parent
    del run
    gc.collect()
    assert not folder.exists()


def test_opset_18_also_valid(tmp_path):
    g, dt, frames = convnet(B=2, T=3)
    path = TARGET.export(g, card_for(frames, dt), tmp_path, opset=18)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 18
    assert OnnxRunner(path).run(frames).output.shape == (3, 2, 10)


def test_scalar_neuron_parameters_broadcast(tmp_path):
    """Sinabs / Rockpool write scalar (size-1) parameters over a multi-dimensional layer."""
    nodes = {
        "input": nir.Input({"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d((6, 6), np.ones((2, 1, 3, 3), np.float32) * 0.3, 1, 1, 1, 1, np.zeros(2)),
        "lif": lif(1),
        "flat": nir.Flatten({"input": np.array([2, 6, 6])}, 0),
        "output": nir.Output({"output": np.array([72])}),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes, list(itertools.pairwise(names)), type_check=False)
    _, spec = build_step_model(g, DT)
    assert [s.shape for s in spec.states] == [[2, 6, 6]]
