"""Shape inference: the output shape of each node type (``SHAPE_RULES``), forward from the Input node."""

from __future__ import annotations

import math
from collections.abc import Callable

import nir
import numpy as np

from neuromoco.deploy.graph.geometry import (
    Shape,
    _declared_input,
    _ints,
    _Mismatch,
    conv_geometry,
    fit_param,
    flatten_span,
    pool_geometry,
)
from neuromoco.deploy.graph.normalize import normalize_graph
from neuromoco.deploy.graph.structure import GraphStructure, structure
from neuromoco.deploy.nodes import NEURON_TYPES, NODES, facts, handler
from neuromoco.errors import UserError

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
    dims = zip(shape[1:], g["kernel"], g["stride"], g["dilation"], g["padding"], strict=True)
    for n, k, s, d, (p0, p1) in dims:
        spatial.append((n + p0 + p1 - d * (k - 1) - 1) // s + 1)
    if any(v <= 0 for v in spatial):
        raise UserError(f"node {name!r}: input {shape} is too small for the kernel {g['kernel']}")
    return (int(np.shape(node.weight)[0]), *spatial)


def _pool_out(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """SumPool2d / AvgPool2d: ``[C, H, W]`` -> ``[C, H', W']``."""
    g = pool_geometry(node, name)
    if len(shape) != 3:
        raise _Mismatch("input", ("C", "H", "W"))
    dims = zip(shape[1:], g["kernel"], g["stride"], g["padding"], strict=True)
    spatial = [(n + 2 * p - k) // s + 1 for n, k, s, p in dims]
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
    """Output shape of ``node`` given its input shape, or :class:`_Mismatch` when the input does not fit.

    A connection node kind without a rule here (a new stateless kind needs only its facts, its reference rule
    and its ONNX emitter) takes the shape its reference rule produces on one zero sample."""
    rule = SHAPE_RULES.get(type(node))
    if rule is None and type(node) in NODES and NODES[type(node)].connection:
        return _shape_by_reference(node, name, shape)
    return handler(SHAPE_RULES, node, name, "shape inference")(node, name, shape)


def _shape_by_reference(node: nir.NIRNode, name: str, shape: Shape) -> Shape:
    """The output shape of the reference executor's rule for ``node`` on a zero input of ``shape``."""
    import torch

    from neuromoco.deploy.reference_executor import stateless_kernel  # the executor imports this module

    try:
        y = stateless_kernel(node, name, shape, shape)(torch.zeros((1, *shape), dtype=torch.float64))
    except (RuntimeError, ValueError, IndexError) as err:  # torch's words for an input that does not fit
        raise UserError(f"node {name!r} ({type(node).__name__}): an input of shape {list(shape)} does not fit: "
                        f"{str(err).splitlines()[0]}") from None
    return tuple(int(v) for v in y.shape[1:])


def node_io_shapes(graph: nir.NIRGraph, input_shape: list[int] | None = None,
                   shape_source: str = "the model card") -> dict[str, tuple[Shape, Shape]]:
    """Input and output shape (batch excluded) of every node, inferred from the Input node forward.

    ``input_shape`` (from a model card, or from the frames when there is none: ``shape_source`` says which,
    for the message) must agree with the Input node's shape when both are given.
    Raises :class:`UserError` naming both nodes and both shapes where an edge disagrees.
    """
    graph = normalize_graph(graph)
    _check_types(graph)
    st = structure(graph)
    first = _input_shape(graph.nodes[st.input], st.input, input_shape, shape_source)
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


def _same_input(declared: Shape, given: Shape) -> bool:
    """Whether two statements of the input shape agree: equal once leading size-1 (batch) dimensions are dropped,
    or one of them the other flattened. Equal element counts alone are not enough: ``[20, 20, 2]`` read as
    ``[2, 20, 20]`` would scramble every frame without a word."""
    def core(s: Shape) -> Shape:
        s = tuple(s)
        while len(s) > 1 and s[0] == 1:
            s = s[1:]
        return s

    a, b = core(declared), core(given)
    return a == b or ((len(a) == 1 or len(b) == 1) and math.prod(a) == math.prod(b))


def check_frames_shape(per_step: Shape, want: Shape, what: str = "the graph's input") -> None:
    """Refuse, naming both shapes, frames whose per-step shape is not ``want`` (up to flattening or a leading
    size-1 dimension, :func:`_same_input`): equal element counts in another layout are refused, not reshaped."""
    got, want = tuple(int(v) for v in per_step), tuple(int(v) for v in want)
    if got != want and not _same_input(want, got):
        hint = " (the same sizes in another order: frames are [T, B, C, H, W], channels first)" \
            if sorted(got) == sorted(want) else ""
        raise UserError(f"frames of shape {list(got)} per step do not fit {what} {list(want)}{hint}")


def check_time_axis(shape: Shape, time_steps: int | None) -> None:
    """Refuse frames whose first two axes look swapped: ``[N, T, ...]`` (the ``.npz`` layout) given where the
    runners take ``[T, B, ...]``, seen as a first axis that is not the model card's ``time_steps`` while the
    second is. Nothing is checked without ``time_steps``; a first axis of another T alone is allowed (a graph
    may run for more or fewer steps than it was trained with)."""
    if time_steps is None or len(shape) < 2:
        return
    got, t = [int(v) for v in shape], int(time_steps)
    if got[0] != t and got[1] == t:
        raise UserError(f"frames of shape {got} look like [N, T, ...] (samples first, as in a frames .npz), but "
                        f"runners take [T, B, *input_shape] = {[t, got[0], *got[2:]]} for the model card's T = {t}: "
                        "swap the first two axes (frames.swapaxes(0, 1))")


def _input_shape(inp: nir.Input, name: str, card_shape: list[int] | None, source: str) -> Shape:
    """The Input node's shape, or the model card's where the node declares none (they must agree)."""
    declared = _declared_input(inp)
    if card_shape is not None:
        card = tuple(int(v) for v in card_shape)
        if declared is not None and not _same_input(declared, card):
            raise UserError(f"the Input node {name!r} has shape {list(declared)}, {source} says {list(card)}"
                            + (" (the same sizes in another order: channels first is NIR's layout, [C, H, W])"
                               if sorted(declared) == sorted(card) else ""))
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


def _check_types(graph: nir.NIRGraph) -> None:
    for name, node in graph.nodes.items():
        facts(node, name)
