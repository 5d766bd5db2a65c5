"""Thresholds lifted off the grid at export, so that no executor sees a voltage tie with them.

QAT puts weights, biases and thresholds on one integer grid, so a membrane voltage often equals its threshold
exactly; Loihi's ``v > vth`` then does not spike, while float32 executors decide by rounding noise (torch and
onnxruntime sum in different orders: one flipped spike in 32 samples measured on the residual model).
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from neuromoco.train.qat.config import QATConfig

#: a QAT graph's thresholds sit this fraction of the plan's voltage unit above the grid (see lift_thresholds)
THRESHOLD_MARGIN = 1.0 / 3.0


def lift_thresholds(graph: nir.NIRGraph, config: QATConfig, input_shape: list[int], dt: float
                    ) -> tuple[nir.NIRGraph, list[str]]:
    """``graph`` with every spiking neuron's threshold lifted by a third of its voltage unit in the plan
    ``config`` compiles (``1 / (64 sigma)`` volts), and the nodes changed; ``(graph, [])`` itself, untouched,
    where nothing can be lifted.

    A third of a unit lies off the grid's halvings (the decay halves voltages), so an exact voltage does not
    land on it, and it is below the plan's resolution: the recompiled plan must hold the same integers
    (mantissas, exponents, thresholds, biases, decays), else the graph is kept as it was. Where the 24-bit state
    bound holds a layer's scale, its float scale moves with the threshold (``sigma * vth`` stays an integer), so
    ``lava_export.json`` reads the weights off the grid by about ``1 / (192 sigma vth)``.
    """
    from neuromoco.deploy.loihi.compile import compile_graph

    def plan_of(g: nir.NIRGraph) -> Any:
        return compile_graph(g, dt, precision="fixed", input_shape=input_shape, **config.plan_options())

    before = plan_of(graph)
    thresholds: dict[str, np.ndarray] = {}
    for lay in before.layers:
        node = graph.nodes[lay.name]
        if not lay.spiking or not isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF)):
            continue
        sigma = np.broadcast_to(np.asarray(lay.scale, dtype=np.float64), (lay.size,)).reshape(lay.shape)
        vth = np.broadcast_to(np.asarray(node.v_threshold, dtype=np.float64), lay.shape)
        thresholds[lay.name] = (vth + THRESHOLD_MARGIN / (64.0 * sigma)).astype(np.float32)
    if not thresholds:
        return graph, []
    saved = {name: graph.nodes[name].v_threshold for name in thresholds}
    for name, vth in thresholds.items():
        graph.nodes[name].v_threshold = vth
    if same_integers(before, plan_of(graph)):
        return graph, list(thresholds)
    for name, old in saved.items():  # the plan would change: keep the graph as it was
        graph.nodes[name].v_threshold = old
    return graph, []


def same_integers(a: Any, b: Any) -> bool:
    """Whether two fixed-point plans hold the same integers: thresholds, biases, decays, every connection's
    mantissas and exponents (what Loihi runs; the float scales may move in their last digits)."""
    for x, y in zip(a.layers, b.layers, strict=False):
        if not all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("vth", "bias_mant", "bias_exp", "du", "dv")):
            return False
        if len(x.conns) != len(y.conns) or any(c.weight_exp != d.weight_exp or not _same_weights(c, d)
                                               for c, d in zip(x.conns, y.conns, strict=True)):
            return False
    return len(a.layers) == len(b.layers)


def _same_weights(c: Any, d: Any) -> bool:
    """Whether two plan connections hold the same integer weights (two matrices, or two kernels)."""
    if (c.kernel is None) != (d.kernel is None):
        return False
    if c.kernel is not None:
        return c.kernel.weight.shape == d.kernel.weight.shape and bool(np.array_equal(c.kernel.weight, d.kernel.weight))
    return (c.matrix != d.matrix).nnz == 0
