"""Execution structure of a graph: order, incoming edges, recurrent edges and components."""

from __future__ import annotations

from dataclasses import dataclass

import nir

from neuromoco.deploy.nodes import node_is
from neuromoco.errors import UserError


@dataclass(frozen=True)
class GraphStructure:
    """Execution structure of a graph.

    ``order``: every node, each after the sources of its non-recurrent incoming edges. ``preds``:
    incoming edges per node as ``(source, recurrent)`` in file order. ``recurrent``: the recurrent edges
    (delayed by one step). ``components``: strongly connected components in execution order; a component
    with more than one node (or a self-loop) must be stepped one time step at a time.
    """

    order: list[str]
    preds: dict[str, list[tuple[str, bool]]]
    succs: dict[str, list[str]]
    recurrent: list[tuple[str, str]]
    components: list[list[str]]
    input: str
    output: str

    def is_cyclic(self, component: list[str]) -> bool:
        if len(component) > 1:
            return True
        n = component[0]
        return any(src == n for src, _ in self.preds[n])


def structure(graph: nir.NIRGraph) -> GraphStructure:
    """Order, recurrent edges and components of a graph (raises :class:`UserError` on a broken graph)."""
    _check_edges(graph)
    inp, out = _endpoint(graph, "input", "Input"), _endpoint(graph, "output", "Output")
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succs[a].append(b)
    for a, b in graph.edges:
        if b == inp:
            raise UserError(f"edge {a} -> {b} leads into the Input node")
        if a == out:
            raise UserError(f"edge {a} -> {b} leaves the Output node")
    order, recurrent = _walk(graph, inp, succs)
    preds = _predecessors(graph, recurrent, inp, out)
    components = _components(order, succs, preds)
    return GraphStructure(order, preds, succs, recurrent, components, inp, out)


def _check_edges(graph: nir.NIRGraph) -> None:
    """Every edge names two nodes of the graph, and none appears twice."""
    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes:
                raise UserError(f"edge {a} -> {b} names node {end!r}, which is not in the graph")
    if len(set(map(tuple, graph.edges))) != len(graph.edges):
        dup = next(e for i, e in enumerate(graph.edges) if tuple(e) in map(tuple, graph.edges[:i]))
        raise UserError(f"edge {dup[0]} -> {dup[1]} appears twice")


def _endpoint(graph: nir.NIRGraph, role: str, kind: str) -> str:
    """The name of the one node of ``role`` (``"input"`` / ``"output"``); ``kind`` names it in the error."""
    found = [n for n, node in graph.nodes.items() if node_is(node, role=role)]
    if len(found) != 1:
        raise UserError(f"the graph needs exactly one {kind} node, it has {len(found)}"
                        + (f" ({', '.join(found)})" if found else ""))
    return found[0]


def _walk(graph: nir.NIRGraph, inp: str, succs: dict[str, list[str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """Execution order and recurrent edges: a depth-first walk from the input, edges in file order.

    An edge to a node still on the stack is recurrent; the order is the reverse post-order, topological for
    the non-recurrent edges.
    """
    state: dict[str, int] = {inp: 1}  # 1 on stack, 2 done
    recurrent: list[tuple[str, str]] = []
    post: list[str] = []
    stack = [(inp, iter(succs[inp]))]
    while stack:
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            stack.pop()
            state[node] = 2
            post.append(node)
        elif state.get(nxt) == 1:
            recurrent.append((node, nxt))
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(succs[nxt])))
    unreachable = [n for n in graph.nodes if n not in state]
    if unreachable:
        raise UserError(f"node(s) {', '.join(unreachable)} cannot be reached from the Input node {inp!r}")
    return post[::-1], recurrent


def _predecessors(graph: nir.NIRGraph, recurrent: list[tuple[str, str]], inp: str,
                  out: str) -> dict[str, list[tuple[str, bool]]]:
    """Incoming edges per node as ``(source, recurrent)``; every node but the input has one, all lead to ``out``."""
    rec = set(recurrent)
    preds: dict[str, list[tuple[str, bool]]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        preds[b].append((a, (a, b) in rec))
    for n in graph.nodes:
        if n != inp and not preds[n]:
            raise UserError(f"node {n!r} has no incoming edge")
    if not preds[out]:
        raise UserError(f"the Output node {out!r} has no incoming edge")
    reach_out = _reaches(out, preds)
    dead = [n for n in graph.nodes if n not in reach_out]
    if dead:
        raise UserError(f"node(s) {', '.join(dead)} do not lead to the Output node {out!r}")
    return preds


def _reaches(target: str, preds: dict[str, list[tuple[str, bool]]]) -> set[str]:
    seen, todo = {target}, [target]
    while todo:
        for src, _ in preds[todo.pop()]:
            if src not in seen:
                seen.add(src)
                todo.append(src)
    return seen


def _components(order: list[str], succs: dict[str, list[str]],
                preds: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Strongly connected components (Kosaraju), listed in execution order, members in ``order``."""
    pos = {n: i for i, n in enumerate(order)}
    comp: dict[str, int] = {}
    # first pass: order already is a reverse post-order of a DFS on the forward graph, which is all
    # Kosaraju needs; second pass on the reversed graph in that order.
    count = 0
    for root in order:
        if root in comp:
            continue
        comp[root] = count
        todo = [root]
        while todo:
            n = todo.pop()
            for src, _ in preds[n]:
                if src not in comp:
                    comp[src] = count
                    todo.append(src)
        count += 1
    groups: dict[int, list[str]] = {}
    for n in order:
        groups.setdefault(comp[n], []).append(n)
    return sorted((sorted(g, key=pos.__getitem__) for g in groups.values()), key=lambda g: pos[g[0]])
