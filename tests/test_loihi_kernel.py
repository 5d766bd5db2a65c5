"""The Loihi plan keeps convolutions as shared kernels: composition against hand computations and matrices,
compiled plans against the chain of node matrices, the plan file, and the refusals before allocation."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuromoco.deploy.graph import normalize_graph
from neuromoco.deploy.loihi import compose as compose_mod
from neuromoco.deploy.loihi import kernel as kn
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.loihi.plan_io import load_plan, save_plan
from neuromoco.errors import UserError


def _lif(shape: tuple[int, ...]) -> nir.LIF:
    n = np.ones(shape)
    return nir.LIF(tau=n * 0.02, r=n, v_leak=n * 0, v_threshold=n * 0.5)


def _conv(rng: np.random.Generator, co: int, ci: int, k: int, stride: int, padding: int, hw: int) -> nir.Conv2d:
    return nir.Conv2d(input_shape=(hw, hw), weight=rng.normal(0.2, 0.5, (co, ci, k, k)), stride=stride,
                      padding=padding, dilation=1, groups=1, bias=np.zeros(co))


def test_sum_pool_then_conv_composes_into_the_kernel_a_hand_computation_gives():
    """1 channel, 4x4: a 2x2 sum pooling then the 2x2 kernel [[1, 2], [3, 4]] is one 4x4 stride-2 kernel whose
    2x2 blocks repeat each weight (each pooled value sums a block); the 1x1 output is the weighted block sum."""
    pool = kn.pool_kernel((2, 2), (2, 2), (0, 0), 1.0, (1, 4, 4), (1, 2, 2))
    conv = kn.conv_kernel(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), (1, 1), ((0, 0), (0, 0)), 1, (1, 2, 2), (1, 1, 1))
    both = kn.compose(pool, conv)
    assert both is not None and both.stride == (2, 2) and both.pad == (0, 0, 0, 0)
    np.testing.assert_array_equal(both.weight[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    x = torch.arange(16, dtype=torch.float64).reshape(1, 16)  # rows 0..3 of 0..15
    # blocks: (0+1+4+5)=10, (2+3+6+7)=18, (8+9+12+13)=42, (10+11+14+15)=50 -> 10*1 + 18*2 + 42*3 + 50*4 = 372
    assert float(both.apply(x)) == 372.0


def test_an_odd_map_is_cropped_where_the_pooling_drops_its_last_row():
    """17x17 sum-pooled to 8x8 then a padded 3x3 conv: the composed kernel must not read row 16 (the pooling
    dropped it; the conv's padding reads zero there): a crop to 16x16, then the padding."""
    rng = np.random.default_rng(1)
    pool = kn.pool_kernel((2, 2), (2, 2), (0, 0), 1.0, (3, 17, 17), (3, 8, 8))
    conv = kn.conv_kernel(rng.integers(-4, 5, (4, 3, 3, 3)), (1, 1), ((1, 1), (1, 1)), 1, (3, 8, 8), (4, 8, 8))
    both = kn.compose(pool, conv)
    assert both is not None and both.crop == (16, 16)
    assert ((both.matrix() - conv.matrix() @ pool.matrix()) != 0).nnz == 0
    x = torch.zeros(1, 3 * 17 * 17, dtype=torch.float64)
    x.view(3, 17, 17)[:, 16, :] = 1.0  # only the dropped row and column
    x.view(3, 17, 17)[:, :, 16] = 1.0
    assert float(both.apply(x).abs().sum()) == 0.0


@pytest.mark.parametrize("case", range(12))
def test_composition_equals_the_product_of_the_two_matrices_or_is_refused(case):
    """Random conv / pool pairs: a composed kernel is exactly ``B @ A`` (and counts its synapses right); a pair
    that cannot be one kernel (a padded conv after an overlapping conv) is None, never a wrong kernel."""
    rng = np.random.default_rng(100 + case)
    c, h = int(rng.integers(1, 4)), int(rng.integers(9, 15))
    ka, sa, pa = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    ha = (h + 2 * pa - ka) // sa + 1
    if rng.random() < 0.5:
        a = kn.pool_kernel((sa, sa), (sa, sa), (0, 0), 1.0, (c, h, h), (c, h // sa, h // sa))
        ha = h // sa
    else:
        a = kn.conv_kernel(rng.integers(-3, 4, (c, c, ka, ka)), (sa, sa), ((pa, pa), (pa, pa)), 1, (c, h, h),
                           (c, ha, ha))
    kb, sb, pb = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    hb = (ha + 2 * pb - kb) // sb + 1
    b = kn.conv_kernel(rng.integers(-3, 4, (2, c, kb, kb)), (sb, sb), ((pb, pb), (pb, pb)), 1, (c, ha, ha),
                       (2, hb, hb))
    both = kn.compose(a, b)
    product = sp.csr_matrix(b.matrix() @ a.matrix())
    product.eliminate_zeros()
    if both is None:
        assert pb > 0 or ka > sa  # refused only where padding or overlap can make it inexact
        return
    m = both.matrix()
    assert ((m - product) != 0).nnz == 0
    assert both.synapses == m.nnz


def test_groups_expand_and_the_synapse_count_needs_no_matrix():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(6, 2, 3, 3))
    k = kn.conv_kernel(w, (2, 2), ((1, 1), (1, 1)), 3, (6, 10, 10), (6, 5, 5))
    x = torch.randn(2, 600, dtype=torch.float64)
    want = torch.nn.functional.conv2d(x.view(2, 6, 10, 10), torch.as_tensor(w), stride=2, padding=1, groups=3)
    torch.testing.assert_close(k.apply(x), want.reshape(2, -1))
    assert k.synapses == k.matrix().nnz and k.parameters == w.size


def _cnn_graph(h: int) -> nir.NIRGraph:
    """input -> conv -> LIF -> sumpool -> conv -> LIF -> sumpool -> flatten -> affine -> output."""
    rng = np.random.default_rng(7)
    h2 = h // 2
    nodes = {"input": nir.Input(input_type=np.array([2, h, h])),
             "conv1": _conv(rng, 4, 2, 3, 1, 1, h), "lif1": _lif((4, h, h)),
             "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "conv2": _conv(rng, 6, 4, 3, 1, 1, h2), "lif2": _lif((6, h2, h2)),
             "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([6, h2 // 2, h2 // 2])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(size=(3, 6 * (h2 // 2) ** 2)), bias=np.zeros(3)),
             "output": nir.Output(output_type=np.array([3]))}
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)))


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_a_compiled_cnn_keeps_its_convolutions_as_kernels_equal_to_the_node_matrices(precision, monkeypatch):
    """Every conv layer's connection is a kernel (the pooling composed in), and it is the same map as the old
    composition of node matrices: compiled with kernels switched off (every map a matrix) the plan holds the
    same weights, expanded, and in fixed point (one scale per layer, as both then choose) the same integers.
    With a scale per neuron, a kernel's layer gets one per channel (the neurons share its mantissas)."""
    g = _cnn_graph(12)
    per_neuron = compile_graph(g, 1e-3, precision="fixed", input_shape=[2, 12, 12])
    for lay in per_neuron.layers:
        s = np.asarray(lay.scale).reshape(lay.shape[0], -1)
        assert np.all(s == s[:, :1]), lay.name
    plan = compile_graph(g, 1e-3, precision=precision, input_shape=[2, 12, 12], per_neuron_scale=False)
    kinds = [c.kernel is not None for lay in plan.layers for c in lay.conns]
    assert kinds and all(kinds)
    assert all(c.kernel is None for c in plan.readout.conns)  # flatten -> affine: a matrix
    conv2 = plan.layer("lif2").conns[0].kernel
    assert conv2.stride == (2, 2) and conv2.weight.shape[2:] == (6, 6)  # 2x2 sum pool composed into 3x3
    from neuromoco.deploy.loihi import linear_ops

    monkeypatch.setattr(linear_ops.LinearOp, "kernel", lambda self: None)
    monkeypatch.setattr(linear_ops.Conv, "kernel", lambda self: None)
    monkeypatch.setattr(linear_ops.AvgPool, "kernel", lambda self: None)
    flat = compile_graph(g, 1e-3, precision=precision, input_shape=[2, 12, 12], per_neuron_scale=False)
    for a, b in zip(plan.layers, flat.layers, strict=True):
        assert [c.weight_exp for c in a.conns] == [c.weight_exp for c in b.conns]
        for ca, cb in zip(a.conns, b.conns, strict=True):
            assert cb.kernel is None
            d = ca.expanded() - cb.expanded()
            assert np.abs(d.data).max(initial=0.0) <= (0 if precision == "fixed" else 1e-12), a.name
        np.testing.assert_array_equal(a.vth, b.vth)


def test_a_plan_with_kernels_survives_its_file(tmp_path):
    plan = compile_graph(_cnn_graph(12), 1e-3, precision="fixed", input_shape=[2, 12, 12])
    back = load_plan(save_plan(plan, tmp_path / "p.h5"))
    for a, b in zip(plan.layers, back.layers, strict=True):
        for ca, cb in zip(a.conns, b.conns, strict=True):
            assert cb.kernel is not None and cb.kernel.stride == ca.kernel.stride and cb.kernel.crop == ca.kernel.crop
            np.testing.assert_array_equal(ca.kernel.weight, cb.kernel.weight)
            assert ca.weight_exp == cb.weight_exp and ca.delay == cb.delay


def test_a_kernel_that_must_become_a_matrix_too_large_is_refused_before_it_is_built(monkeypatch):
    """conv -> conv with no neuron between (not one kernel: the second's padding) is expanded into a matrix,
    and past MAX_EXPANDED synapses that is refused in one line naming the node."""
    rng = np.random.default_rng(3)
    nodes = {"input": nir.Input(input_type=np.array([2, 16, 16])), "conv1": _conv(rng, 4, 2, 3, 1, 1, 16),
             "conv2": _conv(rng, 4, 4, 3, 1, 1, 16), "lif": _lif((4, 16, 16)),
             "output": nir.Output(output_type=np.array([4, 16, 16]))}
    g = nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)))
    plan = compile_graph(g, 1e-3, precision="float", input_shape=[2, 16, 16])
    assert plan.layer("lif").conns[0].kernel is None  # expanded: a small matrix is fine
    monkeypatch.setattr(compose_mod, "MAX_EXPANDED", 1000)
    with pytest.raises(UserError, match="'conv2'.*cannot stay a shared kernel"):
        compile_graph(normalize_graph(g), 1e-3, precision="float", input_shape=[2, 16, 16])


@pytest.mark.parametrize("case", range(8))
def test_the_numpy_convolution_lava_runs_equals_the_definition(case):
    """Kernel.apply_numpy (what PlanConv computes in Lava's forked processes, no torch) is Kernel.apply, exactly,
    with stride, padding and a crop."""
    rng = np.random.default_rng(200 + case)
    c, h, k, s, p = int(rng.integers(1, 4)), int(rng.integers(6, 14)), int(rng.integers(1, 5)), \
        int(rng.integers(1, 3)), int(rng.integers(0, 3))
    ho = (h + 2 * p - k) // s + 1
    conv = kn.conv_kernel(rng.integers(-9, 10, (3, c, k, k)), (s, s), ((p, p), (p, p)), 1, (c, h, h), (3, ho, ho))
    pool = kn.pool_kernel((2, 2), (2, 2), (0, 0), 1.0, (c, 2 * h + 1, 2 * h + 1), (c, h, h))
    for kern in (conv, kn.compose(pool, conv) or conv):
        x = rng.integers(-5, 6, (2, kern.shape[1])).astype(np.float64)
        np.testing.assert_array_equal(kern.apply_numpy(x), kern.apply(torch.from_numpy(x)).numpy())
