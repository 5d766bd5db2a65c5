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
#: the fractions tried per layer, largest first (a 24th is still ten times float32's rounding of a voltage sum
#: in measured ties: 0.0025 of a unit on sew-resnet18-128's lif2)
MARGINS = (THRESHOLD_MARGIN, THRESHOLD_MARGIN / 8)


def lift_thresholds(graph: nir.NIRGraph, config: QATConfig, input_shape: list[int], dt: float
                    ) -> tuple[nir.NIRGraph, dict[str, float]]:
    """``graph`` with every spiking neuron's threshold lifted by a fraction of its voltage unit in the plan
    ``config`` compiles (``1 / (64 sigma)`` volts), and the nodes changed with their fraction; ``(graph, {})``,
    untouched, where nothing can be lifted.

    A third of a unit lies off the grid's halvings (the decay halves voltages), so an exact voltage does not
    land on it, and it is below the plan's resolution. Each layer is tried on its own (a layer's integers depend
    on its own threshold only): it keeps the first of :data:`MARGINS` with which the recompiled plan holds the
    same integers for it (mantissas, exponents, thresholds, biases, decays), else its threshold as it was (a
    third can move a layer whose scale the 24-bit state bound holds onto another grid step). Where that bound
    holds a layer's scale, its float scale moves with the threshold (``sigma * vth`` stays an integer), so
    ``lava_export.json`` reads the weights off the grid by about ``1 / (192 sigma vth)``.
    """
    from neuromoco.deploy.loihi.compile import compile_graph

    def plan_of(g: nir.NIRGraph) -> Any:
        return compile_graph(g, dt, precision="fixed", input_shape=input_shape, **config.plan_options())

    before = plan_of(graph)
    base = {lay.name: lay for lay in before.layers
            if lay.spiking and isinstance(graph.nodes[lay.name], (nir.LIF, nir.CubaLIF, nir.IF))}
    saved = {name: graph.nodes[name].v_threshold for name in base}
    lifted: dict[str, float] = {}
    final = before  # the plan of the graph as it stands, while no threshold was put back after compiling
    for margin in MARGINS:
        trial = [name for name in base if name not in lifted]
        if not trial:
            break
        for name in trial:
            lay = base[name]
            sigma = np.broadcast_to(np.asarray(lay.scale, dtype=np.float64), (lay.size,)).reshape(lay.shape)
            vth = np.broadcast_to(np.asarray(saved[name], dtype=np.float64), lay.shape)
            graph.nodes[name].v_threshold = (vth + margin / (64.0 * sigma)).astype(np.float32)
        final = plan_of(graph)
        after = {lay.name: lay for lay in final.layers}
        for name in trial:
            if same_layer_integers(base[name], after[name]):
                lifted[name] = margin
            else:
                graph.nodes[name].v_threshold = saved[name]
                final = None
    if final is None:  # thresholds were put back: compile what stands (layers are independent; checked all the same)
        final = plan_of(graph)
    if lifted and not same_integers(before, final):
        for name, old in saved.items():
            graph.nodes[name].v_threshold = old
        return graph, {}
    return graph, lifted


def same_integers(a: Any, b: Any) -> bool:
    """Whether two fixed-point plans hold the same integers: thresholds, biases, decays, every connection's
    mantissas and exponents (what Loihi runs; the float scales may move in their last digits)."""
    return len(a.layers) == len(b.layers) and all(_same_layer(x, y) for x, y in zip(a.layers, b.layers, strict=True))


def same_layer_integers(x: Any, y: Any) -> bool:
    """Whether two plan layers hold the same integers (see :func:`same_integers`): the per-layer decision of
    :func:`lift_thresholds`."""
    return _same_layer(x, y)


def _same_layer(x: Any, y: Any) -> bool:
    if not all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("vth", "bias_mant", "bias_exp", "du", "dv")):
        return False
    return len(x.conns) == len(y.conns) and all(c.weight_exp == d.weight_exp and _same_weights(c, d)
                                                for c, d in zip(x.conns, y.conns, strict=True))


def _same_weights(c: Any, d: Any) -> bool:
    """Whether two plan connections hold the same integer weights (two matrices, or two kernels)."""
    if (c.kernel is None) != (d.kernel is None):
        return False
    if c.kernel is not None:
        return c.kernel.weight.shape == d.kernel.weight.shape and bool(np.array_equal(c.kernel.weight, d.kernel.weight))
    return (c.matrix != d.matrix).nnz == 0
