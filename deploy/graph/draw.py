"""A picture of a graph (``deploy inspect --draw``, the parity report): one box per node, layered by depth.

Each box holds the node's name, kind and output shape and its key parameters (time constants and threshold of
a neuron, kernel / stride / padding of a convolution, in -> out of a linear map). Rows are topological depths
(the longest path from the Input node over forward edges), so a chain reads top to bottom. Edges come in three
kinds (:func:`layout`): *forward* (to the next row: a straight arrow), *skip* (a shortcut spanning more than one
row, e.g. a SEW-ResNet's residual: a blue dashed arrow routed in a lane to the right) and *recurrent* (an edge
carrying the previous step, which closes a cycle: a red dotted arrow in a lane to the left). Drawn with
matplotlib only (no Graphviz binary needed); ``.svg``, ``.png`` and ``.pdf`` by the file's suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nir
import numpy as np

from neuromoco.errors import UserError

EdgeKind = Literal["forward", "skip", "recurrent"]
FORMATS = (".svg", ".png", ".pdf")

# geometry in inches (one data unit is one inch of figure)
_W, _H, _ROW, _COL, _LANE = 2.5, 0.62, 0.95, 0.35, 0.16
_FONT = 7.0
_FILL = {"input": "#eeeeee", "output": "#eeeeee", "synapse": "#cfe2f3", "pool": "#d9ead3", "reshape": "#f3f3f3",
         "scale": "#f3f3f3", "threshold": "#f3f3f3", "neuron": "#fce5cd", "neuron-silent": "#fff2cc"}
_EDGE: dict[str, dict[str, Any]] = {"forward": dict(color="#333333", linestyle="-"),
                                    "skip": dict(color="#1f5fbf", linestyle="--"),
                                    "recurrent": dict(color="#c0392b", linestyle=":")}


@dataclass(frozen=True)
class Layout:
    """Where each node goes and what each edge is: ``depth`` (row), ``column`` (place in its row), edge kinds."""

    depth: dict[str, int]
    column: dict[str, int]
    edges: dict[tuple[str, str], EdgeKind]

    @property
    def rows(self) -> int:
        return max(self.depth.values()) + 1

    @property
    def width(self) -> int:
        return max(self.column.values()) + 1


def layout(graph: nir.NIRGraph) -> Layout:
    """Depths (longest forward path from the Input node), columns (execution order within a row), edge kinds."""
    from neuromoco.deploy.graph import structure

    st = structure(graph)
    depth: dict[str, int] = {}
    for n in st.order:
        forward = [depth[src] for src, rec in st.preds[n] if not rec]
        depth[n] = max(forward) + 1 if forward else 0
    column: dict[str, int] = {}
    used: dict[int, int] = {}
    for n in st.order:
        column[n] = used.get(depth[n], 0)
        used[depth[n]] = column[n] + 1
    recurrent = set(st.recurrent)
    edges: dict[tuple[str, str], EdgeKind] = {}
    for a, b in graph.edges:
        e = (a, b)
        edges[e] = "recurrent" if e in recurrent else "skip" if depth[b] - depth[a] > 1 else "forward"
    return Layout(depth, column, edges)


def check_format(path: str | Path) -> None:
    """A UserError line unless ``path``'s suffix is a format :func:`draw_graph` writes."""
    if Path(path).suffix.lower() not in FORMATS:
        raise UserError(f"cannot draw {path}: the picture's suffix must be one of {', '.join(FORMATS)}")


def draw_graph(graph: nir.NIRGraph, path: str | Path, input_shape: list[int] | None = None,
               title: str | None = None) -> Path:
    """Draw ``graph`` to ``path`` (.svg, .png or .pdf) and return the path."""
    from neuromoco.deploy.graph import node_io_shapes, normalize_graph
    from neuromoco.io import atomic_write

    check_format(path)
    graph = normalize_graph(graph)
    lay = layout(graph)
    io = node_io_shapes(graph, input_shape)
    plt = _pyplot()
    fig, ax = _canvas(plt, lay)
    centre = {n: _centre(lay, n) for n in lay.depth}
    sums = {b for b in lay.depth if sum(1 for _, t in graph.edges if t == b) > 1}
    roles = {_box(ax, x, y, graph.nodes[n], n, io[n], n in sums) for n, (x, y) in centre.items()}
    _edges(ax, lay, centre)
    _legend(ax, lay, title or f"{len(lay.depth)} nodes, {len(lay.edges)} edges",
            {"reshape" if r in ("input", "output", "scale", "threshold") else r for r in roles})
    fmt = Path(path).suffix.lower()[1:]
    dpi = min(110.0, 30000.0 / max(fig.get_size_inches()))  # a graph of hundreds of rows stays a loadable PNG
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ canvas

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _lanes(lay: Layout, kind: EdgeKind) -> dict[tuple[str, str], int]:
    """A lane per skip (or recurrent) edge, so that edges whose row spans overlap never share one."""
    spans = sorted(((min(lay.depth[a], lay.depth[b]), max(lay.depth[a], lay.depth[b])), e)
                   for e, k in lay.edges.items() if k == kind for a, b in [e])
    ends: list[int] = []  # per lane, the last row it is busy until
    lane: dict[tuple[str, str], int] = {}
    for (lo, hi), e in spans:
        free = next((i for i, end in enumerate(ends) if end < lo), None)
        if free is None:
            ends.append(hi)
            free = len(ends) - 1
        ends[free] = hi
        lane[e] = free
    return lane


def _extent(lay: Layout) -> tuple[float, float, int, int]:
    """The boxes' half width (inches), the figure's height, and the lanes needed on the right and left."""
    right = max(_lanes(lay, "skip").values(), default=-1) + 1
    left = max(_lanes(lay, "recurrent").values(), default=-1) + 1
    half = (lay.width * (_W + _COL)) / 2
    height = lay.rows * _ROW + 1.0  # a top band for the title and legend
    return half, height, right, left


def _canvas(plt: Any, lay: Layout) -> tuple[Any, Any]:
    half, height, right, left = _extent(lay)
    x0 = -half - 0.25 - left * _LANE
    x1 = half + 0.25 + right * _LANE
    width = max(x1 - x0, 7.0)  # room for the legend on narrow graphs
    x1 = x0 + width
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(x0, x1)
    ax.set_ylim(-(lay.rows - 1) * _ROW - _H / 2 - 0.2, _H / 2 + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _centre(lay: Layout, n: str) -> tuple[float, float]:
    in_row = sum(1 for m in lay.depth if lay.depth[m] == lay.depth[n])
    return (lay.column[n] - (in_row - 1) / 2) * (_W + _COL), -lay.depth[n] * _ROW


# ------------------------------------------------------------------------------------------------- boxes

def node_label(node: Any, name: str, io: tuple[Any, Any], summed: bool = False) -> tuple[str, str, str]:
    """A box's three lines: the name, the kind and output shape (and whether inputs add up), key parameters."""
    from neuromoco.deploy.nodes import facts

    row = facts(node, name)
    head = name if len(name) <= 30 else name[:14] + "…" + name[-14:]
    kind = f"{row.name} {_shape(io[1])}" + ("   Σ inputs" if summed else "")
    return head, kind, _details(node, name, row, io)


def _box(ax: Any, x: float, y: float, node: Any, name: str, io: tuple[Any, Any], summed: bool) -> str:
    """Draw one node's box; return its colour role."""
    from matplotlib.patches import FancyBboxPatch

    from neuromoco.deploy.nodes import facts

    row = facts(node, name)
    role = "neuron-silent" if row.role == "neuron" and not row.spiking else row.role
    ax.add_patch(FancyBboxPatch((x - _W / 2, y - _H / 2), _W, _H, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=_FILL.get(role, "#ffffff"), edgecolor="#555555", linewidth=0.8))
    head, kind, detail = node_label(node, name, io, summed)
    ax.text(x, y + 0.17, head, ha="center", va="center", fontsize=_FONT + 0.5, fontweight="bold")
    ax.text(x, y, kind, ha="center", va="center", fontsize=_FONT)
    if detail:
        ax.text(x, y - 0.17, detail, ha="center", va="center", fontsize=_FONT, color="#333333")
    return role


def _shape(shape: Any) -> str:
    return "[" + ",".join(str(int(s)) for s in shape) + "]"


def _value(values: Any, unit_ms: bool = False) -> str:
    """One value (``4 ms``, ``0.4``) or a range ``a..b`` of a parameter."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return "-"
    lo, hi = float(a.min()), float(a.max())
    scale, unit = (1e3, " ms") if unit_ms else (1.0, "")
    return f"{lo * scale:.3g}{unit}" if lo == hi else f"{lo * scale:.3g}..{hi * scale:.3g}{unit}"


def _details(node: Any, name: str, row: Any, io: tuple[Any, Any]) -> str:
    """The key parameters of a node, one short line."""
    from neuromoco.deploy.graph import conv_geometry, pool_geometry

    if row.role == "neuron":
        parts = []
        for p, label in (("tau", "τ"), ("tau_syn", "τsyn"), ("tau_mem", "τmem")):
            if getattr(node, p, None) is not None:
                parts.append(f"{label}={_value(getattr(node, p), unit_ms=True)}")
        if getattr(node, "v_threshold", None) is not None:
            parts.append(f"θ={_value(node.v_threshold)}")
        return "  ".join(parts)
    if row.role == "synapse" and row.kernel_dims:
        g = conv_geometry(node, name)
        text = (f"k{'×'.join(map(str, g['kernel']))} s{','.join(map(str, g['stride']))} "
                f"p{','.join(str(p[0]) for p in g['padding'])}  {io[0][0]}→{io[1][0]} ch")
        if g["groups"] != 1:
            text += f" g{g['groups']}"
        if any(d != 1 for d in g["dilation"]):
            text += f" d{','.join(map(str, g['dilation']))}"
        return text
    if row.role == "synapse":
        return f"{int(np.prod(io[0]))}→{int(np.prod(io[1]))}" + (" +bias" if "bias" in row.params else "")
    if row.role == "pool":
        g = pool_geometry(node, name)
        return f"k{'×'.join(map(str, g['kernel']))} s{','.join(map(str, g['stride']))}"
    if row.role == "reshape":
        return f"{_shape(io[0])}→{_shape(io[1])}"
    if row.params:
        return "  ".join(f"{p}={_value(getattr(node, p))}" for p in row.params if getattr(node, p, None) is not None)
    return ""


# ------------------------------------------------------------------------------------------------- edges

def _edges(ax: Any, lay: Layout, centre: dict[str, tuple[float, float]]) -> None:
    """Forward edges straight; skip edges in lanes on the right, recurrent ones on the left (see :func:`_route`)."""
    right = max(x for x, _ in centre.values()) + _W / 2
    left = min(x for x, _ in centre.values()) - _W / 2
    lanes = {"skip": _lanes(lay, "skip"), "recurrent": _lanes(lay, "recurrent")}
    in_row: dict[int, int] = {}
    for d in lay.depth.values():
        in_row[d] = in_row.get(d, 0) + 1
    for (a, b), kind in lay.edges.items():
        (xa, ya), (xb, yb) = centre[a], centre[b]
        style = _EDGE[kind]
        if kind == "forward":
            _arrow(ax, (xa, ya - _H / 2), (xb, yb + _H / 2), style)
            continue
        lane = lanes[kind][(a, b)]
        if kind == "skip":
            side, lane_x = 1.0, right + (lane + 1) * _LANE
            outer_a, outer_b = lay.column[a] == in_row[lay.depth[a]] - 1, lay.column[b] == in_row[lay.depth[b]] - 1
        else:
            side, lane_x = -1.0, left - (lane + 1) * _LANE
            outer_a, outer_b = lay.column[a] == 0, lay.column[b] == 0
        _route(ax, (xa, ya), (xb, yb), lane_x, side, outer_a, outer_b, 0.05 + 0.045 * (lane % 5), style)


def _route(ax: Any, a: tuple[float, float], b: tuple[float, float], lane_x: float, side: float, outer_a: bool,
           outer_b: bool, gap: float, style: dict[str, Any]) -> None:
    """An edge from box ``a`` to box ``b`` through a lane at ``lane_x`` (``side`` +1: right, -1: left).

    A box at the lane's edge of its row is left or entered from the side; any other from below (into the gap
    under its row) or from above (out of the gap over its row), so the edge never crosses another box.
    """
    (xa, ya), (xb, yb) = a, b
    if outer_a:
        xs, ys = [xa + side * _W / 2], [ya - 0.12]
    else:
        xs, ys = [xa + side * _W / 4, xa + side * _W / 4], [ya - _H / 2, ya - _H / 2 - gap]
    xs += [lane_x, lane_x]
    ys += [ys[-1], yb + 0.12 if outer_b else yb + _H / 2 + gap]
    if outer_b:
        end = (xb + side * _W / 2, ys[-1])
    else:
        xs.append(xb + side * _W / 4)
        ys.append(ys[-1])
        end = (xb + side * _W / 4, yb + _H / 2)
    ax.plot(xs, ys, linewidth=1.0, **style)
    _arrow(ax, (xs[-1], ys[-1]), end, style)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], style: dict[str, Any]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=style["color"],
                                                          linestyle=style["linestyle"], linewidth=1.0,
                                                          shrinkA=0, shrinkB=0, mutation_scale=9))


def _legend(ax: Any, lay: Layout, title: str, roles: set[str]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = [k for k in ("forward", "skip", "recurrent") if k in lay.edges.values()]
    names = {"forward": "forward edge", "skip": "shortcut (skips rows; inputs add up)",
             "recurrent": "recurrent (previous step)"}
    handles: list[Any] = [Line2D([], [], linewidth=1.2, label=names[k], **_EDGE[k]) for k in kinds]
    handles += [Patch(facecolor=_FILL[r], edgecolor="#555555", label=label) for r, label in (
        ("synapse", "weights"), ("neuron", "spiking neuron"), ("neuron-silent", "non-spiking neuron"),
        ("pool", "pooling"), ("reshape", "other")) if r in roles]
    x0, x1 = ax.get_xlim()
    _, y1 = ax.get_ylim()
    ax.text(x0 + 0.15, y1 - 0.2, title, ha="left", va="top", fontsize=_FONT + 2, fontweight="bold")
    ax.legend(handles=handles, loc="upper right", fontsize=_FONT, ncol=2, frameon=False,
              bbox_to_anchor=(1.0, 1.0), borderaxespad=0.3)
