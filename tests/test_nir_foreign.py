"""Graphs in the forms snnTorch, Sinabs and Rockpool write them load, check and run; the fixtures are sound."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import check_graph, load_graph, node_shapes, normalize_graph, structure
from neuromoco.deploy.reference_executor import ReferenceExecutor

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "nir_models"


def _fixtures_module():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURE_DIR / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MF = _fixtures_module()


@pytest.mark.parametrize("name", list(MF.FIXTURES))
def test_fixture_on_disk_loads_runs_and_every_layer_fires(name):
    path = FIXTURE_DIR / f"{name}.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    res = ReferenceExecutor(graph, card.dt).run(MF.sample_frames(card.__dict__, 6))
    assert res.output.shape[:2] == (card.time_steps, 6)
    assert res.spike_counts, "every fixture has spiking layers"
    for node, counts in res.spike_counts.items():
        assert counts.sum() > 0, f"{name}: {node} never fires"


@pytest.mark.parametrize("name", list(MF.FIXTURES))
def test_fixture_on_disk_matches_its_builder(name):
    """make_fixtures.py is reproducible: the file holds what the builder makes now, and runs the same."""
    built, card = MF.FIXTURES[name]()
    loaded = load_graph(FIXTURE_DIR / f"{name}.nir")
    built_n = normalize_graph(built)
    assert set(built_n.nodes) == set(loaded.nodes)
    assert sorted(built_n.edges) == sorted(loaded.edges)
    assert json.loads((FIXTURE_DIR / f"{name}.card.json").read_text())["dt"] == card["dt"]
    x = MF.sample_frames(card, 3, seed=5)
    a = ReferenceExecutor(built, card["dt"]).run(x)
    b = ReferenceExecutor(loaded, card["dt"]).run(x)
    np.testing.assert_array_equal(a.output, b.output)


def test_snntorch_leaky_meaning():
    """snnTorch writes Leaky(beta) as LIF(tau = dt/(1-beta), r = tau/dt): the Euler step is v = beta v + I."""
    graph, card = MF.snntorch_mlp()
    x = MF.sample_frames(card, 4)
    ex = ReferenceExecutor(graph, card["dt"], dtype=torch.float64, record_states=True)
    ex.run(x)
    fc1 = graph.nodes["fc1"]
    i_in = x @ fc1.weight.T.astype(np.float64) + fc1.bias
    v = np.zeros((4, 24))
    for t in range(card["time_steps"]):
        v = 0.9 * v + i_in[t]
        # tau was formed from a float32 beta, so k = 1 - beta only to float32 precision
        np.testing.assert_allclose(ex.states["lif1"]["v_pre"][t], v, rtol=1e-5, atol=1e-5)
        v = np.where(v > 1.0, 0.0, v)


def test_snntorch_nested_subgraph_equals_flat_recurrence():
    """snnTorch's RSynaptic subgraph is inlined as rsyn.lif / rsyn.w_rec and runs like the flat graph."""
    nested, card = MF.snntorch_rsynaptic()
    flat_g = normalize_graph(nested)
    assert "rsyn.lif" in flat_g.nodes and "rsyn.w_rec" in flat_g.nodes and "rsyn" not in flat_g.nodes
    assert structure(flat_g).recurrent == [("rsyn.w_rec", "rsyn.lif")]
    sub = nested.nodes["rsyn"]
    hand = nir.NIRGraph(
        nodes={"input": nested.nodes["input"], "fc1": nested.nodes["fc1"], "lif": sub.nodes["lif"],
               "rec": sub.nodes["w_rec"], "fc2": nested.nodes["fc2"], "lif2": nested.nodes["lif2"],
               "output": nested.nodes["output"]},
        edges=[("input", "fc1"), ("fc1", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "fc2"), ("fc2", "lif2"),
               ("lif2", "output")], type_check=False)
    x = MF.sample_frames(card, 5)
    a = ReferenceExecutor(nested, card["dt"], record_spikes=True).run(x)
    b = ReferenceExecutor(hand, card["dt"], record_spikes=True).run(x)
    np.testing.assert_array_equal(a.spikes["rsyn.lif"], b.spikes["lif"])
    np.testing.assert_array_equal(a.output, b.output)


def test_sinabs_flatten_batched_convention_equals_nir_convention():
    graph, card = MF.sinabs_cnn()
    shapes = node_shapes(graph)
    assert shapes["6"] == (128,) and shapes["5"] == (8, 4, 4)
    nodes = dict(graph.nodes)
    nodes["6"] = nir.Flatten(input_type={"input": np.array([8, 4, 4])}, start_dim=0, end_dim=-1)
    nir_conv = nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False)
    x = MF.sample_frames(card, 4)
    np.testing.assert_array_equal(ReferenceExecutor(graph, card["dt"]).run(x).output,
                                  ReferenceExecutor(nir_conv, card["dt"]).run(x).output)


def test_sinabs_params_with_batch_dim_and_conv_without_input_shape():
    """Sinabs may keep the batch dim in neuron arrays (v_mem's shape) and leave input_shape unset."""
    graph, card = MF.sinabs_cnn()
    nodes = dict(graph.nodes)
    c0 = graph.nodes["0"]
    nodes["0"] = nir.Conv2d(input_shape=None, weight=c0.weight, stride=c0.stride, padding=c0.padding,
                            dilation=c0.dilation, groups=c0.groups, bias=c0.bias)
    i1 = graph.nodes["1"]
    nodes["1"] = nir.IF(r=i1.r[None], v_threshold=i1.v_threshold[None], v_reset=i1.v_reset[None])
    g2 = nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False)
    check_graph(g2)
    assert tuple(nodes["0"].input_shape) == (16, 16)  # filled in from the inferred shapes
    x = MF.sample_frames(card, 3)
    np.testing.assert_array_equal(ReferenceExecutor(graph, card["dt"]).run(x).output,
                                  ReferenceExecutor(g2, card["dt"]).run(x).output)


def test_scalar_parameters_broadcast():
    """Scalar (0-d) neuron parameters, as snnTorch writes for a scalar beta, broadcast to the layer."""
    w = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Affine(weight=w, bias=np.zeros(5)),
                            "lif": nir.LIF(tau=np.array(1e-3), r=np.array(10.0), v_leak=np.array(0.0),
                                           v_threshold=np.array(1.0)),
                            "output": nir.Output(np.array([5]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    assert node_shapes(g)["lif"] == (5,)
    res = ReferenceExecutor(g, 1e-4).run(np.ones((4, 2, 3), np.float32))
    assert res.spike_counts["lif"].shape == (4, 2)


def test_rockpool_graph_shapes_and_run():
    graph, card = MF.rockpool_mlp()
    shapes = node_shapes(graph)
    assert shapes["1_LIFTorch"] == (16,) and shapes["output"] == (4,)
    res = ReferenceExecutor(graph, card["dt"]).run(MF.sample_frames(card, 4))
    assert set(res.spike_counts) == {"1_LIFTorch", "3_LIFTorch"}


def test_frames_reshaped_when_only_the_layout_differs():
    graph, card = MF.snntorch_mlp()
    x = MF.sample_frames(card, 2)
    ex = ReferenceExecutor(graph, card["dt"])
    np.testing.assert_array_equal(ex.run(x).output, ex.run(x.reshape(x.shape[0], 2, 4, 4)).output)


def test_float64_and_float32_agree_on_fixtures():
    for name in ("snntorch_mlp", "rockpool_mlp", "neuromoco_tiny_cnn"):
        graph, card = MF.FIXTURES[name]()
        x = MF.sample_frames(card, 4)
        a = ReferenceExecutor(graph, card["dt"]).run(x)
        b = ReferenceExecutor(graph, card["dt"], dtype=torch.float64).run(x)
        for node in a.spike_counts:
            total = max(int(a.spike_counts[node].sum()), 1)
            assert abs(int(a.spike_counts[node].sum()) - int(b.spike_counts[node].sum())) / total < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    for name in MF.FIXTURES:
        graph, card = MF.FIXTURES[name]()
        x = MF.sample_frames(card, 8)
        a = ReferenceExecutor(graph, card["dt"], dtype=torch.float64).run(x)
        b = ReferenceExecutor(graph, card["dt"], dtype=torch.float64, device="cuda").run(x)
        for node in a.spike_counts:
            agree = (a.spike_counts[node] == b.spike_counts[node]).mean()
            assert agree > 0.99, (name, node, agree)
