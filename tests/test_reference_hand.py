"""The reference executor against membrane traces computed by hand, step by step, for tiny graphs.

Each graph is Input -> Affine -> neuron -> Output with two or three neurons. The expected traces are
written out in numpy one step at a time with the equations of deploy/semantics.py, in the same
arithmetic order, so the runs agree exactly (weights and inputs are dyadic, so the synaptic sums are exact whatever
order a matrix product adds them in); a few cases are also spelled out as literal numbers.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from neuromoco.deploy.reference_executor import ReferenceExecutor


def _graph(neuron: nir.NIRNode, w: np.ndarray, b: np.ndarray | None = None) -> nir.NIRGraph:
    n_out, n_in = w.shape
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n_in])),
               "syn": nir.Affine(weight=w, bias=np.zeros(n_out) if b is None else b),
               "neuron": neuron,
               "output": nir.Output(output_type=np.array([n_out]))},
        edges=[("input", "syn"), ("syn", "neuron"), ("neuron", "output")], type_check=False)


def _run(graph: nir.NIRGraph, x: np.ndarray, dt: float | None, dtype=torch.float64):
    ex = ReferenceExecutor(graph, dt, dtype=dtype, record_states=True, record_spikes=True)
    res = ex.run(x)
    return res, ex.states["neuron"]


def test_if_literal_trace():
    """IF, r = 1, threshold 1, reset to 0: a constant input 0.4 fires every third step."""
    g = _graph(nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)), np.array([[0.4]]))
    res, st = _run(g, np.full((7, 1, 1), 1.0), dt=None)
    np.testing.assert_allclose(st["v_pre"][:, 0, 0], [0.4, 0.8, 1.2, 0.4, 0.8, 1.2, 0.4], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(res.output[:, 0, 0], [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_allclose(st["v"][:, 0, 0], [0.4, 0.8, 0.0, 0.4, 0.8, 0.0, 0.4], rtol=0, atol=1e-15)


def test_if_two_neurons_with_r_and_v_reset():
    w = np.array([[1.0, -0.5], [0.3, 0.8]])
    r = np.array([1.0, 0.5])
    th = np.array([1.0, 0.6])
    v_reset = np.array([0.2, -0.1])  # arrays, as Sinabs writes them
    g = _graph(nir.IF(r=r, v_threshold=th, v_reset=v_reset), w)
    rng = np.random.default_rng(1)
    x = rng.poisson(0.8, size=(15, 3, 2)).astype(np.float64)
    res, st = _run(g, x, dt=None)
    v = np.zeros((3, 2))
    for t in range(15):
        i_in = x[t] @ w.T
        v = v + r * i_in
        assert np.array_equal(st["v_pre"][t], v), t
        s = v > th
        assert np.array_equal(res.output[t], s.astype(float)), t
        v = np.where(s, v_reset, v)
        assert np.array_equal(st["v"][t], v), t
    assert res.output.sum() > 3  # the reset is exercised
    np.testing.assert_array_equal(res.spike_counts["neuron"], res.output.sum(-1).astype(np.int64))


def test_lif_literal_trace():
    """LIF with dt/tau = 0.5, r = 1, v_leak = 0, threshold 1: v <- v + 0.5 (I - v)."""
    g = _graph(nir.LIF(tau=np.full(1, 2e-3), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1),
                       v_reset=np.zeros(1)), np.array([[1.5]]))
    res, st = _run(g, np.ones((5, 1, 1)), dt=1e-3)
    # 0.75, 1.125 (fires, reset 0), 0.75, 1.125 (fires), 0.75
    np.testing.assert_allclose(st["v_pre"][:, 0, 0], [0.75, 1.125, 0.75, 1.125, 0.75], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(res.output[:, 0, 0], [0, 1, 0, 1, 0])


@pytest.mark.parametrize("dtype,npd", [(torch.float64, np.float64), (torch.float32, np.float32)])
def test_lif_three_neurons(dtype, npd):
    dt = 1e-3
    tau = np.array([2e-3, 5e-3, 1e-2])
    r = np.array([1.0, 2.0, 0.5])
    v_leak = np.array([0.0, 0.1, -0.2])
    th = np.array([0.5, 0.8, 0.3])
    v_reset = np.array([0.0, -0.3, 0.05])
    w = np.array([[1.0, 0.25], [0.375, 0.625], [-0.25, 1.125]])
    g = _graph(nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=th, v_reset=v_reset), w)
    x = np.random.default_rng(2).poisson(1.0, size=(25, 2, 2)).astype(np.float64)
    res, st = _run(g, x, dt=dt, dtype=dtype)
    # by hand, in the compute precision: k = dt * (1/tau) with 1/tau rounded first (as Norse forms it)
    k = (npd(dt) * (1.0 / tau).astype(npd)).astype(npd)
    wc, rc, vl, thc, vr = (a.astype(npd) for a in (w, r, v_leak, th, v_reset))
    v = np.zeros((2, 3), dtype=npd)
    for t in range(25):
        i_in = (x[t].astype(npd) @ wc.T).astype(npd)
        v = v + k * ((rc * i_in + vl) - v)
        assert np.array_equal(st["v_pre"][t], v), t
        s = v > thc
        np.testing.assert_array_equal(res.output[t], s.astype(np.float64))
        v = np.where(s, vr, v)
    assert res.output[:, :, 0].sum() > 0 and res.output[:, :, 2].sum() > 0


def test_lif_exact_float64():
    """In float64, with the same order of operations, the match is bit for bit."""
    dt, tau, r, vl = 1e-3, np.array([3e-3, 7e-3]), np.array([1.0, 1.5]), np.array([0.05, 0.0])
    th, vr = np.array([0.4, 0.6]), np.array([0.0, 0.1])
    w = np.array([[0.75, 0.125, -0.25], [0.25, 0.5, 0.375]])
    g = _graph(nir.LIF(tau=tau, r=r, v_leak=vl, v_threshold=th, v_reset=vr), w)
    x = np.random.default_rng(3).integers(0, 16, size=(30, 4, 3)) / 8.0
    res, st = _run(g, x, dt=dt)
    k = dt * (1.0 / tau)
    v = np.zeros((4, 2))
    for t in range(30):
        v = v + k * ((r * (x[t] @ w.T) + vl) - v)
        assert np.array_equal(st["v_pre"][t], v)
        s = v > th
        v = np.where(s, vr, v)
        assert np.array_equal(st["v"][t], v) and np.array_equal(res.output[t], s)
    assert 0 < res.output.sum() < res.output.size


def test_cubalif_current_before_voltage():
    """CubaLIF: the current is updated first and the membrane sees the *new* current (no lag)."""
    dt = 1e-3
    tau_syn, tau_mem = np.array([2e-3, 4e-3]), np.array([4e-3, 1e-2])
    r, vl, th, vr = np.array([1.0, 2.0]), np.zeros(2), np.array([0.3, 0.5]), np.array([0.0, -0.1])
    w_in = np.array([1.0, 0.5])
    w = np.array([[0.875, 0.375], [0.25, 1.125]])
    g = _graph(nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=vl, v_threshold=th, v_reset=vr,
                           w_in=w_in), w)
    x = np.random.default_rng(4).poisson(0.7, size=(30, 3, 2)).astype(np.float64)
    res, st = _run(g, x, dt=dt)
    ks, km = dt * (1.0 / tau_syn), dt * (1.0 / tau_mem)
    i = np.zeros((3, 2))
    v = np.zeros((3, 2))
    for t in range(30):
        i = i + ks * ((w_in * (x[t] @ w.T)) - i)
        v = v + km * ((r * i + vl) - v)
        assert np.array_equal(st["i"][t], i)
        assert np.array_equal(st["v_pre"][t], v)
        s = v > th
        assert np.array_equal(res.output[t], s)
        v = np.where(s, vr, v)
        assert np.array_equal(st["v"][t], v)
    assert res.output.sum() > 2


def test_cubalif_literal_first_steps():
    """tau_syn = tau_mem = 2 dt (k = 0.5), input 1 at step 0 only: i = 0.5, 0.25, ...; v = 0.25, 0.25, ..."""
    g = _graph(nir.CubaLIF(tau_syn=np.full(1, 2e-3), tau_mem=np.full(1, 2e-3), r=np.ones(1), v_leak=np.zeros(1),
                           v_threshold=np.full(1, 10.0)), np.array([[1.0]]))
    x = np.zeros((4, 1, 1))
    x[0] = 1.0
    _, st = _run(g, x, dt=1e-3)
    np.testing.assert_array_equal(st["i"][:, 0, 0], [0.5, 0.25, 0.125, 0.0625])
    # v1 = 0 + 0.5 (0.5 - 0) = 0.25; v2 = 0.25 + 0.5 (0.25 - 0.25) = 0.25; v3 = 0.25 + 0.5 (0.125 - 0.25)
    np.testing.assert_array_equal(st["v"][:, 0, 0], [0.25, 0.25, 0.1875, 0.125])


def test_li_and_cubali_output_voltage():
    dt = 1e-3
    x = np.random.default_rng(5).integers(0, 16, size=(10, 2, 2)) / 8.0
    w = np.array([[1.0, 0.5], [0.25, 0.375]])
    g = _graph(nir.LI(tau=np.array([2e-3, 4e-3]), r=np.array([1.0, 2.0]), v_leak=np.array([0.0, 0.1])), w)
    res, _ = _run(g, x, dt=dt)
    v = np.zeros((2, 2))
    k = dt * (1.0 / np.array([2e-3, 4e-3]))
    for t in range(10):
        v = v + k * ((np.array([1.0, 2.0]) * (x[t] @ w.T) + np.array([0.0, 0.1])) - v)
        assert np.array_equal(res.output[t], v)
    g = _graph(nir.CubaLI(tau_syn=np.array([2e-3, 3e-3]), tau_mem=np.array([4e-3, 4e-3]), r=np.ones(2),
                          v_leak=np.zeros(2)), w)
    res, _ = _run(g, x, dt=dt)
    i, v = np.zeros((2, 2)), np.zeros((2, 2))
    ks, km = dt * (1.0 / np.array([2e-3, 3e-3])), dt * (1.0 / np.array([4e-3, 4e-3]))
    for t in range(10):
        i = i + ks * ((x[t] @ w.T) - i)
        v = v + km * ((i + 0.0) - v)
        assert np.array_equal(res.output[t], v)
    assert not ReferenceExecutor(g, dt).spiking  # LI / CubaLI emit no spikes


def test_recurrent_edge_is_delayed_by_one_step():
    """Input -> Affine -> IF -> Linear(w_rec) -> IF: the neuron at step t gets W x[t] + w_rec s[t-1]."""
    w, w_rec = np.array([[0.6], [0.5]]), np.array([[0.0, 0.7], [-0.4, 0.0]])
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1])), "syn": nir.Affine(weight=w, bias=np.zeros(2)),
               "neuron": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
               "rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "syn"), ("syn", "neuron"), ("neuron", "rec"), ("rec", "neuron"), ("neuron", "output")],
        type_check=False)
    ex = ReferenceExecutor(g, None, dtype=torch.float64, record_states=True)
    assert ex.structure.recurrent == [("rec", "neuron")]
    x = np.random.default_rng(6).poisson(1.0, size=(20, 2, 1)).astype(np.float64)
    res = ex.run(x)
    v, s_prev = np.zeros((2, 2)), np.zeros((2, 2))
    for t in range(20):
        v = v + ((x[t] @ w.T) + (s_prev @ w_rec.T))
        s = v > 1.0
        assert np.array_equal(res.output[t], s), t
        v = np.where(s, 0.0, v)
        s_prev = s.astype(float)
    # the recurrence matters: without it the spikes differ
    g_ff = nir.NIRGraph(nodes={k: n for k, n in g.nodes.items() if k != "rec"},
                        edges=[e for e in g.edges if "rec" not in e], type_check=False)
    assert not np.array_equal(ReferenceExecutor(g_ff, None, dtype=torch.float64).run(x).output, res.output)


def test_edges_into_one_node_add_up():
    w1, w2 = np.array([[0.5, 0.0]]), np.array([[0.0, 0.25]])
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=w1), "b": nir.Linear(weight=w2),
               "neuron": nir.IF(r=np.ones(1), v_threshold=np.full(1, 0.9)), "output": nir.Output(np.array([1]))},
        edges=[("input", "a"), ("input", "b"), ("a", "neuron"), ("b", "neuron"), ("neuron", "output")],
        type_check=False)
    x = np.ones((4, 1, 2))
    res = ReferenceExecutor(g, None, dtype=torch.float64, record_states=True).run(x)
    np.testing.assert_array_equal(res.output[:, 0, 0], [0, 1, 0, 1])  # 0.75, 1.5 -> 0, 0.75, 1.5


def test_state_resets_per_run_and_batch_independent():
    g = _graph(nir.LIF(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, 0.5)),
               np.random.default_rng(7).normal(size=(3, 4)))
    ex = ReferenceExecutor(g, 1e-3)
    x = np.random.default_rng(8).poisson(1.0, size=(12, 5, 4)).astype(np.float32)
    whole = ex.run(x)
    again = ex.run(x)
    np.testing.assert_array_equal(whole.output, again.output)
    single = [ex.run(x[:, i:i + 1]).output for i in range(5)]
    np.testing.assert_array_equal(np.concatenate(single, axis=1), whole.output)
