"""Pooling emitters: SumPool2d -> depthwise ``Conv`` with a kernel of ones (exact on spikes); AvgPool2d ->
the same followed by ``Div`` by the window area. The ones-kernel convs are listed: int8 leaves them float."""

from __future__ import annotations

import nir
import numpy as np

from neuromoco.deploy.targets.onnx.step import Emitter, StepGraph
from neuromoco.deploy.targets.onnx.synapses import conv_out


def _window_sum(g: StepGraph, name: str, node: nir.NIRNode, x: str,
                xs: list[int]) -> tuple[str, list[int], int]:
    """The sum over each pooling window as a ones-kernel depthwise ``Conv``; also returns the window area."""
    from neuromoco.deploy.graph import pool_geometry

    geo = pool_geometry(node, name)
    kernel, stride, pads = geo["kernel"], geo["stride"], tuple(geo["padding"]) * 2
    c = xs[0]
    w = np.ones((c, 1, *kernel), dtype=np.float32)
    y = g.op("Conv", [x, g.const(f"{name}/ones", w)], name, kernel_shape=list(kernel),
             strides=list(stride), pads=list(pads), dilations=[1, 1], group=c)
    g.pool_ops.append(g.nodes[-1].name)
    area = kernel[0] * kernel[1]
    if x in g.grid:
        g.grid[y] = (g.grid[x][0], g.grid[x][1] * area)
    return y, [c, *conv_out(tuple(xs[1:]), kernel, stride, pads, (1, 1))], area


def sum_pool(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    y, shape, _ = _window_sum(g, name, node, x, xs)
    return y, shape


def avg_pool(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    s, shape, area = _window_sum(g, name, node, x, xs)
    y = g.op("Div", [s, g.const(f"{name}/area", np.float32(area))], name)
    if s in g.grid:
        g.grid[y] = (g.grid[s][0] * area, g.grid[s][1])
    return y, shape


EMITTERS: dict[type, Emitter] = {nir.SumPool2d: sum_pool, nir.AvgPool2d: avg_pool}
