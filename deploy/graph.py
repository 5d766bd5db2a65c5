"""Loading and checking NIR graphs: the one gate every ``.nir`` file passes before a target sees it.

:func:`load_graph` reads a file (a truncated or corrupt file, or a node type NIR does not know, is one
:class:`~neuromoco.errors.UserError` line), inlines nested sub-graphs and checks the result with
:func:`check_graph`: every node type supported, shapes agreeing along every edge (inferred from the
Input node forward), parameters finite, one Input and one Output, every node reachable.

Conventions (shared by the reference executor and every target):

* Shapes exclude the batch dimension (NIR's convention): a frame is ``[C, H, W]``, ``Flatten`` dims
  count from the first non-batch dimension, ``Affine`` / ``Linear`` act on the last dimension.
* Several edges into one node add up.
* A cycle (recurrence) is cut at its *recurrent edge*: the edge that closes the cycle in a depth-first
  walk from the Input node following edges in file order. A recurrent edge carries its source's output
  of the previous time step (zero at the first step). :func:`structure` lists them.
* A sub-graph node ``g`` (a nested ``NIRGraph``, as snnTorch writes recurrent layers) is inlined: its
  nodes become ``g.<name>``, its Input and Output nodes become pass-throughs and are removed.
* Scalar or size-1 neuron parameters broadcast to the shape of the node's input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np

from neuromoco.deploy.nodes import NEURON_TYPES, NODES, SUPPORTED_NAMES, facts, handler, node_is
from neuromoco.errors import UserError

# Node types the project runs and their parameters are the table in neuromoco.deploy.nodes; anything else
# (Delay, I, ...) is refused by name. These are all the types NIR itself knows:
_NIR_KNOWN = set(getattr(nir.ir, "__all_ir", [])) or {
    "Conv1d", "Conv2d", "Delay", "Flatten", "Input", "NIRGraph", "Output", "Affine", "Linear", "Scale",
    "CubaLI", "CubaLIF", "I", "IF", "LI", "LIF", "AvgPool2d", "SumPool2d", "Threshold"}

Shape = tuple[int, ...]


# ----------------------------------------------------------------------------------------- loading

def load_graph(path: str | Path, *, check: bool = True, input_shape: list[int] | None = None) -> nir.NIRGraph:
    """Read a ``.nir`` file into a normalised graph (sub-graphs inlined, conv input shapes filled in).

    With ``check`` (the default) the graph also passes :func:`check_graph`. Every problem is a one-line
    :class:`UserError`.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"NIR file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a NIR file")
    _prescan(path)
    try:
        graph = nir.read(str(path), type_check=False)
    except Exception as err:  # noqa: BLE001 - nir raises assorted errors on malformed content
        raise UserError(f"{path}: cannot read the NIR graph ({type(err).__name__}: {_one_line(err)})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"{path}: the file holds a single {type(graph).__name__} node, not a NIR graph")
    graph = normalize_graph(graph)
    if check:
        check_graph(graph, input_shape=input_shape)
    return graph


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _prescan(path: Path) -> None:
    """Open the HDF5 file and name any node whose type NIR does not know, before ``nir.read`` asserts."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as err:  # noqa: BLE001 - h5py raises OSError and others for a damaged file
        raise UserError(f"{path}: not a readable NIR file, truncated or corrupt ({_one_line(err)})") from None
    try:
        with f:
            if "node" not in f:
                raise UserError(f"{path}: not a NIR file (no 'node' group)")

            def walk(group, prefix: str) -> None:
                if "type" not in group:
                    raise UserError(f"{path}: node {prefix or '<root>'} has no type")
                kind = group["type"][()]
                kind = kind.decode("utf8") if isinstance(kind, bytes) else str(kind)
                if kind not in _NIR_KNOWN:
                    raise UserError(f"{path}: node {prefix or '<root>'!r} has unknown type {kind!r} "
                                    f"(supported: {', '.join(SUPPORTED_NAMES)})")
                if kind == "NIRGraph" and "nodes" in group:
                    for name in group["nodes"]:
                        walk(group["nodes"][name], f"{prefix}.{name}" if prefix else name)

            walk(f["node"], "")
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - damaged datasets inside an openable file
        raise UserError(f"{path}: not a readable NIR file, truncated or corrupt ({_one_line(err)})") from None


# ------------------------------------------------------------------------------------ normalising

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


# ---------------------------------------------------------------------------------------- structure

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
    return sorted((sorted(g, key=pos.get) for g in groups.values()), key=lambda g: pos[g[0]])


# ------------------------------------------------------------------------------------------- shapes

def _ints(x: object, n: int, what: str, node: str) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(x)).astype(np.int64).ravel()
    if a.size == 1:
        a = np.repeat(a, n)
    if a.size != n:
        raise UserError(f"node {node!r}: {what} has {a.size} values, expected {n}")
    return tuple(int(v) for v in a)


def _padding_value(pad: object) -> str | np.ndarray:
    """A conv node's padding as a str ('same' / 'valid') or as an int array."""
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "USO":
        pad = pad.item() if pad.ndim == 0 else pad.ravel()[0]
    if isinstance(pad, bytes):
        pad = pad.decode("utf8")
    return pad if isinstance(pad, str) else np.atleast_1d(np.asarray(pad))


def conv_padding(node: nir.NIRNode, name: str, nd: int, kernel: tuple[int, ...],
                 dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Padding per spatial dim as ``(before, after)``; ``'same'`` pads like PyTorch (extra at the end)."""
    pad = _padding_value(node.padding)
    if isinstance(pad, str):
        if pad == "valid":
            return tuple((0, 0) for _ in range(nd))
        if pad == "same":
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise UserError(f"node {name!r}: padding {pad!r} is not 'same', 'valid' or a number")
    return tuple((p, p) for p in _ints(pad, nd, "padding", name))


def conv_geometry(node: nir.NIRNode, name: str) -> dict:
    """Stride, dilation, padding ``((before, after), ...)``, groups and kernel of a Conv1d / Conv2d node."""
    nd = facts(node, name).kernel_dims
    w = np.asarray(node.weight)
    if w.ndim != nd + 2:
        raise UserError(f"node {name!r}: {type(node).__name__} weight has shape {w.shape}, "
                        f"expected {nd + 2} dimensions")
    kernel = tuple(int(k) for k in w.shape[2:])
    stride = _ints(node.stride, nd, "stride", name)
    dilation = _ints(node.dilation, nd, "dilation", name)
    groups = int(np.asarray(node.groups).item())
    padding = conv_padding(node, name, nd, kernel, dilation)
    pad = _padding_value(node.padding)
    if isinstance(pad, str) and pad == "same" and any(s != 1 for s in stride):
        raise UserError(f"node {name!r}: padding 'same' with stride {stride} is ambiguous; write the padding out")
    return {"nd": nd, "kernel": kernel, "stride": stride, "dilation": dilation, "groups": groups,
            "padding": padding}


def pool_geometry(node: nir.NIRNode, name: str) -> dict:
    """Kernel, stride (default: the kernel) and padding (default: none) of a SumPool2d / AvgPool2d node."""
    kernel = _ints(node.kernel_size, 2, "kernel_size", name)
    stride = _ints(node.stride, 2, "stride", name) if node.stride is not None else kernel
    padding = _ints(node.padding, 2, "padding", name) if node.padding is not None else (0, 0)
    return {"kernel": kernel, "stride": stride, "padding": padding}


def flatten_dims(node: nir.Flatten, ndim: int, name: str) -> tuple[int, int]:
    """``start_dim``, ``end_dim`` of a Flatten node as non-negative dims of an unbatched shape (NIR's rule)."""
    start, end = int(np.asarray(node.start_dim).item()), int(np.asarray(node.end_dim).item())
    s = start + ndim if start < 0 else start
    e = end + ndim if end < 0 else end
    if not (0 <= s < max(ndim, 1) and 0 <= e < max(ndim, 1) and s <= e):
        raise UserError(f"node {name!r}: Flatten(start_dim={start}, end_dim={end}) does not fit an input "
                        f"of {ndim} dimensions (NIR dims exclude the batch)")
    return s, e


def _declared_input(node: nir.NIRNode) -> tuple[int, ...] | None:
    t = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if t is None or np.size(t) == 0:
        return None
    return tuple(int(v) for v in np.ravel(t))


def flatten_span(node: nir.Flatten, shape: Shape, name: str) -> tuple[int, int]:
    """The dims ``(s, e)`` of the unbatched ``shape`` that a Flatten node merges (inclusive).

    NIR counts dims without the batch. Some writers (Sinabs) count them with the batch, as PyTorch does,
    and declare a batched ``input_type`` (one dim more than the data, often all zeros): such a node's
    dims are shifted by one. A declared ``input_type`` with real sizes must agree with the data.
    """
    declared = _declared_input(node)
    batched = declared is not None and len(declared) == len(shape) + 1
    if declared is not None:
        body = declared[1:] if batched else declared
        if len(body) != len(shape) or (any(body) and tuple(body) != tuple(shape)):
            raise _Mismatch("input_type", declared)
    if not batched:
        return flatten_dims(node, len(shape), name)
    start, end = int(np.asarray(node.start_dim).item()), int(np.asarray(node.end_dim).item())
    nd = len(shape) + 1
    s = start + nd if start < 0 else start
    e = end + nd if end < 0 else end
    if not (1 <= s <= e < nd):
        raise UserError(f"node {name!r}: Flatten(start_dim={start}, end_dim={end}) over a batched input_type "
                        f"{list(declared)} must not merge the batch dimension")
    return s - 1, e - 1


def fit_param(value: object, shape: Shape) -> np.ndarray:
    """A neuron / Scale / Threshold parameter as float64 of exactly ``shape``.

    Scalars and size-1 arrays broadcast; leading size-1 dims beyond ``shape`` (a batch dim some writers
    keep) are dropped. Raises ValueError when it does not fit.
    """
    a = np.asarray(value, dtype=np.float64)
    while a.ndim > len(shape) and a.shape[0] == 1:
        a = a[0]
    if a.size == 1:
        a = a.reshape(())
    if np.broadcast_shapes(a.shape, tuple(shape)) != tuple(shape):
        raise ValueError(f"shape {a.shape} does not fit {tuple(shape)}")
    return np.broadcast_to(a, tuple(shape)).copy()


class _Mismatch(Exception):
    """An input that does not fit a node: ``what`` it disagrees with and the ``shape`` the node expects."""

    def __init__(self, what: str, shape: Shape) -> None:
        self.what, self.shape = what, shape


ShapeRule = Callable[[nir.NIRNode, str, Shape], Shape]


def _same_shape(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    return shape


def _elementwise_out(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """Scale, Threshold and the neurons keep their input's shape; every parameter must broadcast to it."""
    for p in NODES[type(node)].params:
        val = getattr(node, p, None)
        if val is None:
            continue
        try:
            fit_param(val, shape)
        except ValueError:
            raise _Mismatch(p, tuple(int(v) for v in np.shape(val))) from None
    return shape


def _linear_out(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """Affine / Linear: a 2-D weight acting on the last dimension."""
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise UserError(f"node {name!r}: {type(node).__name__} weight has shape {w.shape}, expected 2-D")
    if not shape or shape[-1] != w.shape[1]:
        raise _Mismatch("input", (int(w.shape[1]),))
    if "bias" in NODES[type(node)].params and np.size(node.bias) not in (1, w.shape[0]):
        raise UserError(f"node {name!r}: bias has {np.size(node.bias)} values for {w.shape[0]} outputs")
    return (*shape[:-1], int(w.shape[0]))


def _check_conv_input(node: nir.NIRNode, name: str, shape: Shape, g: dict) -> None:
    """The input ``[C, *spatial]`` fits the weight, groups, bias and any declared ``input_shape``."""
    w = np.asarray(node.weight)
    if len(shape) != g["nd"] + 1 or shape[0] != w.shape[1] * g["groups"]:
        raise _Mismatch("input", (int(w.shape[1] * g["groups"]), *(["?"] * g["nd"])))
    if w.shape[0] % g["groups"]:
        raise UserError(f"node {name!r}: {w.shape[0]} output channels do not divide into {g['groups']} groups")
    if np.size(node.bias) not in (1, w.shape[0]):
        raise UserError(f"node {name!r}: bias has {np.size(node.bias)} values for {w.shape[0]} channels")
    declared = node.input_shape
    if declared is not None:
        declared = _ints(declared, g["nd"], "input_shape", name)
        if tuple(declared) != tuple(shape[1:]):
            raise _Mismatch("input_shape", (int(shape[0]), *declared))


def _conv_out(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """Conv1d / Conv2d: ``[C_in, *spatial]`` -> ``[C_out, *spatial']`` (padding, stride, dilation applied)."""
    g = conv_geometry(node, name)
    _check_conv_input(node, name, shape, g)
    spatial = []
    for n, k, s, d, (p0, p1) in zip(shape[1:], g["kernel"], g["stride"], g["dilation"], g["padding"]):
        spatial.append((n + p0 + p1 - d * (k - 1) - 1) // s + 1)
    if any(v <= 0 for v in spatial):
        raise UserError(f"node {name!r}: input {shape} is too small for the kernel {g['kernel']}")
    return (int(np.shape(node.weight)[0]), *spatial)


def _pool_out(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """SumPool2d / AvgPool2d: ``[C, H, W]`` -> ``[C, H', W']``."""
    g = pool_geometry(node, name)
    if len(shape) != 3:
        raise _Mismatch("input", ("C", "H", "W"))
    spatial = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(shape[1:], g["kernel"], g["stride"], g["padding"])]
    if any(v <= 0 for v in spatial):
        raise UserError(f"node {name!r}: input {shape} is too small for the pooling window {g['kernel']}")
    return (shape[0], *spatial)


def _flatten_out(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    s, e = flatten_span(node, shape, name)
    return (*shape[:s], int(math.prod(shape[s:e + 1])), *shape[e + 1:])


#: output shape of each node type from its input shape (batch excluded); :class:`_Mismatch` when it does not fit
SHAPE_RULES: dict[type, ShapeRule] = {
    nir.Input: _same_shape, nir.Output: _same_shape,
    nir.Affine: _linear_out, nir.Linear: _linear_out,
    nir.Conv1d: _conv_out, nir.Conv2d: _conv_out,
    nir.SumPool2d: _pool_out, nir.AvgPool2d: _pool_out,
    nir.Flatten: _flatten_out,
    nir.Scale: _elementwise_out, nir.Threshold: _elementwise_out,
    **{t: _elementwise_out for t in NEURON_TYPES},
}


def _out_shape(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """Output shape of ``node`` given its input shape, or :class:`_Mismatch` when the input does not fit."""
    return handler(SHAPE_RULES, node, name, "shape inference")(node, name, shape)


def node_io_shapes(graph: nir.NIRGraph, input_shape: list[int] | None = None) -> dict[str, tuple[Shape, Shape]]:
    """Input and output shape (batch excluded) of every node, inferred from the Input node forward.

    ``input_shape`` (from a model card) must agree with the Input node's shape when both are given.
    Raises :class:`UserError` naming both nodes and both shapes where an edge disagrees.
    """
    graph = normalize_graph(graph)
    _check_types(graph)
    st = structure(graph)
    first = _input_shape(graph.nodes[st.input], st.input, input_shape)
    shapes: dict[str, tuple[Shape, Shape]] = {st.input: (first, first)}
    for name in st.order:
        if name != st.input:
            shapes[name] = _io_shape(graph.nodes[name], name, [src for src, rec in st.preds[name] if not rec], shapes)
    for src, dst in st.recurrent:
        if shapes[src][1] != shapes[dst][0]:
            raise UserError(f"shape mismatch on recurrent edge {src} -> {dst}: {src} gives {list(shapes[src][1])}, "
                            f"{dst} expects {list(shapes[dst][0])}")
    _check_output_shape(graph.nodes[st.output], st, shapes[st.output][0])
    return {n: shapes[n] for n in graph.nodes}


def _input_shape(inp: nir.Input, name: str, card_shape: list[int] | None) -> Shape:
    """The Input node's shape, or the model card's where the node declares none (they must agree)."""
    declared = _declared_input(inp)
    if card_shape is not None:
        card = tuple(int(v) for v in card_shape)
        if declared is not None and declared != card and math.prod(declared) != math.prod(card):
            raise UserError(f"the Input node {name!r} has shape {list(declared)}, the model card says "
                            f"{list(card)}")
        declared = declared if declared is not None else card
    if declared is None:
        raise UserError(f"the Input node {name!r} has no shape; give the input shape in the model card")
    return declared


def _io_shape(node: nir.NIRNode, name: str, srcs: list[str],
              shapes: dict[str, tuple[Shape, Shape]]) -> tuple[Shape, Shape]:
    """``node``'s input shape (its non-recurrent sources must agree on it) and output shape."""
    in_shape = shapes[srcs[0]][1]
    for src in srcs[1:]:
        if shapes[src][1] != in_shape:
            raise UserError(f"shape mismatch: {srcs[0]} -> {name} brings {list(in_shape)} but "
                            f"{src} -> {name} brings {list(shapes[src][1])}")
    try:
        out = _out_shape(node, name, in_shape)
    except _Mismatch as mm:
        raise UserError(f"shape mismatch on edge {srcs[0]} -> {name}: {srcs[0]} gives {list(in_shape)}, "
                        f"{name} ({type(node).__name__}) expects {list(mm.shape)}"
                        + ("" if mm.what == "input" else f" (from its {mm.what})")) from None
    return tuple(in_shape), tuple(int(v) for v in out)


def _check_output_shape(out_node: nir.Output, st: GraphStructure, got: Shape) -> None:
    """A shape the Output node declares must hold as many values as it receives."""
    declared = out_node.output_type.get("output") if isinstance(out_node.output_type, dict) else None
    if declared is not None and np.size(declared):
        d = tuple(int(v) for v in np.ravel(declared))
        if d != got and math.prod(d) != math.prod(got):
            src = st.preds[st.output][0][0]
            raise UserError(f"shape mismatch on edge {src} -> {st.output}: {src} gives {list(got)}, "
                            f"{st.output} (Output) expects {list(d)}")


def node_shapes(graph: nir.NIRGraph, input_shape: list[int] | None = None) -> dict[str, Shape]:
    """The inferred output shape (batch excluded) of every node; for Output nodes, the shape they receive."""
    return {k: v[1] for k, v in node_io_shapes(graph, input_shape).items()}


# -------------------------------------------------------------------------------------------- checks

def _check_types(graph: nir.NIRGraph) -> None:
    for name, node in graph.nodes.items():
        facts(node, name)


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


def check_graph(graph: nir.NIRGraph, input_shape: list[int] | None = None) -> dict[str, Shape]:
    """Check ``graph`` before use and return the inferred output shape of every node.

    Every node type supported, one Input and one Output, every node reachable, shapes agreeing along
    every edge, all parameters finite. Fills in ``input_shape`` of conv nodes that lack it.
    Raises a one-line :class:`UserError` naming the node(s) at fault.
    """
    graph_n = normalize_graph(graph)
    _check_types(graph_n)
    check_finite(graph_n)
    io = node_io_shapes(graph_n, input_shape)
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
