"""Synaptic operations, neuron updates and energy: a tiny graph counted by hand, and fan-out maps checked
against an explicit enumeration of every synapse."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest

from neuromoco.deploy.metrics.activity import Activity
from neuromoco.deploy.metrics.energy_models import energy, load_energy_models, select_models
from neuromoco.deploy.metrics.synops import profile
from neuromoco.deploy.metrics.walk import synaptic_layers, walk
from neuromoco.deploy.result import RunResult
from neuromoco.errors import UserError


def lif(shape):
    return nir.LIF(tau=np.full(shape, 0.01), r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.ones(shape))


def tiny_graph() -> nir.NIRGraph:
    """Input [1,4,4] -> Conv2d(1->2, 3x3, padding 1) -> LIF [2,4,4] -> Flatten -> Affine(32->3) -> LIF [3]."""
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                           groups=1, bias=np.zeros(2)),
        "lif1": lif((2, 4, 4)),
        "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.ones((3, 32)), bias=np.zeros(3)),
        "lif2": lif((3,)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("input", "conv"), ("conv", "lif1"), ("lif1", "flat"), ("flat", "fc"), ("fc", "lif2"),
              ("lif2", "output")])


def test_tiny_graph_by_hand():
    T, B = 3, 2
    graph = tiny_graph()
    # input events: sample 0 has 1 event at (0,0) (corner) and 2 at (1,2) (interior); sample 1 one at (3,1)
    frames = np.zeros((T, B, 1, 4, 4), dtype=np.float32)
    frames[0, 0, 0, 0, 0] = 1
    frames[1, 0, 0, 1, 2] = 2
    frames[2, 1, 0, 3, 1] = 1
    # spikes of lif1: 5 in total; lif2: 2
    s1 = np.zeros((T, B, 2, 4, 4), dtype=np.uint8)
    s1[0, 0, 0, 0, 0] = s1[1, 0, 1, 2, 2] = s1[2, 0, 0, 3, 3] = s1[1, 1, 1, 0, 3] = s1[2, 1, 0, 1, 1] = 1
    s2 = np.zeros((T, B, 3), dtype=np.uint8)
    s2[2, 0, 1] = s2[2, 1, 2] = 1
    res = RunResult(output=np.zeros((T, B, 3)), spike_counts={"lif1": s1.reshape(T, B, -1).sum(-1),
                                                              "lif2": s2.sum(-1)},
                    spikes={"lif1": s1, "lif2": s2})
    act = Activity()
    act.update(res, frames)
    prof = profile(graph, act, [1, 4, 4])

    # By hand. A 3x3 kernel with padding 1 over 4 positions: position 0 and 3 are under 2 output
    # positions, 1 and 2 under 3. Fan-out of input pixel (i, j) = 2 channels * r[i] * r[j], r = [2, 3, 3, 2].
    # sample 0: (0,0) -> 2*2*2 = 8, two events at (1,2) -> 2 * (2*3*3) = 36; sample 1: (3,1) -> 2*2*3 = 12
    conv_synops = 8 + 36 + 12
    # every lif1 spike reaches the 3 outputs of the dense layer
    fc_synops = 5 * 3
    rows = {r["layer"]: r for r in prof["layers"]}
    assert set(rows) == {"conv", "fc"}
    assert rows["conv"]["synops_per_inference"] == pytest.approx(conv_synops / B)
    assert rows["fc"]["synops_per_inference"] == pytest.approx(fc_synops / B)
    assert rows["conv"]["spikes_in_per_inference"] == pytest.approx(4 / B)  # 4 input events
    assert rows["conv"]["connections"] == 2 * (2 + 3 + 3 + 2) ** 2  # 200 synapses
    assert rows["fc"]["connections"] == 32 * 3
    t = prof["per_inference"]
    assert t["synops"] == pytest.approx((conv_synops + fc_synops) / B)  # 35.5
    assert t["neuron_updates"] == (32 + 3) * T  # 105
    assert t["spikes"] == pytest.approx((5 + 2) / B)
    assert t["input_events"] == pytest.approx(4 / B)
    # ANN: conv 32 outputs x 9 taps (padding taps included) + dense 3 x 32
    assert rows["conv"]["ann_macs"] == 32 * 9
    assert t["ann_macs"] == 32 * 9 + 96  # 384
    assert prof["exact"]

    e = energy(prof, select_models(load_energy_models(), ["loihi", "45nm"]))
    assert e["loihi"]["snn_pj"] == pytest.approx(35.5 * 23.6 + 105 * 52.0)  # 837.8 + 5460 = 6297.8 pJ
    assert e["loihi"]["ann_pj"] is None
    assert e["45nm"]["snn_pj"] == pytest.approx(35.5 * 0.9)  # 31.95 pJ
    assert e["45nm"]["ann_pj"] == pytest.approx(384 * 4.6)  # 1766.4 pJ
    assert e["45nm"]["ann_over_snn"] == pytest.approx(1766.4 / 31.95)
    per_layer = {x["layer"]: x for x in e["45nm"]["layers"]}
    assert per_layer["conv"]["snn_pj"] == pytest.approx(28 * 0.9)
    assert per_layer["fc"]["ann_pj"] == pytest.approx(96 * 4.6)


def test_per_layer_counts_only_charge_mean_fanout():
    T, B = 2, 1
    graph = tiny_graph()
    frames = np.zeros((T, B, 1, 4, 4), dtype=np.float32)
    res = RunResult(output=np.zeros((T, B, 3)), spike_counts={"lif1": np.array([[4], [2]]), "lif2": np.zeros((T, B))})
    act = Activity()
    act.update(res, frames)
    prof = profile(graph, act, [1, 4, 4])
    rows = {r["layer"]: r for r in prof["layers"]}
    assert rows["fc"]["synops_per_inference"] == 6 * 3  # dense: the mean fan-out is exact
    assert rows["conv"]["synops_per_inference"] == 0
    assert not rows["fc"]["exact"] and not prof["exact"] and prof["notes"]


def _brute_force_conv_fanout(cin, h, w, cout, k, stride, pad, dil, groups):
    fan = np.zeros((cin, h, w), dtype=np.int64)
    ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    per_group_in, per_group_out = cin // groups, cout // groups
    for co in range(cout):
        g = co // per_group_out
        for oy in range(ho):
            for ox in range(wo):
                for ci in range(g * per_group_in, (g + 1) * per_group_in):
                    for ky in range(k):
                        for kx in range(k):
                            y, x = oy * stride - pad + ky * dil, ox * stride - pad + kx * dil
                            if 0 <= y < h and 0 <= x < w:
                                fan[ci, y, x] += 1
    return fan, ho, wo


@pytest.mark.parametrize("stride,pad,dil,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (2, 2, 2, 2), (3, 1, 1, 4)])
def test_conv_fanout_matches_enumeration(stride, pad, dil, groups):
    cin, h, w, cout, k = 4, 9, 7, 8, 3
    fan, ho, wo = _brute_force_conv_fanout(cin, h, w, cout, k, stride, pad, dil, groups)
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([cin, h, w])}),
        "conv": nir.Conv2d(input_shape=(h, w), weight=np.ones((cout, cin // groups, k, k)), stride=stride,
                           padding=pad, dilation=dil, groups=groups, bias=np.zeros(cout)),
        "lif": lif((cout, ho, wo)),
        "output": nir.Output(output_type={"output": np.array([cout, ho, wo])}),
    }, edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")], type_check=False)  # NIR mis-types groups
    (layer,) = synaptic_layers(graph, [cin, h, w])
    np.testing.assert_array_equal(layer.fanout, fan)
    assert layer.ann_macs == cout * ho * wo * (cin // groups) * k * k


def test_pooling_fanout():
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2, 4, 4])}),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        "lif": lif((2, 3, 3)),
        "pool2": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([3, 3]), padding=np.array([0, 0])),
        "lif2": lif((2, 1, 1)),
        "output": nir.Output(output_type={"output": np.array([2, 1, 1])}),
    }, edges=[("input", "pool"), ("pool", "lif"), ("lif", "pool2"), ("pool2", "lif2"), ("lif2", "output")])
    layers = {layer.name: layer for layer in synaptic_layers(graph, [2, 4, 4])}
    r = np.array([1, 2, 2, 1])  # overlapping 2x2 windows with stride 1 over 4 positions
    np.testing.assert_array_equal(layers["pool"].fanout, np.broadcast_to(np.outer(r, r), (2, 4, 4)))
    np.testing.assert_array_equal(layers["pool2"].fanout, np.ones((2, 3, 3)))  # each in exactly one window
    assert layers["pool"].ann_macs == 2 * 9 * 4


def test_recurrent_layer_counted():
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "w_in": nir.Affine(weight=np.ones((4, 3)), bias=np.zeros(4)),
        "lif": lif((4,)),
        "w_rec": nir.Linear(weight=np.ones((4, 4))),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    layers = {(x.source, x.sink): x for x in synaptic_layers(graph, [3])}
    assert set(layers) == {("input", "lif"), ("lif", "lif")}
    assert (layers[("lif", "lif")].fanout == 4).all()


def test_energy_model_table_and_extension(tmp_path):
    table = load_energy_models()
    assert table["loihi"]["energy_pj"]["synop"] == 23.6 and table["loihi"]["energy_pj"]["neuron_update"] == 52.0
    assert table["45nm"]["energy_pj"]["synop"] == 0.9 and table["45nm"]["energy_pj"]["ann_mac"] == 4.6
    assert "Davies" in table["loihi"]["source"] and "Horowitz" in table["45nm"]["source"]
    assert all(m["source"] and m.get("caveats") for m in table.values())
    extra = tmp_path / "mine.json"
    extra.write_text(json.dumps({"models": {"mychip": {"energy_pj": {"synop": 1.0, "neuron_update": 2.0},
                                                       "source": "my measurement"}}}))
    table = load_energy_models([extra])
    assert "mychip" in table and "loihi" in table
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"x": {"energy_pj": {"synop": 1.0}}}}))
    with pytest.raises(UserError, match="source"):
        load_energy_models([bad])
    with pytest.raises(UserError, match="unknown energy model"):
        select_models(table, ["nope"])


def test_deploy_profile_walks_the_graph_once(tmp_path, monkeypatch):
    """`deploy profile` makes one walk of the graph (its fan-out) and hands it to the energy profile and to
    NeuroBench's counter, which would otherwise each make their own."""
    import shutil

    from neuromoco.deploy.cli import main
    from neuromoco.deploy.metrics import neurobench, synops
    from neuromoco.deploy.metrics import walk as walk_module

    calls = []

    def counted(graph, input_shape=None):
        calls.append(1)
        return walk(graph, input_shape)

    for module in (walk_module, neurobench, synops):
        monkeypatch.setattr(module, "walk", counted)
    root = Path(__file__).resolve().parents[1] / "nir_models"
    for suffix in (".nir", ".card.json"):
        shutil.copy(root / f"neuromoco_tiny_cnn{suffix}", tmp_path / f"m{suffix}")
    frames = np.random.default_rng(0).poisson(0.3, (4, 10, 2, 16, 16)).astype("float32")  # [N, T, C, H, W]
    np.savez(tmp_path / "f.npz", frames=frames, labels=np.zeros(4, "int64"))
    assert main(["profile", str(tmp_path / "m.nir"), "--dataset", str(tmp_path / "f.npz"), "--no-core-map",
                 "--no-progress", "--out", str(tmp_path / "p")]) == 0
    assert len(calls) == 1
    g = tiny_graph()
    assert [x.name for x in walk(g, [1, 4, 4]).layers] == [x.name for x in synaptic_layers(g, [1, 4, 4])]
