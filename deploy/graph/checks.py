"""Checks before use: supported types, finite parameters, shapes along every edge; spiking nodes."""

from __future__ import annotations

import nir
import numpy as np

from neuromoco.deploy.graph.geometry import Shape
from neuromoco.deploy.graph.normalize import normalize_graph
from neuromoco.deploy.graph.shapes import _check_types, node_io_shapes
from neuromoco.deploy.graph.structure import structure
from neuromoco.deploy.nodes import NODES, facts, node_is
from neuromoco.errors import UserError


def check_finite(graph: nir.NIRGraph) -> None:
    """Every numeric parameter of every node is finite; time constants are positive."""
    for name, node in graph.nodes.items():
        for p in facts(node, name).params:
            val = getattr(node, p, None)
            if val is None:
                continue
            try:
                arr = np.asarray(val, dtype=np.float64)
            except (TypeError, ValueError):
                raise UserError(f"node {name!r}: parameter {p} is not numeric ({val!r})") from None
            bad = ~np.isfinite(arr)
            if bad.any():
                first = np.argwhere(bad)[0] if arr.ndim else ()
                what = "NaN" if np.isnan(arr).any() else "infinite"
                raise UserError(f"node {name!r} ({type(node).__name__}): parameter {p} has {int(bad.sum())} "
                                f"{what} value(s), first at index {tuple(int(i) for i in first)}")
            if p.startswith("tau") and (arr <= 0).any():
                raise UserError(f"node {name!r} ({type(node).__name__}): time constant {p} must be > 0 "
                                f"(min {arr.min():g})")


def check_graph(graph: nir.NIRGraph, input_shape: list[int] | None = None,
                shape_source: str = "the model card") -> dict[str, Shape]:
    """Check ``graph`` before use and return the inferred output shape of every node.

    Every node type supported, one Input and one Output, every node reachable, shapes agreeing along
    every edge, all parameters finite. Fills in ``input_shape`` of conv nodes that lack it.
    Raises a one-line :class:`UserError` naming the node(s) at fault.
    """
    graph_n = normalize_graph(graph)
    _check_types(graph_n)
    check_finite(graph_n)
    io = node_io_shapes(graph_n, input_shape, shape_source)
    for name, node in graph_n.nodes.items():
        row = NODES[type(node)]
        if row.role == "synapse" and row.kernel_dims and node.input_shape is None:  # a conv node
            sp = io[name][0][1:]
            node.input_shape = int(sp[0]) if row.kernel_dims == 1 else tuple(int(v) for v in sp)
    return {k: v[1] for k, v in io.items()}


def spiking_nodes(graph: nir.NIRGraph) -> list[str]:
    """Names of the nodes whose output is spikes (LIF, IF, CubaLIF), in execution order."""
    graph = normalize_graph(graph)
    st = structure(graph)
    return [n for n in st.order if node_is(graph.nodes[n], spiking=True)]
