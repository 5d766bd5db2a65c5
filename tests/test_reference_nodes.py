"""Each stateless node of the reference executor against PyTorch's own operator, and shape inference."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import torch
import torch.nn.functional as F

from neuromoco.deploy.graph import node_shapes
from neuromoco.deploy.reference_executor import ReferenceExecutor


def _chain(input_shape: list[int], *nodes: nir.NIRNode) -> nir.NIRGraph:
    named = {"input": nir.Input(input_type=np.array(input_shape))}
    for i, n in enumerate(nodes):
        named[f"n{i}"] = n
    named["output"] = nir.Output(output_type=None)
    names = list(named)
    return nir.NIRGraph(nodes=named, edges=list(itertools.pairwise(names)), type_check=False)


def _out(graph: nir.NIRGraph, x: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return ReferenceExecutor(graph, None, dtype=dtype).trace(x)["output"]


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def test_conv2d_geometries():
    x = _x(3, 2, 4, 9, 11)
    xt = torch.from_numpy(x).reshape(6, 4, 9, 11)
    for stride, padding, dilation, groups in [(1, 1, 1, 1), (2, 0, 1, 2), ((1, 2), (2, 1), (2, 1), 4),
                                              (1, "same", 1, 1), (1, "valid", 1, 1)]:
        w = _x(8, 4 // groups, 3, 4)
        b = _x(8)
        node = nir.Conv2d(input_shape=None, weight=w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                          bias=b)
        got = _out(_chain([4, 9, 11], node), x)
        want = F.conv2d(xt, torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation, groups)
        assert got.shape[2:] == want.shape[1:]
        assert torch.equal(got.reshape(want.shape), want), (stride, padding, dilation, groups)


def test_conv1d():
    x = _x(2, 3, 2, 20)
    w, b = _x(5, 2, 3), _x(5)
    node = nir.Conv1d(input_shape=20, weight=w, stride=2, padding=1, dilation=1, groups=1, bias=b)
    got = _out(_chain([2, 20], node), x)
    want = F.conv1d(torch.from_numpy(x).reshape(6, 2, 20), torch.from_numpy(w), torch.from_numpy(b), 2, 1)
    assert torch.equal(got.reshape(want.shape), want)


def test_pooling_with_padding():
    x = _x(2, 2, 3, 9, 9)
    xt = torch.from_numpy(x).reshape(4, 3, 9, 9)
    avg = nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1]))
    assert torch.equal(_out(_chain([3, 9, 9], avg), x).reshape(4, 3, 5, 5), F.avg_pool2d(xt, 3, 2, 1))
    sp = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    got = _out(_chain([3, 9, 9], sp), x, dtype=torch.float64).reshape(4, 3, 4, 4)
    want = xt.double()[:, :, :8, :8].reshape(4, 3, 4, 2, 4, 2).sum((3, 5))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_flatten_dims_exclude_batch_and_affine_on_last_dim():
    x = _x(2, 3, 4, 5, 6)
    g = _chain([4, 5, 6], nir.Flatten(input_type=None, start_dim=1, end_dim=-1),
               nir.Affine(weight=_x(7, 30), bias=_x(7)))
    shapes = node_shapes(g)
    assert shapes["n0"] == (4, 30) and shapes["n1"] == (4, 7)
    g2 = _chain([4, 5, 6], nir.Flatten(input_type=None, start_dim=0, end_dim=1))
    assert node_shapes(g2)["n0"] == (20, 6)
    got = _out(g2, x)
    assert torch.equal(got, torch.from_numpy(x).reshape(2, 3, 20, 6))


def test_scale_and_threshold():
    x = _x(3, 2, 4)
    s = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    g = _chain([4], nir.Scale(scale=s), nir.Threshold(threshold=np.array([0.0, 0.5, -0.1, 1.0], np.float32)))
    got = _out(g, x).numpy()
    np.testing.assert_array_equal(got, ((x * s) > np.array([0.0, 0.5, -0.1, 1.0], np.float32)).astype(np.float32))


def test_linear_without_bias():
    x = _x(4, 3, 6)
    w = _x(2, 6)
    got = _out(_chain([6], nir.Linear(weight=w)), x)
    assert torch.equal(got, F.linear(torch.from_numpy(x), torch.from_numpy(w)))
