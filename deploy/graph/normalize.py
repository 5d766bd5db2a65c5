"""The normal form of a graph: nested sub-graphs inlined as ``outer.inner`` nodes."""

from __future__ import annotations

import nir

from neuromoco.deploy.nodes import node_is
from neuromoco.errors import UserError


def normalize_graph(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A copy-free normal form: nested sub-graphs inlined as ``outer.inner`` nodes.

    Returns ``graph`` itself when it has no sub-graph; otherwise a new graph sharing the node objects.
    """
    if not any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return graph
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # sub-graph name -> inner nodes fed by its Input
    exit_: dict[str, list[str]] = {}  # sub-graph name -> inner nodes feeding its Output
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner = normalize_graph(node)
        ins = [k for k, n in inner.nodes.items() if node_is(n, role="input")]
        outs = [k for k, n in inner.nodes.items() if node_is(n, role="output")]
        if len(ins) != 1 or len(outs) != 1:
            raise UserError(f"sub-graph {name!r} needs one Input and one Output node "
                            f"(has {len(ins)} and {len(outs)})")
        for k, n in inner.nodes.items():
            if k not in (ins[0], outs[0]):
                nodes[f"{name}.{k}"] = n
        entry[name] = [f"{name}.{b}" for a, b in inner.edges if a == ins[0] and b != outs[0]]
        exit_[name] = [f"{name}.{a}" for a, b in inner.edges if b == outs[0] and a != ins[0]]
        if any(a == ins[0] and b == outs[0] for a, b in inner.edges):
            raise UserError(f"sub-graph {name!r} connects its Input straight to its Output")
        edges += [(f"{name}.{a}", f"{name}.{b}") for a, b in inner.edges
                  if a not in (ins[0], outs[0]) and b not in (ins[0], outs[0])]
    for a, b in graph.edges:
        srcs = exit_.get(a, [a])
        dsts = entry.get(b, [b])
        edges += [(s, d) for s in srcs for d in dsts]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)
