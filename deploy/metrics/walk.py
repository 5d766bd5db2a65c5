"""The one walk of a graph that the metrics share: its synaptic layers (spike source -> chain -> sink) with
their exact fan-out, and its neuron sizes.

A **synaptic layer** is a chain of connection nodes (``nodes.NodeFacts.connection``: synapses, pooling, Scale,
reshapes) from a *spike source* (the Input, every spiking neuron, Threshold) to a *sink* (a neuron, Threshold, the
Output). Its **fan-out** per source position is the gradient of the chain's summed output with every weight replaced
by 1 (the reference executor's own rule for each node, :func:`~neuromoco.deploy.reference_executor.stateless_kernel`
with ``weights="ones"``): the (output position, output channel) pairs each input position reaches, respecting
padding (padded taps reach nothing), stride, dilation and groups; for a chain of several counted nodes it counts
paths. A node is *counted* (has synapses and dense MACs) when it is a connection that does more than reshape; its
dense MACs are output elements x taps per output (padding taps included), as frameworks count them.

The walk depends on the graph's structure and shapes only: ``deploy profile`` computes it once and gives it to the
energy profile and to the NeuroBench counter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from neuromoco.deploy.nodes import NODES, node_is
from neuromoco.errors import UserError

Shape = tuple[int, ...]

#: the node types a synaptic layer counts (synapses, pooling windows, Scale): connections that do more than reshape
COUNTED_TYPES: tuple[type, ...] = tuple(t for t, row in NODES.items() if row.connection and row.role != "reshape")


@dataclass
class SynapticLayer:
    """A chain of nodes carrying the spikes of ``source`` to ``sink``, with its exact fan-out map."""

    source: str
    sink: str
    ops: list[str]  # node names along the chain (counted and pass-through)
    fanout: np.ndarray  # per source position: synapses reached (path count)
    op_macs: dict[str, int] = field(default_factory=dict)  # dense MACs of each counted node, once per inference

    @property
    def ann_ops(self) -> list[str]:
        return list(self.op_macs)

    @property
    def ann_macs(self) -> int:
        return int(sum(self.op_macs.values()))

    @property
    def name(self) -> str:
        return "+".join(self.ann_ops) if self.ann_ops else f"{self.source}->{self.sink}"

    @property
    def connections(self) -> int:
        return int(self.fanout.sum())


@dataclass
class Walk:
    """A graph's input and output shape per node, its synaptic layers and the neurons of each neuron node."""

    io_shapes: dict[str, tuple[Shape, Shape]]
    layers: list[SynapticLayer]

    @property
    def shapes(self) -> dict[str, Shape]:
        return {k: v[1] for k, v in self.io_shapes.items()}

    def neuron_sizes(self, graph: nir.NIRGraph) -> dict[str, int]:
        return neuron_sizes(graph, self.shapes)


def is_source(node: Any) -> bool:
    """The graph's Input and every node whose output is 0/1 spikes (LIF, IF, CubaLIF, Threshold)."""
    row = NODES.get(type(node))
    return row is not None and (row.spiking or row.role in ("input", "threshold"))


def is_sink(node: Any) -> bool:
    """Where a synaptic layer ends: a neuron, a Threshold or the Output."""
    row = NODES.get(type(node))
    return row is not None and row.role in ("neuron", "threshold", "output")


def taps(node: Any, name: str) -> int:
    """Multiply-accumulates per output element of a counted node: its weights per output (a row of a matrix, a
    kernel's input channels x taps), its pooling window, or 1 (an element-wise factor)."""
    row = NODES[type(node)]
    if row.weighted:
        return int(np.asarray(node.weight)[0].size)
    if row.kernel_dims:
        from neuromoco.deploy.graph import pool_geometry

        return math.prod(pool_geometry(node, name)["kernel"])
    return 1


def _chains(graph: nir.NIRGraph, src: str, succ: dict[str, list[str]]) -> Iterator[tuple[str, list[str]]]:
    """Every ``(sink, chain)`` reached from ``src`` through non-sink nodes, depth first, edges in file order."""
    stack: list[tuple[str, list[str]]] = [(b, []) for b in reversed(succ.get(src, []))]
    while stack:
        name, chain = stack.pop()
        if is_sink(graph.nodes[name]):
            yield name, chain
        elif name in chain or name == src:
            raise UserError(f"graph has a cycle through {name!r} without a neuron on it")
        else:
            stack.extend((b, chain + [name]) for b in reversed(succ.get(name, [])))


def _fanout(graph: nir.NIRGraph, chain: list[str], shape: Shape,
            io: dict[str, tuple[Shape, Shape]]) -> tuple[np.ndarray, dict[str, int]]:
    """Per source position the synapses reached through ``chain`` (path count), and each counted node's MACs."""
    import torch

    from neuromoco.deploy.reference_executor import stateless_kernel

    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    y, op_macs = x, {}
    for c in chain:
        node = graph.nodes[c]
        y = stateless_kernel(node, c, io[c][0], io[c][1], weights="ones")(y).reshape(1, *io[c][1])
        if type(node) in COUNTED_TYPES:
            op_macs[c] = int(y[0].numel() * taps(node, c))
    y.sum().backward()
    assert x.grad is not None
    return np.rint(x.grad[0].numpy()).astype(np.int64), op_macs


def synaptic_layers(graph: nir.NIRGraph, input_shape: Sequence[int] | None = None,
                    io_shapes: dict[str, tuple[Shape, Shape]] | None = None) -> list[SynapticLayer]:
    """Every source -> sink chain of ``graph`` with its exact per-position fan-out (see the module docstring), in
    graph order: by sink, then source, in the order the executor runs the nodes.

    ``input_shape``: the Input node's ``[C, H, W]`` (the model card's); ``io_shapes``: every node's input and output
    shape as :func:`neuromoco.deploy.graph.node_io_shapes` infers them (computed here when not given).
    """
    if io_shapes is None:
        from neuromoco.deploy.graph import node_io_shapes

        io_shapes = node_io_shapes(graph, list(input_shape) if input_shape is not None else None)
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    layers: list[SynapticLayer] = []
    for src in (n for n, node in graph.nodes.items() if is_source(node)):
        for sink, chain in _chains(graph, src, succ):
            if not any(type(graph.nodes[c]) in COUNTED_TYPES for c in chain) and node_is(graph.nodes[sink],
                                                                                        role="output"):
                continue  # a spike read out as it is: no synapse
            fan, op_macs = _fanout(graph, chain, tuple(io_shapes[src][1]), io_shapes)
            layers.append(SynapticLayer(src, sink, chain, fan, op_macs))
    from neuromoco.deploy.graph import structure

    # graph order, not the node dict's: a read NIR file's nodes come sorted by name ("2_Linear" before "input")
    rank = {n: i for i, n in enumerate(structure(graph).order)}
    return sorted(layers, key=lambda lay: (rank[lay.sink], rank[lay.source]))


def neuron_sizes(graph: nir.NIRGraph, shapes: dict[str, Shape]) -> dict[str, int]:
    """Number of neurons of every neuron node."""
    return {name: int(np.prod(shapes[name])) for name, node in graph.nodes.items() if node_is(node, role="neuron")}


def walk(graph: nir.NIRGraph, input_shape: Sequence[int] | None = None) -> Walk:
    """The walk of ``graph`` (see the module docstring). ``deploy profile`` makes it once and hands it to the
    energy profile and to NeuroBench's counter."""
    from neuromoco.deploy.graph import node_io_shapes

    io = node_io_shapes(graph, list(input_shape) if input_shape is not None else None)
    return Walk(io, synaptic_layers(graph, input_shape, io))
