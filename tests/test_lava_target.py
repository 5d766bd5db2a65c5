"""Lava target: float reproduces the reference exactly, fixed point stays close, known failure modes.

Graphs are built with the ``nir`` API (random weights scaled to fire moderately) and compared with the
reference executor in float64 (Lava's floating-point simulation computes in float64). Each Lava run
starts a handful of processes (about a second), so the runs are short and few.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.deploy.targets.lava import TARGET
from neuromoco.errors import UserError

# ---------------------------------------------------------------------------------------------- graphs


def _lif(shape, tau=0.02, vth=1.0, v_leak=0.0, v_reset=None):
    kw = {} if v_reset is None else {"v_reset": np.broadcast_to(v_reset, shape).astype(float)}
    return nir.LIF(tau=np.full(shape, tau), r=np.ones(shape), v_leak=np.full(shape, v_leak),
                   v_threshold=np.broadcast_to(vth, shape).astype(float), **kw)


def conv_graph(seed: int = 0, C: int = 2, H: int = 8, n_out: int = 5, n_hid: int = 16) -> nir.NIRGraph:
    """input -> conv(bias) -> avgpool -> LIF -> sumpool -> conv -> LIF -> flatten -> affine -> LIF -> affine."""
    rng = np.random.default_rng(seed)
    h2 = H // 2
    nodes = {
        "input": nir.Input(input_type=np.array([C, H, H])),
        "conv1": nir.Conv2d(input_shape=(H, H), weight=rng.normal(0.35, 0.8, (6, C, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=rng.normal(0.05, 0.1, 6)),
        "pool1": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "lif1": _lif((6, h2, h2)),
        "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(input_shape=(h2 // 2, h2 // 2), weight=rng.normal(0.1, 0.35, (8, 6, 3, 3)), stride=1,
                            padding=1, dilation=1, groups=1, bias=np.zeros(8)),
        "lif2": _lif((8, h2 // 2, h2 // 2), tau=0.01),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([8, h2 // 2, h2 // 2])}),
        "fc": nir.Affine(weight=rng.normal(0.05, 0.3, (n_hid, 8 * (h2 // 2) ** 2)), bias=rng.normal(0, 0.05, n_hid)),
        "lif3": _lif((n_hid,)),
        "readout": nir.Affine(weight=rng.normal(0, 1.0, (n_out, n_hid)), bias=rng.normal(0, 0.1, n_out)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "conv1"), ("conv1", "pool1"), ("pool1", "lif1"), ("lif1", "pool2"), ("pool2", "conv2"),
             ("conv2", "lif2"), ("lif2", "flat"), ("flat", "fc"), ("fc", "lif3"), ("lif3", "readout"),
             ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def cuba_recurrent_graph(seed: int = 1, n_in: int = 12, n_hid: int = 20, n_out: int = 4) -> nir.NIRGraph:
    """snnTorch RSynaptic style: affine(bias) -> CubaLIF with a recurrent affine(bias) -> affine -> LI readout."""
    rng = np.random.default_rng(seed)
    h = (n_hid,)
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc_in": nir.Affine(weight=rng.normal(0.4, 0.8, (n_hid, n_in)), bias=rng.normal(0.05, 0.05, n_hid)),
        "cuba": nir.CubaLIF(tau_syn=rng.uniform(0.004, 0.01, h), tau_mem=rng.uniform(0.01, 0.03, h), r=np.ones(h),
                            v_leak=np.zeros(h), v_threshold=rng.uniform(0.6, 1.2, h), w_in=np.ones(h)),
        "rec": nir.Affine(weight=rng.normal(0.0, 0.5, (n_hid, n_hid)), bias=rng.normal(0.02, 0.02, n_hid)),
        "fc_out": nir.Affine(weight=rng.normal(0.0, 1.0, (n_out, n_hid)), bias=np.zeros(n_out)),
        "li": nir.LI(tau=np.full(n_out, 0.02), r=np.ones(n_out), v_leak=np.zeros(n_out)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc_in"), ("fc_in", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "fc_out"),
             ("fc_out", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def if_reset_graph(seed: int = 2, C: int = 2, H: int = 6) -> nir.NIRGraph:
    """Sinabs style: conv (no bias) -> IF with v_reset arrays and per-neuron thresholds -> sumpool -> linear -> IF."""
    rng = np.random.default_rng(seed)
    s1 = (4, H, H)
    nodes = {
        "input": nir.Input(input_type=np.array([C, H, H])),
        "conv": nir.Conv2d(input_shape=(H, H), weight=rng.normal(0.3, 0.6, (4, C, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "if1": nir.IF(r=np.ones(s1), v_threshold=rng.uniform(0.8, 1.5, s1), v_reset=np.full(s1, -0.25)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([4, H // 2, H // 2])}),
        "lin": nir.Linear(weight=rng.normal(0.1, 0.4, (6, 4 * (H // 2) ** 2))),
        "if2": nir.IF(r=np.ones(6), v_threshold=np.ones(6), v_reset=np.zeros(6)),
        "output": nir.Output(output_type=np.array([6])),
    }
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "lin"),
             ("lin", "if2"), ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def frames_for(graph_shape, T: int, B: int, rate: float = 0.6, seed: int = 0) -> np.ndarray:
    """Event-count-like frames: small non-negative integers."""
    return np.random.default_rng(seed).poisson(rate, size=(T, B, *graph_shape)).astype(np.float32)


def reference(graph: nir.NIRGraph, card: ModelCard, frames: np.ndarray):
    return ReferenceExecutor(graph, card.dt, dtype=torch.float64, record_spikes=True,
                             input_shape=card.input_shape).run(frames)


def assert_same_spikes(ref, res) -> None:
    assert set(res.spikes) == set(ref.spikes)
    for name, s in ref.spikes.items():
        assert s.sum() > 0, f"{name} should spike in this test"
        assert res.spikes[name].shape == s.shape, name
        diff = np.argwhere(res.spikes[name] != s)
        assert diff.size == 0, f"{name}: spikes differ first at [t, b, ...] = {diff[0].tolist()}"
        np.testing.assert_array_equal(res.spike_counts[name], ref.spike_counts[name])


# ------------------------------------------------------------------------------------- float: exact


def test_float_reproduces_reference_spikes_exactly_conv_net():
    """Conv/avgpool/sumpool/affine chains composed into Sparse/Dense; biases; batching both ways."""
    g = conv_graph()
    card = ModelCard(input_shape=[2, 8, 8], time_steps=10, dt=0.005)
    frames = frames_for((2, 8, 8), T=10, B=5)
    ref = reference(g, card, frames)
    # 5 samples, 2 side by side -> 3 groups one after another in one Lava run (reset between samples)
    res = TARGET.runner(g, card, precision="float", tile=2, record_spikes=True).run(frames)
    assert_same_spikes(ref, res)
    np.testing.assert_allclose(res.output, ref.output, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    # counts-only recording gives the same counts
    counts = TARGET.runner(g, card, precision="float", tile=8).run(frames)
    for name, c in ref.spike_counts.items():
        np.testing.assert_array_equal(counts.spike_counts[name], c)


def test_float_recurrent_cubalif_li_readout_and_update_order():
    """CubaLIF with a recurrent Affine (bias through the recurrent edge starts one step late), LI readout.

    Time-multiplexed samples must not leak recurrent spikes into the next sample. The current is updated
    before the voltage; a neuron that used the previous step's current (Norse's LIFCell order) would differ.
    """
    g = cuba_recurrent_graph()
    card = ModelCard(input_shape=[12], time_steps=12, dt=0.002)
    frames = frames_for((12,), T=12, B=4, rate=0.8, seed=3)
    ref = reference(g, card, frames)
    res = TARGET.runner(g, card, precision="float", tile=2, record_spikes=True).run(frames)
    assert_same_spikes(ref, res)
    np.testing.assert_allclose(res.output, ref.output, rtol=1e-9, atol=1e-9)

    # the hand computation of the same layer in both update orders: Lava matches current-first only
    node = g.nodes["cuba"]
    dt, x = card.dt, frames.reshape(12, 4, 12).astype(np.float64)
    W, b = g.nodes["fc_in"].weight, g.nodes["fc_in"].bias
    Wr, br = g.nodes["rec"].weight, g.nodes["rec"].bias
    ks, km = dt / node.tau_syn, dt / node.tau_mem

    def run(current_first: bool) -> np.ndarray:
        i, v, s = np.zeros((4, 20)), np.zeros((4, 20)), np.zeros((4, 20))
        out = []
        for t in range(12):
            inp = x[t] @ W.T + b + ((s @ Wr.T + br) if t > 0 else 0.0)
            i_new = i + ks * (inp - i)
            v = v + km * ((i_new if current_first else i) - v)
            i = i_new
            s = (v > node.v_threshold).astype(float)
            v = np.where(s > 0, 0.0, v)
            out.append(s)
        return np.stack(out)

    lava_spikes = res.spikes["cuba"].astype(float)
    np.testing.assert_array_equal(lava_spikes, run(True))
    assert not np.array_equal(lava_spikes, run(False)), "the update-order check should be sensitive"


def test_float_if_with_nonzero_v_reset_and_per_neuron_thresholds():
    """IF with v_reset = -0.25 (mapped by shifting the voltage origin) and per-neuron thresholds."""
    g = if_reset_graph()
    card = ModelCard(input_shape=[2, 6, 6], time_steps=8, dt=0.001)
    frames = frames_for((2, 6, 6), T=8, B=3, rate=0.7, seed=5)
    ref = reference(g, card, frames)
    res = TARGET.runner(g, card, precision="float", tile=3, record_spikes=True).run(frames)
    assert_same_spikes(ref, res)
    np.testing.assert_array_equal(res.output, ref.output)  # the output is the last layer's spikes
    plan = compile_graph(g, card.dt, input_shape=card.input_shape)
    if1 = plan.layer("if1")
    np.testing.assert_allclose(if1.v0, 0.25)  # reference starts at v = 0, i.e. v - v_reset = 0.25
    np.testing.assert_allclose(if1.vth, g.nodes["if1"].v_threshold.reshape(-1) + 0.25)
    assert not if1.stock and plan.layer("if2").stock


def test_lif_v_leak_v_reset_shift_bias_and_time_constants():
    """LIF with v_leak and v_reset: the leak toward v_reset becomes a bias; dv = dt / tau for either dt."""
    rng = np.random.default_rng(7)
    nodes = {
        "input": nir.Input(input_type=np.array([6])),
        "fc": nir.Affine(weight=rng.normal(0.3, 0.5, (8, 6)), bias=rng.normal(0.0, 0.05, 8)),
        "lif": _lif((8,), tau=0.02, vth=0.6, v_leak=0.1, v_reset=0.2),
        "ro": nir.Linear(weight=rng.normal(0, 1, (3, 8))),
        "output": nir.Output(output_type=np.array([3])),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "ro"), ("ro", "output")])
    frames = frames_for((6,), T=15, B=2, rate=0.9, seed=8)
    results = {}
    for dt in (0.001, 0.004):
        card = ModelCard(input_shape=[6], time_steps=15, dt=dt)
        plan = compile_graph(g, dt, input_shape=[6])
        lay = plan.layer("lif")
        np.testing.assert_allclose(lay.dv, dt / 0.02)
        np.testing.assert_allclose(lay.du, 1.0)
        # membrane bias: k (v_leak - v_reset) plus the Affine bias times the input gain k*r
        k = dt / 0.02
        np.testing.assert_allclose(lay.bias_mant, k * (0.1 - 0.2) + k * nodes["fc"].bias)
        ref = reference(g, card, frames)
        res = TARGET.runner(g, card, precision="float", tile=2, record_spikes=True).run(frames)
        assert_same_spikes(ref, res)
        results[dt] = res.spikes["lif"]
    assert not np.array_equal(results[0.001], results[0.004]), "dt must matter"


def test_conv1d_composes_like_any_linear_op():
    rng = np.random.default_rng(11)
    nodes = {
        "input": nir.Input(input_type=np.array([2, 10])),
        "conv": nir.Conv1d(input_shape=10, weight=rng.normal(0.4, 0.6, (3, 2, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.full(3, 0.05)),
        "lif": _lif((3, 10), tau=0.01),
        "output": nir.Output(output_type=np.array([3, 10])),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")])
    card = ModelCard(input_shape=[2, 10], time_steps=6, dt=0.002)
    frames = frames_for((2, 10), T=6, B=2, rate=1.0, seed=12)
    ref = reference(g, card, frames)
    res = TARGET.runner(g, card, tile=1, record_spikes=True).run(frames)
    assert_same_spikes(ref, res)


# ------------------------------------------------------------------------------------------ fixed point


def class_frames(shape, T: int, B: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a toy task: each class has its own event-rate pattern, samples are Poisson counts."""
    rng = np.random.default_rng(seed)
    owner = np.random.default_rng(100).integers(0, n_classes, size=shape)  # each pixel belongs to one class
    protos = 0.05 + 1.5 * (owner[None] == np.arange(n_classes).reshape(-1, *([1] * len(shape))))
    labels = rng.integers(0, n_classes, size=B)
    return rng.poisson(protos[labels][None].repeat(T, 0)).astype(np.float32), labels


def fit_readout(g: nir.NIRGraph, card: ModelCard, hidden: str, readout: str, n_classes: int, seed: int) -> None:
    """Train the readout by least squares on the reference's hidden spike counts (a 'trained' model)."""
    frames, labels = class_frames(tuple(card.input_shape), card.time_steps, 80, n_classes, seed)
    feats = reference(g, card, frames).spikes[hidden].reshape(card.time_steps, 80, -1).sum(0).astype(float)
    X = np.concatenate([feats, np.ones((80, 1))], axis=1)
    sol = np.linalg.solve(X.T @ X + 1.0 * np.eye(X.shape[1]), X.T @ np.eye(n_classes)[labels])  # ridge
    g.nodes[readout].weight = sol[:-1].T.copy()
    g.nodes[readout].bias = sol[-1].copy() / card.time_steps


def classifier_graph(seed: int = 0, C: int = 2, H: int = 8, ch: int = 8, n_hid: int = 32,
                     n_out: int = 5) -> nir.NIRGraph:
    """input -> conv(bias) -> avgpool -> LIF -> flatten -> affine -> LIF -> affine readout (to be fitted)."""
    rng = np.random.default_rng(seed)
    h = H // 2
    nodes = {
        "input": nir.Input(input_type=np.array([C, H, H])),
        "conv1": nir.Conv2d(input_shape=(H, H), weight=rng.normal(0.3, 0.8, (ch, C, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=rng.normal(0.0, 0.1, ch)),
        "pool1": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "lif1": _lif((ch, h, h)),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([ch, h, h])}),
        "fc": nir.Affine(weight=rng.normal(0.1, 0.3, (n_hid, ch * h * h)), bias=np.zeros(n_hid)),
        "lif2": _lif((n_hid,)),
        "readout": nir.Affine(weight=np.zeros((n_out, n_hid)), bias=np.zeros(n_out)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "conv1"), ("conv1", "pool1"), ("pool1", "lif1"), ("lif1", "flat"), ("flat", "fc"),
             ("fc", "lif2"), ("lif2", "readout"), ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_fixed_point_close_to_reference_and_reports_quantization(tmp_path):
    """>= 99 % prediction agreement and per-layer spike counts within 2 % on a small trained classifier.

    Prediction agreement needs a model whose decisions have margins, as a trained one has: the readout
    is fitted (ridge regression) on the reference's spike counts of a toy task. (A network of random
    weights is chaotic at the spike level: any perturbation, 8-bit weights or 1e-4 noise, moves many spike
    times; spike *counts* stay within a percent.)
    """
    g = classifier_graph()
    card = ModelCard(input_shape=[2, 8, 8], time_steps=12, dt=0.005)
    fit_readout(g, card, "lif2", "readout", 5, seed=21)
    frames, labels = class_frames((2, 8, 8), 12, 128, 5, seed=22)
    ref = reference(g, card, frames)
    assert np.mean(ref.predictions == labels) > 0.9  # the readout learned the task
    path = TARGET.export(g, card, tmp_path, precision="fixed")
    report = json.loads((tmp_path / "lava_export.json").read_text())
    assert report["precision"] == "fixed"
    for lay in report["layers"]:
        q = lay["quantization"]
        assert 0 < q["scale_min"] <= q["scale_max"]
        for c in q["connections"].values():
            assert c["rel_weight_error"] < 0.02 and -256 <= c["mantissa_min"] and c["mantissa_max"] <= 255
            if c["sign_mode"] == "mixed":
                assert c["mantissa_min"] % 2 == 0 and c["mantissa_max"] % 2 == 0
        assert 0 <= q["vth_rel_error"] < 1e-3
    res = TARGET.load(path, tile=32).run(frames)
    agreement = float(np.mean(res.predictions == ref.predictions))
    assert agreement >= 0.99, agreement
    for name, c in ref.spike_counts.items():
        total = c.sum()
        assert total > 1000
        assert abs(res.spike_counts[name].sum() - total) / total <= 0.02, name
    # the same with one scale per layer (Lava's own LIFReset processes) and with 16-bit split weights
    for opts in ({"scale": "layer"}, {"weight_bits": 16}):
        runner = TARGET.runner(g, card, precision="fixed", tile=64, **opts)
        if "scale" in opts:
            assert all(lay.stock for lay in runner.plan.layers)
        res = runner.run(frames)
        assert np.mean(res.predictions == ref.predictions) >= 0.99, opts


def test_fixed_point_rows_use_the_full_mantissa_and_worst_case_states_fit_24_bits():
    """The scale rule: every row's largest weight is the largest mantissa (254, unless the 24-bit state
    bound holds the row back; a kernel's rows share their channel's mantissas, so per output channel), and on
    the worst-case input -- every excitatory (or every inhibitory) source firing on every step -- the integer
    current and voltage stay inside 24 bits."""
    from neuromoco.deploy.loihi.fixed_point import ACT_SHIFT, MANT_MIXED, STATE_MAX

    g = classifier_graph()
    g.nodes["readout"].weight = np.random.default_rng(3).normal(0, 1, g.nodes["readout"].weight.shape)
    card = ModelCard(input_shape=[2, 8, 8], time_steps=12, dt=0.005)
    plan = compile_graph(g, card.dt, precision="fixed", input_shape=card.input_shape)
    for lay in plan.layers:
        (conn,) = [c for c in lay.conns if c.nnz]
        m = conn.expanded()
        if conn.kernel is not None:
            full = conn.kernel.channel_abs_max() == MANT_MIXED
        else:
            full = np.asarray(abs(m).max(axis=1).todense()).ravel() == MANT_MIXED
        assert full.mean() >= 0.99, (lay.name, full.mean())
        w = m.toarray() * 2.0 ** conn.weight_exp  # integer synaptic input per source spike, before << 6
        if conn.source == plan.input_name:
            step = np.abs(w).sum(axis=1) * plan.input_max * plan.input_scale
        else:
            step = np.maximum(np.clip(w, 0, None).sum(axis=1), -np.clip(w, None, 0).sum(axis=1))
        current = step * (1 << ACT_SHIFT)
        du = (lay.du + 1) / 4096  # the current's decay fraction (Lava adds one)
        dv = lay.dv / 4096
        assert np.all(current / np.maximum(du, 0.5) < STATE_MAX), lay.name
        voltage = current / np.maximum(du, 0.5) / np.maximum(dv, 0.5) + lay.vth * (1 << ACT_SHIFT)
        assert np.all(voltage < STATE_MAX), lay.name


def test_fixed_point_recurrent_and_if_graphs_stay_close():
    for g, shape, dt, T in ((cuba_recurrent_graph(), (12,), 0.002, 12), (if_reset_graph(), (2, 6, 6), 0.001, 8)):
        card = ModelCard(input_shape=list(shape), time_steps=T, dt=dt)
        frames = frames_for(shape, T=T, B=6, rate=0.7, seed=13)
        ref = reference(g, card, frames)
        res = TARGET.runner(g, card, precision="fixed", tile=6).run(frames)
        for name, c in ref.spike_counts.items():
            assert abs(res.spike_counts[name].sum() - c.sum()) <= max(3, 0.03 * c.sum()), name


# ------------------------------------------------------------------------------------------- refusals


def _with_node(name: str, node: nir.NIRNode) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=np.array([4])), "fc": nir.Linear(weight=np.eye(4)), name: node,
             "output": nir.Output(output_type=np.array([4]))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", name), (name, "output")])


def test_threshold_node_is_refused_by_name():
    g = _with_node("thr", nir.Threshold(threshold=np.full(4, 0.5)))
    with pytest.raises(UserError, match=r"'thr' \(Threshold\) cannot run on Lava"):
        compile_graph(g, 0.001, input_shape=[4])


def test_skip_connection_is_padded_and_two_layer_loop_is_refused():
    eye = np.eye(4)
    skip = nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([4])), "a": nir.Linear(weight=eye), "l1": _lif((4,)),
        "b": nir.Linear(weight=eye), "l2": _lif((4,)), "c": nir.Linear(weight=eye),
        "output": nir.Output(output_type=np.array([4]))},
        edges=[("input", "a"), ("a", "l1"), ("l1", "b"), ("b", "l2"), ("input", "c"), ("c", "l2"),
               ("l2", "output")])
    plan = compile_graph(skip, 0.001, input_shape=[4])  # the Input's short path waits one step (test_lava_skip.py)
    assert {c.source: c.delay for c in plan.layer("l2").conns} == {"l1": 0, "input": 1}
    loop = nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([4])), "a": nir.Linear(weight=eye), "l1": _lif((4,)),
        "b": nir.Linear(weight=eye), "l2": _lif((4,)), "back": nir.Linear(weight=eye),
        "output": nir.Output(output_type=np.array([4]))},
        edges=[("input", "a"), ("a", "l1"), ("l1", "b"), ("b", "l2"), ("l2", "back"), ("back", "l1"),
               ("l2", "output")])
    with pytest.raises(UserError, match=r"'l1' receives a recurrent input from 'l2'"):
        compile_graph(loop, 0.001, input_shape=[4])


def test_fixed_point_refuses_nonspiking_hidden_layer_and_bad_decay():
    eye = np.eye(4)
    li_hidden = nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([4])), "a": nir.Linear(weight=eye),
        "li": nir.LI(tau=np.full(4, 0.01), r=np.ones(4), v_leak=np.zeros(4)), "b": nir.Linear(weight=eye),
        "l2": _lif((4,)), "output": nir.Output(output_type=np.array([4]))},
        edges=[("input", "a"), ("a", "li"), ("li", "b"), ("b", "l2"), ("l2", "output")])
    compile_graph(li_hidden, 0.001, input_shape=[4])  # float: fine
    with pytest.raises(UserError, match=r"'li' \(LI\) is non-spiking and feeds 'l2'"):
        compile_graph(li_hidden, 0.001, precision="fixed", input_shape=[4])
    with pytest.raises(UserError, match=r"decay dv = dt/tau outside \[0, 1\]"):
        compile_graph(_with_node("lif", _lif((4,), tau=0.001)), 0.002, precision="fixed", input_shape=[4])


def test_export_load_round_trip_and_precision_mismatch(tmp_path):
    g = if_reset_graph()
    card = ModelCard(input_shape=[2, 6, 6], time_steps=8, dt=0.001)
    path = TARGET.export(g, card, tmp_path / "fx", precision="fixed")
    assert path.name == "lava_network.h5" and (tmp_path / "fx" / "lava_export.json").exists()
    with pytest.raises(UserError, match="fixed-point network"):
        TARGET.load(path, precision="float")
    plan = TARGET.load(tmp_path / "fx", precision="fixed").plan
    direct = compile_graph(g, card.dt, precision="fixed", input_shape=card.input_shape,
                           sign_split=True)  # the target's default (LavaOptions.sign_split)
    for a, b in zip(plan.layers, direct.layers, strict=True):
        assert a.name == b.name and a.delay == b.delay
        for k in ("du", "dv", "vth", "bias_mant", "bias_exp", "v0"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        for ca, cb in zip(a.conns, b.conns, strict=True):
            assert (ca.expanded() != cb.expanded()).nnz == 0 and ca.weight_exp == cb.weight_exp
            assert (ca.kernel is None) == (cb.kernel is None)


def test_lava_forks_its_processes_with_nothing_left_to_collect():
    """Garbage is collected before Lava forks, and the collector is frozen meanwhile: a child never runs an inherited
    object's destructor (an onnxruntime session's hung the suite once)."""
    import gc
    import weakref

    from neuromoco.deploy.targets.lava.runner import _no_inherited_garbage

    class Cycle:
        pass

    garbage = Cycle()
    garbage.self = garbage  # type: ignore[attr-defined]
    ref = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    with _no_inherited_garbage():
        assert ref() is None
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == before
