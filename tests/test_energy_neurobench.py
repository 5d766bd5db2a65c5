"""NeuroBench's metrics on a tiny graph, counted by hand; and `deploy profile` reporting them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_energy_hand import tiny_graph
from test_parity_cli import write_model

from neuromoco.deploy.cli import main
from neuromoco.deploy.graph import node_shapes
from neuromoco.deploy.metrics.footprint import connection_sparsity, footprint, precision_of
from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter, neurobench_metrics
from neuromoco.deploy.result import RunResult

T, B = 3, 2


def sparse_tiny_graph():
    """tiny_graph with zero weights: channel 1's centre tap, and the first 8 inputs of the dense layer's row 0."""
    g = tiny_graph()
    g.nodes["conv"].weight[1, 0, 1, 1] = 0
    g.nodes["fc"].weight[0, :8] = 0
    return g


def tiny_run():
    frames = np.zeros((T, B, 1, 4, 4), dtype=np.float32)
    frames[0, 0, 0, 0, 0] = 1  # step 0: binary -> ACs
    frames[1, 0, 0, 1, 2] = 2  # step 1: a 2 -> the whole call is graded: MACs
    frames[2, 1, 0, 3, 1] = 1  # step 2: binary
    s1 = np.zeros((T, B, 2, 4, 4), dtype=np.uint8)
    s1[0, 0, 0, 0, 0] = s1[1, 0, 1, 2, 2] = s1[2, 0, 0, 3, 3] = s1[1, 1, 1, 0, 3] = s1[2, 1, 0, 1, 1] = 1
    s2 = np.zeros((T, B, 3), dtype=np.uint8)
    s2[2, 0, 1] = s2[2, 1, 2] = 1
    res = RunResult(output=np.zeros((T, B, 3)), spike_counts={"lif1": s1.reshape(T, B, -1).sum(-1),
                                                              "lif2": s2.sum(-1)}, spikes={"lif1": s1, "lif2": s2})
    return res, frames


def test_static_metrics_by_hand():
    g = sparse_tiny_graph()
    # 1 + 8 zero weights of 2*9 + 3*32 = 114
    assert connection_sparsity(g) == round(9 / 114, 4) == 0.0789
    fp = footprint(g, node_shapes(g, [1, 4, 4]), precision_of("reference")[1])
    assert fp["weights"] == 114 * 4 and fp["biases"] == 5 * 4
    # each LIF keeps tau, r and v_threshold (uniform: one value each; v_leak = v_reset = 0: none), state 32 + 3
    assert fp["neuron_constants"] == 2 * 3 * 4 and fp["neuron_state"] == 35 * 4
    assert fp["footprint"] == 456 + 20 + 24 + 140
    assert footprint(g, node_shapes(g, [1, 4, 4]), precision_of("lava-float")[1])["footprint"] == 2 * 640
    int8 = footprint(g, node_shapes(g, [1, 4, 4]), precision_of("onnx-int8")[1])
    assert int8["weights"] == 114 and int8["biases"] == 20
    assert precision_of("lava-fixed", {"weight_bits": 16})[1]["weight"] == 2


def test_workload_metrics_by_hand():
    g = sparse_tiny_graph()
    counter = NeuroBenchCounter(g, [1, 4, 4])
    counter.update(*tiny_run())
    m = neurobench_metrics(g, counter, "reference")
    # conv fan-out over non-zero weights of input pixel (i, j): 2 * r[i] * r[j] - 1 (channel 1 lacks its
    # centre tap, whose output always exists with padding 1), r = [2, 3, 3, 2]
    conv_acs = (2 * 2 * 2 - 1) + (2 * 2 * 3 - 1)  # steps 0 and 2: (0,0) and (3,1)
    conv_macs = 2 * 3 * 3 - 1  # step 1: (1,2), binarized (its value 2 counts once)
    # dense layer: a spike of flat neuron k reaches 3 outputs, 2 when k < 8; the 5 lif1 spikes are at 0, 26, 15,
    # 19, 5
    fc_acs = 2 + 3 + 3 + 3 + 2
    so = m["synaptic_operations"]
    assert so["Effective_ACs"] == pytest.approx((conv_acs + fc_acs) / B)  # 15.5
    assert so["Effective_MACs"] == pytest.approx(conv_macs / B)  # 8.5
    assert so["Dense"] == T * (200 + 96)  # every in-bounds synapse, every step: 888
    assert m["synaptic_operations_by_layer"]["fc"] == {"Effective_MACs": 0, "Effective_ACs": fc_acs / B,
                                                       "Dense": T * 96}
    assert m["activation_sparsity_by_layer"] == {"lif1": pytest.approx(1 - 5 / 192), "lif2": pytest.approx(1 - 2 / 18)}
    assert m["activation_sparsity"] == pytest.approx(1 - 7 / 210)
    assert m["membrane_updates"] == 35 * T
    assert m["connection_sparsity"] == 0.0789 and m["footprint"] == 640


def test_graded_input_through_pooling_is_macs():
    """AvgPool2d of spikes reaches the next weighted node graded: its operations are MACs, pooling uncounted."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from neurobench_check import nir_graph, weights

    g = nir_graph(weights())
    counter = NeuroBenchCounter(g, [2, 6, 6])
    frames = np.zeros((1, 1, 2, 6, 6), dtype=np.float32)
    s1 = np.zeros((1, 1, 3, 6, 6), dtype=np.uint8)
    s1[0, 0, 0, 0, 0] = 1  # one spike: pooled to 0.25 at (0, 0, 0) of the 3x3 map
    res = RunResult(np.zeros((1, 1, 4)), {"lif1": np.array([[1]]), "lif2": np.array([[0]])},
                    {"lif1": s1, "lif2": np.zeros((1, 1, 4), np.uint8)})
    counter.update(res, frames)
    fc = counter.result()["synaptic_operations_by_layer"]["fc"]
    assert fc["Effective_MACs"] == int((g.nodes["fc"].weight[:, 0] != 0).sum()) and fc["Effective_ACs"] == 0


def test_profile_reports_neurobench_and_core_map(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    out = tmp_path / "prof"
    assert main(["profile", str(model), "--dataset", str(frames), "--limit", "6", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "NeuroBench" in text and "Loihi 2 estimate" in text
    data = json.loads((out / "energy.json").read_text())
    nb = data["neurobench"]
    assert set(nb["synaptic_operations"]) == {"Dense", "Effective_MACs", "Effective_ACs"}
    assert 0 <= nb["activation_sparsity"] <= 1 and nb["footprint"] > 0
    assert nb["membrane_updates"] == data["profile"]["per_inference"]["neuron_updates"]
    m = data["loihi2_map"]
    assert m["available"] and m["fits"] and m["is_a_model"] and m["cores_needed"] >= 2
    assert m["load"]["time_per_step_s"]["mean"] >= m["load"]["time_per_step_s"]["if_perfectly_balanced"]
    report = (out / "energy.md").read_text()
    assert "NeuroBench metrics" in report and "Effective_ACs" in report and "assumed" in report
    for png in ("layers.png", "cores.png"):
        assert (out / png).stat().st_size > 1000
    assert main(["profile", str(model), "--dataset", str(frames), "--limit", "2", "--out", str(out),
                 "--no-core-map"]) == 0
    assert json.loads((out / "energy.json").read_text())["loihi2_map"] is None


def test_profile_help_lists_what_it_reports(capsys):
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in ("synaptic operations", "neuron updates", "footprint", "connection sparsity", "activation sparsity",
                 "Effective_MACs", "Effective_ACs", "membrane updates", "Loihi 2", "cores"):
        assert word in text, word
