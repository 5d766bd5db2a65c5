"""`deploy inspect MODEL.nir [--draw graph.svg|png]`: load and check a NIR graph, print its nodes, shapes, edges and
neurons; ``--draw`` also draws it (:mod:`neuromoco.deploy.graph.draw`: kinds, shapes, key parameters, shortcut and
recurrent edges)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuromoco.deploy.nodes import NodeFacts

_IO = tuple[tuple[int, ...], tuple[int, ...]]  # a node's input and output shape


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the .nir file")
    p.add_argument("--card", type=Path, default=None,
                   help="model card JSON (default: X.card.json or model_card.json beside the graph)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--draw", type=Path, default=None, metavar="FILE.svg|png",
                   help="also draw the graph to this file (.svg, .png or .pdf)")


def _summary(values: Any) -> dict[str, Any]:
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"shape": list(a.shape)}
    if np.all(a == a.flat[0]):
        return {"value": float(a.flat[0]), "shape": list(a.shape)}
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "shape": list(a.shape)}


def describe(path: Path, card_path: Path | None = None, draw: Path | None = None) -> dict[str, Any]:
    """Everything `inspect` shows, as a JSON-ready dict (raises UserError on a bad graph or card); ``draw``: also
    draw the graph to that file."""
    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph, node_io_shapes, structure

    card = None
    card_file = card_path or ModelCard.beside(path)
    if card_path is not None or card_file.exists():
        card = ModelCard.load(card_file)
    graph = load_graph(path, input_shape=card.input_shape if card else None)
    io = node_io_shapes(graph, card.input_shape if card else None)
    if draw is not None:
        from neuromoco.deploy.graph.draw import draw_graph

        draw_graph(graph, draw, card.input_shape if card else None, title=path.name)
    st = structure(graph)
    nodes = [_node_entry(graph.nodes[name], name, io[name]) for name in st.order]
    return {
        "file": str(path),
        "nodes": nodes,
        "edges": [{"from": a, "to": b, "recurrent": (a, b) in set(st.recurrent)} for a, b in graph.edges],
        "sums": _sums(graph.edges),
        "input": st.input,
        "output": st.output,
        "recurrent": bool(st.recurrent),
        "parameters": sum(e["weights"]["parameters"] for e in nodes if "weights" in e),
        "spiking_neurons": int(sum(e.get("neurons", 0) for e in nodes if e.get("spiking"))),
        "card": None if card is None else {"path": str(card_file), **card.__dict__},
    }


def _sums(edges: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Nodes with several incoming edges and their sources: NIR adds the inputs up (a residual ADD)."""
    into: dict[str, list[str]] = {}
    for a, b in edges:
        into.setdefault(b, []).append(a)
    return {b: srcs for b, srcs in into.items() if len(srcs) > 1}


def _node_entry(node: Any, name: str, io: _IO) -> dict[str, Any]:
    """One node's line of `inspect`: name, type, shapes and what its role has to show."""
    from neuromoco.deploy.nodes import NODES

    row = NODES[type(node)]
    entry: dict[str, Any] = {"name": name, "type": row.name, "input_shape": list(io[0]), "output_shape": list(io[1])}
    details = _DETAILS.get(row.role)
    if details is not None:
        entry.update(details(node, name, row, io))
    return entry


def _neuron_details(node: Any, name: str, row: NodeFacts, io: _IO) -> dict[str, Any]:
    import numpy as np

    return {"spiking": row.spiking, "neurons": int(np.prod(io[1])),
            "params": {p: _summary(getattr(node, p)) for p in row.params if getattr(node, p, None) is not None}}


def _weight_details(node: Any, name: str, row: NodeFacts, io: _IO) -> dict[str, Any]:
    import numpy as np

    w = np.asarray(node.weight)
    n = int(w.size) + (int(np.size(node.bias)) if "bias" in row.params else 0)
    out: dict[str, Any] = {"weights": {"shape": list(w.shape), "parameters": n}}
    if row.kernel_dims:  # a conv node
        from neuromoco.deploy.graph import conv_geometry

        g = conv_geometry(node, name)
        out["conv"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "nd"}
    return out


def _pool_details(node: Any, name: str, row: NodeFacts, io: _IO) -> dict[str, Any]:
    from neuromoco.deploy.graph import pool_geometry

    return {"pool": {k: list(v) for k, v in pool_geometry(node, name).items()}}


def _flatten_details(node: Any, name: str, row: NodeFacts, io: _IO) -> dict[str, Any]:
    from neuromoco.deploy.graph import flatten_span

    return {"start_dim": int(node.start_dim), "end_dim": int(node.end_dim),
            "merges_dims": list(flatten_span(node, tuple(io[0]), name))}  # without the batch


#: what `inspect` shows beyond name, type and shapes, per node role (other roles show nothing more)
_DETAILS = {"neuron": _neuron_details, "synapse": _weight_details, "pool": _pool_details,
            "reshape": _flatten_details}


def _fmt(v: dict[str, Any]) -> str:
    if "value" in v:
        return f"{v['value']:g}"
    if "min" in v:
        return f"{v['min']:g}..{v['max']:g}"
    return "-"


def run(args: argparse.Namespace) -> int:
    if args.draw is not None:
        from neuromoco.deploy.graph.draw import check_format

        check_format(args.draw)  # before any work
    info = describe(args.model, args.card, args.draw)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    if args.draw is not None:
        print(f"drew {args.draw}")
    print(f"{info['file']}: {len(info['nodes'])} nodes, {len(info['edges'])} edges, "
          f"{info['parameters']} weights, {info['spiking_neurons']} spiking neurons"
          + (", recurrent" if info["recurrent"] else ""))
    print("\nnodes (execution order):")
    w = max(len(n["name"]) for n in info["nodes"])
    for n in info["nodes"]:
        extra = ""
        if "weights" in n:
            extra = f"weight {n['weights']['shape']}"
            if "conv" in n:
                c = n["conv"]
                extra += f" stride {c['stride']} pad {c['padding']} dil {c['dilation']} groups {c['groups']}"
        elif "pool" in n:
            extra = f"kernel {n['pool']['kernel']} stride {n['pool']['stride']} pad {n['pool']['padding']}"
        elif "start_dim" in n:
            extra = f"start_dim {n['start_dim']} end_dim {n['end_dim']} (merges dims {n['merges_dims']} of the input)"
        elif "params" in n:
            extra = " ".join(f"{k}={_fmt(v)}" for k, v in n["params"].items())
        print(f"  {n['name']:<{w}}  {n['type']:<9} {n['input_shape']!s:>16} -> {n['output_shape']!s:<16} {extra}")
    print("\nedges:")
    for e in info["edges"]:
        print(f"  {e['from']} -> {e['to']}" + ("   (recurrent: previous step)" if e["recurrent"] else ""))
    if info["sums"]:
        print("\ninputs added up (several edges into one node, e.g. a residual ADD):")
        for b, srcs in info["sums"].items():
            print(f"  {b} <- {' + '.join(srcs)}")
    card = info["card"]
    if card:
        print(f"\nmodel card ({card['path']}):")
        for k in ("model", "input_shape", "time_steps", "dt", "dataset", "class_names", "accuracy", "version"):
            if card.get(k) not in (None, "", [], {}):
                print(f"  {k}: {card[k]}")
    else:
        print("\nno model card beside the graph (dt, input shape and T must then be given to other commands)")
    return 0
