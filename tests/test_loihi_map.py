"""The Loihi 2 core-mapping estimate: every core within every limit, a graph over the chip's size reported as not
fitting, the per-core load and the time-step bound counted by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from test_energy_hand import tiny_graph

from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.loihi_map import (
    CoreLoad,
    MapLayer,
    core_map,
    estimate,
    layers_from_plan,
    limit_values,
    load_core_model,
    partition,
)
from neuromoco.deploy.result import RunResult


def test_limits_are_data_with_sources():
    model = load_core_model()
    for part in ("limits", "costs"):
        for name, entry in model[part].items():
            assert entry["source"] and entry["status"] in ("published", "assumed", "published (Loihi 1)"), name
    assert model["limits"]["cores_per_chip"]["value"] == 128
    assert model["limits"]["neurons_per_core"]["value"] == 8192
    assert limit_values(model)["synapses_per_core"] == 131072 * 8 // 8


def _random_layers(rng: np.random.Generator) -> list[MapLayer]:
    a = sp.random(300, 50, density=0.2, format="csr", random_state=1)
    b = sp.random(120, 300, density=0.05, format="csr", random_state=2)
    c = sp.random(120, 120, density=0.02, format="csr", random_state=3)  # recurrent
    return [MapLayer("l1", 300, [("input", a)]),
            MapLayer("l2", 120, [("l1", b), ("l2", c)], order=rng.permutation(120))]


@pytest.mark.parametrize("limits,tight", [
    ({"neurons_per_core": 64, "synapses_per_core": 10_000, "fan_in_per_core": 10_000}, "neurons"),
    ({"neurons_per_core": 1000, "synapses_per_core": 200, "fan_in_per_core": 10_000}, "synapses"),
    ({"neurons_per_core": 1000, "synapses_per_core": 10_000, "fan_in_per_core": 40}, "fan_in"),
])
def test_partition_respects_every_limit(limits, tight):
    layers = _random_layers(np.random.default_rng(0))
    lim = {**limits, "cores_per_chip": 128}
    cores, problems = partition(layers, lim)
    assert not problems
    for lay in layers:
        mine = [c for c in cores if c.layer == lay.name]
        placed = np.concatenate([c.rows for c in mine])
        assert sorted(placed.tolist()) == list(range(lay.neurons))  # every neuron exactly once
        for c in mine:
            rows = [m.tocsr()[c.rows] for _, m in lay.incoming]
            synapses = sum(r.nnz for r in rows)
            fan_in = sum(len(np.unique(r.indices)) for r in rows)  # sources counted per connection
            assert (c.synapses, c.fan_in) == (synapses, fan_in)
            assert c.neurons <= lim["neurons_per_core"]
            assert c.synapses <= lim["synapses_per_core"]
            assert c.fan_in <= lim["fan_in_per_core"]
    assert any(c.bound_by == tight for c in cores)


def test_graph_over_the_chip_is_reported_not_fitting():
    lim = limit_values(load_core_model())
    n = 128 * 8192 + 1  # one neuron more than 128 full cores hold
    layers = [MapLayer("big", n, [("input", sp.csr_matrix(np.ones((n, 1))))])]  # all from one input: fan-in 1
    cores, problems = partition(layers, lim)
    assert len(cores) == 129 and any("over the 128" in p for p in problems)
    out = core_map(layers, "input", None, load_core_model(), cores, problems)
    assert not out["fits"] and out["chips_needed"] == 2 and out["is_a_model"]


def test_neuron_too_large_for_any_core():
    lim = {"neurons_per_core": 8192, "synapses_per_core": 100, "fan_in_per_core": 4096, "cores_per_chip": 128}
    layers = [MapLayer("wide", 2, [("input", sp.csr_matrix(np.ones((2, 101))))])]
    _, problems = partition(layers, lim)
    assert problems and "alone has 101 synapses" in problems[0]
    lim = {**lim, "synapses_per_core": 10_000, "fan_in_per_core": 100}
    _, problems = partition(layers, lim)
    assert problems and "fan-in 101" in problems[0]


def test_core_load_and_step_bound_by_hand():
    """tiny_graph on its Lava plan: per-core synaptic ops from the spikes, the slowest core sets each step."""
    graph = tiny_graph()
    plan = compile_graph(graph, 0.001, input_shape=[1, 4, 4])
    layers = layers_from_plan(plan)
    model = load_core_model()
    lim = limit_values(model)
    lim_small = {**lim, "neurons_per_core": 16}  # lif1's 32 neurons on 2 cores, lif2 on 1
    cores, problems = partition(layers, lim_small)
    assert [c.layer for c in cores] == ["lif1", "lif1", "lif2"] and not problems
    # HWC placement: core 0 holds positions of rows 0-1 (both channels), core 1 rows 2-3
    assert sorted(cores[0].rows.tolist()) == sorted([c * 16 + p for c in range(2) for p in range(8)])
    T, B = 2, 1
    frames = np.zeros((T, B, 1, 4, 4), np.float32)
    frames[0, 0, 0, 0, 0] = 3  # a graded input: one spike; reaches 2 channels x (0..1, 0..1) = 8 lif1 neurons
    s1 = np.zeros((T, B, 2, 4, 4), np.uint8)
    s1[1, 0, 0, 3, 3] = 1  # one lif1 spike at step 1: reaches the 3 lif2 neurons
    res = RunResult(np.zeros((T, B, 3)), {"lif1": s1.reshape(T, B, -1).sum(-1), "lif2": np.zeros((T, B))},
                    {"lif1": s1, "lif2": np.zeros((T, B, 3), np.uint8)})
    load = CoreLoad(layers, cores, plan.input_name, lim_small)
    load.update(res, frames)
    out = core_map(layers, plan.input_name, load, model, cores, problems)
    per = [(c["synops_per_step_mean"], c["synops_per_step_max"]) for c in out["cores"]]
    assert per == [(4.0, 8.0), (0.0, 0.0), (1.5, 3.0)]  # totals 8, 0, 3 over 2 steps
    ts, tn, sync = lim["synop_s"], lim["neuron_update_s"], lim["barrier_sync_s"]
    step0 = max(8 * ts + 16 * tn, 16 * tn, 3 * tn)
    step1 = max(16 * tn, 16 * tn, 3 * ts + 3 * tn)
    got = out["load"]["time_per_step_s"]
    assert got["mean"] == pytest.approx((step0 + step1) / 2 + sync)
    assert got["max"] == pytest.approx(max(step0, step1) + sync)
    e = out["load"]["energy_per_inference_pj"]
    assert e["synops"] == pytest.approx(11 * lim["synop_pj"])
    assert e["neuron_updates"] == pytest.approx(35 * T * lim["neuron_update_pj"])
    assert e["barrier_sync"] == pytest.approx(T * 3 * lim["barrier_sync_pj_per_core"])


def test_estimate_of_a_plan_fits():
    plan = compile_graph(tiny_graph(), 0.001, input_shape=[1, 4, 4])
    out = estimate(plan)
    assert out["fits"] and out["cores_needed"] == 2 and [r["cores"] for r in out["layers"]] == [1, 1]
