"""The Loihi 2 core-mapping estimate: every core within every limit, a graph over the chip's size reported as not
fitting, the per-core load and the time-step bound counted by hand; convolution kernels placed with weight sharing
(counted by hand) and without it (the same as their expanded matrices), never expanded."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from test_energy_hand import tiny_graph

from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.loihi.kernel import Kernel, identity_kernel
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, Readout
from neuromoco.deploy.metrics.core_map import (
    ConvGeometry,
    CoreLoad,
    CoreMapping,
    MapLayer,
    core_map,
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
    assert model["limits"]["shared_convolution_weights"]["status"] == "published"
    assert model["limits"]["bits_per_shared_weight"]["status"] == "assumed"
    assert limit_values(model)["synapses_per_core"] == 131072 * 8 // 8
    assert limit_values(model)["shared_weights_per_core"] == 131072 * 8 // 8


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


def _tiny_plan() -> LavaPlan:
    """tiny_graph's Lava plan with its convolution as a kernel (also where the compiler expands it)."""
    plan = compile_graph(tiny_graph(), 0.001, input_shape=[1, 4, 4])
    conv = plan.layers[0].conns[0]
    if conv.kernel is None:
        k = Kernel(np.ones((2, 1, 3, 3)), (1, 1), (1, 1, 1, 1), (1, 4, 4), (2, 4, 4))
        assert (conv.matrix != 0).toarray().tolist() == (k.matrix() != 0).toarray().tolist()
        plan.layers[0].conns[0] = conv.with_weights(k)
    return plan


def test_core_load_and_step_bound_by_hand():
    """tiny_graph on its Lava plan: per-core synaptic ops from the spikes, the slowest core sets each step; lif1
    (a 3x3 conv kernel) tiled by channel with weight sharing, and position by position without it."""
    plan = _tiny_plan()
    layers = layers_from_plan(plan)
    model = load_core_model()
    lim = limit_values(model)
    lim_small = {**lim, "neurons_per_core": 16}  # lif1's 32 neurons on 2 cores, lif2 on 1
    cores, problems = partition(layers, lim_small)
    assert [c.layer for c in cores] == ["lif1", "lif1", "lif2"] and not problems
    # shared: one channel per core (all 16 positions: one copy of each channel's 9 weights)
    assert [c.tile for c in cores[:2]] == [(0, 1, 0, 4, 0, 4), (1, 2, 0, 4, 0, 4)]
    assert [c.weights for c in cores] == [9, 9, 3 * 16 * 2]  # lif2: its 96 synapses, stored one by one
    assert [c.fan_in for c in cores[:2]] == [16, 16]
    # expanded, HWC placement: core 0 holds positions of rows 0-1 (both channels), core 1 rows 2-3
    expanded, exp_problems = partition(layers, lim_small, shared=False)
    assert sorted(expanded[0].rows.tolist()) == sorted([c * 16 + p for c in range(2) for p in range(8)])
    T, B = 2, 1
    frames = np.zeros((T, B, 1, 4, 4), np.float32)
    frames[0, 0, 0, 0, 0] = 3  # a graded input: one spike; reaches 2 channels x (0..1, 0..1) = 8 lif1 neurons
    s1 = np.zeros((T, B, 2, 4, 4), np.uint8)
    s1[1, 0, 0, 3, 3] = 1  # one lif1 spike at step 1: reaches the 3 lif2 neurons
    res = RunResult(np.zeros((T, B, 3)), {"lif1": s1.reshape(T, B, -1).sum(-1), "lif2": np.zeros((T, B))},
                    {"lif1": s1, "lif2": np.zeros((T, B, 3), np.uint8)})
    load = CoreLoad(layers, cores, plan.input_name, lim_small, expanded)
    load.update(res, frames)
    out = core_map(layers, plan.input_name, load, model, cores, problems, (expanded, exp_problems))
    per = [(c["synops_per_step_mean"], c["synops_per_step_max"]) for c in out["cores"]]
    assert per == [(2.0, 4.0), (2.0, 4.0), (1.5, 3.0)]  # shared: 4 of the 8 input synops on each channel's core
    exp_tally = load.tallies[1]
    assert exp_tally.total.tolist() == [8.0, 0.0, 3.0] and exp_tally.peak.tolist() == [8.0, 0.0, 3.0]
    ts, tn, sync = lim["synop_s"], lim["neuron_update_s"], lim["barrier_sync_s"]
    for got, step0 in ((out["load"], max(4 * ts + 16 * tn, 3 * tn)),
                       (out["expanded"]["load"], max(8 * ts + 16 * tn, 16 * tn, 3 * tn))):
        step1 = max(16 * tn, 3 * ts + 3 * tn)
        assert got["time_per_step_s"]["mean"] == pytest.approx((step0 + step1) / 2 + sync)
        assert got["time_per_step_s"]["max"] == pytest.approx(max(step0, step1) + sync)
        e = got["energy_per_inference_pj"]
        assert e["synops"] == pytest.approx(11 * lim["synop_pj"])
        assert e["neuron_updates"] == pytest.approx(35 * T * lim["neuron_update_pj"])
        assert e["barrier_sync"] == pytest.approx(T * 3 * lim["barrier_sync_pj_per_core"])


def test_estimate_of_a_plan_fits():
    plan = _tiny_plan()
    out = CoreMapping(layers_from_plan(plan), plan.input_name).result()
    assert out["fits"] and out["cores_needed"] == 2 and [r["cores"] for r in out["layers"]] == [1, 1]
    assert out["expanded"]["cores_needed"] == 2 and out["expanded"]["fits"]
    conv = out["layers"][0]
    assert (conv["weight_sharing"], conv["parameters"], conv["synapses"]) == (True, 18, 200)
    assert (conv["synaptic_memory_bytes"], conv["synaptic_memory_bytes_expanded"]) == (18, 200)
    assert out["synaptic_memory_bytes"] == 18 + 96 and out["expanded"]["synaptic_memory_bytes"] == 200 + 96


# ------------------------------------------------------------------------------ kernels (weight sharing)

def _kernel(rng: np.random.Generator, co: int, in_shape: tuple[int, int, int], k: int, stride: int,
            pad: tuple[int, int, int, int], crop: tuple[int, int] | None = None, density: float = 0.6) -> Kernel:
    w = rng.normal(size=(co, in_shape[0], k, k)) * (rng.random((co, in_shape[0], k, k)) < density)
    he, we = crop or in_shape[1:]
    out = (co, (he + pad[0] + pad[1] - k) // stride + 1, (we + pad[2] + pad[3] - k) // stride + 1)
    return Kernel(w, (stride, stride), pad, in_shape, out, crop)


def _kernels(rng: np.random.Generator) -> list[Kernel]:
    return [_kernel(rng, 8, (4, 8, 8), 3, 1, (1, 1, 1, 1), density=1.0),
            _kernel(rng, 6, (3, 9, 9), 4, 2, (2, 1, 0, 2)),
            _kernel(rng, 5, (2, 10, 11), 3, 3, (0, 0, 0, 0), crop=(9, 10)),
            _kernel(rng, 4, (4, 6, 6), 5, 1, (2, 2, 2, 2), density=0.3)]


def test_kernel_geometry_counts_its_matrix():
    """Synapses per neuron and the fan-in of any neurons (random sets, HWC blocks, tiles) from the kernel's
    geometry equal the expanded matrix's."""
    rng = np.random.default_rng(0)
    for k in _kernels(rng):
        g, m = ConvGeometry(k), k.matrix().tocsr()
        co, ho, wo = k.out_shape
        assert np.array_equal(g.synapses, np.diff(m.indptr)) and g.synapses.sum() == k.synapses
        hwc = np.arange(k.shape[0]).reshape(k.out_shape).transpose(1, 2, 0).ravel()
        sets = [rng.choice(k.shape[0], size=rng.integers(1, k.shape[0]), replace=False) for _ in range(30)]
        sets += [hwc[a:a + 13] for a in range(0, k.shape[0], 7)]
        for n in sets:
            exact = len(np.unique(m[n].indices))
            assert g.fan_in(n) == exact <= g.fan_in_bound(n)
        for _ in range(30):
            c0, y0, x0 = (int(rng.integers(0, n)) for n in (co, ho, wo))
            c1, y1, x1 = (int(rng.integers(a + 1, n + 1)) for a, n in ((c0, co), (y0, ho), (x0, wo)))
            rows = ((np.arange(c0, c1)[:, None, None] * ho + np.arange(y0, y1)[None, :, None]) * wo
                    + np.arange(x0, x1)[None, None, :]).ravel()
            assert g.tile_fan_in(c0, c1, y0, y1, x0, x1) == len(np.unique(m[rows].indices))


def _lif(name: str, shape: tuple[int, ...], conns: list[Conn], delay: int) -> Layer:
    z = np.zeros(int(np.prod(shape)))
    return Layer(name, "LIF", shape, delay, True, z + 0.5, z + 0.5, z + 1, z, z, z, z, z, z, conns)


def _conv_plan(expand: bool) -> LavaPlan:
    """Input [2,9,9] -> l1 [4,9,9] (3x3 conv) -> l2 [6,4,4] (4x4 stride-2 conv of l1 + 3x3 stride-2 conv of the
    input) -> l3 [3,4,4] (3x3 conv of l2 + a recurrent matrix: placed block by block) -> readout (a matrix);
    ``expand``: every kernel as its matrix."""
    rng = np.random.default_rng(1)
    k1 = _kernel(rng, 4, (2, 9, 9), 3, 1, (1, 1, 1, 1))
    k2 = _kernel(rng, 6, (4, 9, 9), 4, 2, (1, 1, 1, 1))
    skip = _kernel(rng, 6, (2, 9, 9), 3, 2, (0, 0, 0, 0))
    k3 = _kernel(rng, 3, (6, 4, 4), 3, 1, (1, 1, 1, 1))
    rec = sp.random(48, 48, density=0.1, format="csr", random_state=2)

    def conn(src: str, k: Kernel) -> Conn:
        return Conn(src, k.matrix()) if expand else Conn(src, None, kernel=k)

    layers = [_lif("l1", (4, 9, 9), [conn("input", k1)], 1),
              _lif("l2", (6, 4, 4), [conn("l1", k2), conn("input", skip)], 2),
              _lif("l3", (3, 4, 4), [conn("l2", k3), Conn("l3", rec, recurrent=True)], 3)]
    readout = Readout(4, (5,), conns=[Conn("l3", sp.random(5, 48, density=0.5, format="csr", random_state=3))])
    return LavaPlan("float", 0.001, "input", (2, 9, 9), layers, readout)


@pytest.mark.parametrize("limits,tight", [
    ({"neurons_per_core": 40, "synapses_per_core": 10_000, "fan_in_per_core": 10_000}, "neurons"),
    ({"neurons_per_core": 1000, "synapses_per_core": 300, "fan_in_per_core": 10_000}, "synapses"),
    ({"neurons_per_core": 1000, "synapses_per_core": 10_000, "fan_in_per_core": 100}, "fan_in"),
])
def test_expanded_kernels_place_as_their_matrices(limits, tight):
    """Without weight sharing a kernel plan is cut into exactly the blocks of the same plan with expanded matrices
    (same neurons, synapses, fan-in, bound); with ``exact=False`` the same blocks, fan-in bounded."""
    lim = {**limits, "cores_per_chip": 128}
    kernels, matrices = layers_from_plan(_conv_plan(False)), layers_from_plan(_conv_plan(True))
    want, want_problems = partition(matrices, lim)
    got, problems = partition(kernels, lim, shared=False)
    fast, _ = partition(kernels, lim, shared=False, exact=False)
    assert not want_problems and problems == want_problems and any(c.bound_by == tight for c in want)
    assert len(got) == len(want) == len(fast)
    for a, b, f in zip(got, want, fast, strict=True):
        assert (a.layer, a.rows.tolist(), a.synapses, a.fan_in, a.bound_by) == \
            (b.layer, b.rows.tolist(), b.synapses, b.fan_in, b.bound_by)
        assert (f.rows.tolist(), f.bound_by) == (a.rows.tolist(), a.bound_by) and a.fan_in <= f.fan_in
        assert f.fan_in <= lim["fan_in_per_core"]


def test_shared_tiles_by_hand():
    """A 3x3 conv 4 -> 8 channels on 8x8 (padding 1, every weight non-zero): 288 parameters; a core holding
    channels 0-3 stores their 144 weights once, for 4 x 22 x 22 = 1936 synapses per channel."""
    k = _kernel(np.random.default_rng(2), 8, (4, 8, 8), 3, 1, (1, 1, 1, 1), density=1.0)
    assert (k.parameters, k.synapses) == (288, 8 * 1936)
    layers = [MapLayer("conv", 512, [("input", k)])]
    lim = {"neurons_per_core": 8192, "synapses_per_core": 131072, "shared_weights_per_core": 150,
           "fan_in_per_core": 4096, "cores_per_chip": 128}
    cores, problems = partition(layers, lim)
    assert not problems and [c.tile for c in cores] == [(0, 4, 0, 8, 0, 8), (4, 8, 0, 8, 0, 8)]
    for c in cores:
        assert (c.neurons, c.weights, c.synapses, c.fan_in, c.bound_by) == (256, 144, 4 * 1936, 256, "synapses")
    # one spatial half per core would store all 288 weights twice: the fewest copies wins the tie
    half = {**lim, "shared_weights_per_core": 288, "neurons_per_core": 256}
    assert [c.weights for c in partition(layers, half)[0]] == [144, 144]
    # the default limits: one core, 288 B of kernel weights against 15488 B of expanded synapses
    model = load_core_model()
    out = core_map(layers, "input", None, model, *partition(layers, limit_values(model)),
                   partition(layers, limit_values(model), shared=False))
    assert out["cores"][0]["synaptic_memory_bytes"] == 288 and out["synaptic_memory_bytes"] == 288
    assert out["layers"][0]["synaptic_memory_bytes_expanded"] == 15488 == out["expanded"]["synaptic_memory_bytes"]
    # sharing switched off in the data: the kernel layer is placed synapse by synapse
    off = {**lim, "shared_convolution_weights": 0}
    assert all(c.tile is None for c in partition(layers, off)[0])


def test_shared_tiling_saves_cores():
    """A ResNet-stage 3x3 conv 64 -> 64 on 32x32: 32 tiles of 64 channels x 4 rows x 8 columns (fan-in 64 x 6
    x 10 = 3840) with weight sharing, against 277 synapse-bound blocks without."""
    k = Kernel(np.ones((64, 64, 3, 3)), (1, 1), (1, 1, 1, 1), (64, 32, 32), (64, 32, 32))
    layers = [MapLayer("conv", k.shape[0], [("input", k)],
                       np.arange(k.shape[0]).reshape(64, 32, 32).transpose(1, 2, 0).ravel())]
    lim = limit_values(load_core_model())
    shared, expanded = partition(layers, lim)[0], partition(layers, lim, shared=False)[0]
    assert len(shared) == 32 and len(expanded) == 277
    assert {(c.tile[1] - c.tile[0], c.tile[3] - c.tile[2], c.tile[5] - c.tile[4]) for c in shared} == {(64, 4, 8)}
    assert max(c.fan_in for c in shared) == 3840 and {c.weights for c in shared} == {36864}
    assert sum(c.synapses for c in shared) == sum(c.synapses for c in expanded) == k.synapses


def test_kernel_load_counts_the_expanded_synapses():
    """Per-core synaptic ops of a kernel plan (a binary-kernel convolution of the spikes) equal the expanded
    matrices' for the expanded blocks, and the hand sum over each tile's neurons for the shared tiles."""
    lim = {**limit_values(load_core_model()), "neurons_per_core": 40}
    plan, twin = _conv_plan(False), _conv_plan(True)
    layers, matrices = layers_from_plan(plan), layers_from_plan(twin)
    cores, _ = partition(layers, lim)
    expanded, _ = partition(layers, lim, shared=False)
    assert any(c.tile for c in cores) and not any(c.tile for c in expanded)
    rng = np.random.default_rng(3)
    T, B = 3, 2
    frames = rng.integers(0, 3, (T, B, 2, 9, 9)).astype(np.float32)
    spikes = {lay.name: (rng.random((T, B, *lay.shape)) < 0.3).astype(np.uint8) for lay in plan.layers}
    res = RunResult(np.zeros((T, B, 5)), {k: v.reshape(T, B, -1).sum(-1) for k, v in spikes.items()}, spikes)
    load = CoreLoad(layers, cores, "input", lim, expanded)
    load.update(res, frames)
    twin_load = CoreLoad(matrices, partition(matrices, lim)[0], "input", lim)
    twin_load.update(res, frames)
    assert np.array_equal(load.tallies[1].total, twin_load.tallies[0].total)
    assert np.array_equal(load.tallies[1].peak, twin_load.tallies[0].peak)
    source = {"input": (frames.reshape(T * B, -1) != 0), **{k: v.reshape(T * B, -1) for k, v in spikes.items()}}
    by_layer = {lay.name: lay for lay in matrices}
    for i, c in enumerate(cores):
        per_step = sum((w.tocsr()[c.rows] != 0).astype(np.int64) @ source[s].T.astype(np.int64)
                       for s, w in by_layer[c.layer].incoming).sum(axis=0)
        assert load.tallies[0].total[i] == per_step.sum() and load.tallies[0].peak[i] == per_step.max()
    mapping = CoreMapping(layers_from_plan(plan), plan.input_name)
    mapping.update(res, frames)
    out = mapping.result()
    assert out["load"]["synops_per_inference"] == pytest.approx(load.tallies[0].total.sum() / B)
    e, ex = out["load"]["energy_per_inference_pj"], out["expanded"]["load"]["energy_per_inference_pj"]
    assert e["synops"] == ex["synops"] and e["neuron_updates"] == ex["neuron_updates"]
    assert e["barrier_sync"] * out["expanded"]["cores_needed"] == ex["barrier_sync"] * out["cores_needed"]


def _sew_resnet18_layers() -> list[MapLayer]:
    """SEW-ResNet-18's spiking layers on a 2x128x128 input as kernels (all weights non-zero): conv1 7x7 stride 2
    to [64, 64, 64], the 2x2 pooling composed into the first block's conv (6x6 stride 2), four stages of two
    blocks, each block's second layer also fed by its input (identity, or a strided 1x1 / pooled conv)."""
    def conv(ci: int, co: int, k: int, s: int, p: int, shape: tuple[int, int, int]) -> Kernel:
        h = (shape[1] + 2 * p - k) // s + 1
        return Kernel(np.ones((co, ci, k, k)), (s, s), (p, p, p, p), shape, (co, h, h))

    layers: list[MapLayer] = []

    def add(name: str, conns: list[tuple[str, Kernel]]) -> tuple[str, tuple[int, int, int]]:
        shape = conns[0][1].out_shape
        hwc = np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()
        layers.append(MapLayer(name, len(hwc), conns, hwc))  # type: ignore[arg-type]
        return name, shape

    prev, shape = add("conv1", [("input", conv(2, 64, 7, 2, 3, (2, 128, 128)))])
    for stage, c in enumerate((64, 128, 256, 512)):
        for b in range(2):
            first, down = stage == 0 and b == 0, stage > 0 and b == 0
            s = 2 if first or down else 1
            a, a_shape = add(f"l{stage + 1}.{b}a", [(prev, conv(shape[0], c, 6 if first else 3, s,
                                                                2 if first else 1, shape))])
            skip = conv(shape[0], c, 2 if first else 1, s, 0, shape) if first or down else identity_kernel(shape)
            prev, shape = add(f"l{stage + 1}.{b}b", [(a, conv(c, c, 3, 1, 1, a_shape)), (prev, skip)])
    return layers


def test_sew_resnet18_at_128_maps_fast_without_expansion():
    """753,664 neurons, 0.63 G expanded synapses (over 7 GB as csr matrices): both partitions within a second
    (CPU time) and tens of MiB. Stage 4's 3x3 convs of 512 channels read 4608 sources per neuron, over the assumed
    4096."""
    lim = limit_values(load_core_model())
    layers = _sew_resnet18_layers()
    synapses = sum(w.synapses for lay in layers for _, w in lay.incoming)
    assert sum(lay.neurons for lay in layers) == 753_664 and synapses > 0.63e9
    t = time.process_time()
    cores, problems = partition(layers, lim)
    expanded, exp_problems = partition(layers, lim, shared=False, exact=False)
    assert time.process_time() - t < 1.0
    assert len(cores) < len(expanded) / 3
    assert problems[0].startswith("l4.0b: one neuron reads up to 4864 sources")
    assert exp_problems[0].startswith("l4.0b: neuron 2560 alone has fan-in 4864")
    for c in cores:
        assert c.neurons <= lim["neurons_per_core"] and c.fan_in <= lim["fan_in_per_core"]
        assert c.weights <= lim["shared_weights_per_core"]
    fresh = _sew_resnet18_layers()  # no geometry computed yet (the expanded partition then adds little)
    tracemalloc.start()
    partition(fresh, lim)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 48 * 2**20  # measured 27 MiB: per-neuron synapse counts, kernel masks, tile patterns


def test_the_core_plot_counts_cores_in_whole_numbers(tmp_path, monkeypatch):
    """cores.png: core numbers and core counts get integer ticks (it once labelled core 2.5)."""
    from neuromoco.deploy import report

    figs = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figs.append(fig) or str(path))
    cores = [{"synops_per_step_mean": float(m), "synops_per_step_max": 2.0 * m, "layer": "lif1" if i < 9 else "ro"}
             for i, m in enumerate([5, 9, 1, 7, 7, 3, 8, 2, 4, 6, 5, 1, 9, 3, 2, 8, 6])]
    report.plot_core_load(tmp_path / "cores.png", {"cores": cores})
    core_axis, histogram = figs[0].axes[:2]
    figs[0].canvas.draw()
    for ticks in (core_axis.get_xticks(), histogram.get_yticks()):
        assert len(ticks) > 1 and all(float(t).is_integer() for t in ticks)
