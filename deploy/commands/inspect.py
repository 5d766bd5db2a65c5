"""`deploy inspect MODEL.nir`: load and check a NIR graph, print its nodes, shapes, edges and neurons."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the .nir file")
    p.add_argument("--card", type=Path, default=None,
                   help="model card JSON (default: X.card.json or model_card.json beside the graph)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _summary(values: Any) -> dict[str, Any]:
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"shape": list(a.shape)}
    if np.all(a == a.flat[0]):
        return {"value": float(a.flat[0]), "shape": list(a.shape)}
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "shape": list(a.shape)}


def describe(path: Path, card_path: Path | None = None) -> dict[str, Any]:
    """Everything `inspect` shows, as a JSON-ready dict (raises UserError on a bad graph or card)."""
    import numpy as np

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph, node_io_shapes, structure
    from neuromoco.deploy.nodes import NODES

    card = None
    card_file = card_path or ModelCard.beside(path)
    if card_path is not None or card_file.exists():
        card = ModelCard.load(card_file)
    graph = load_graph(path, input_shape=card.input_shape if card else None)
    io = node_io_shapes(graph, card.input_shape if card else None)
    st = structure(graph)
    nodes = []
    n_params = 0
    for name in st.order:
        node = graph.nodes[name]
        kind = type(node).__name__
        entry: dict[str, Any] = {"name": name, "type": kind, "input_shape": list(io[name][0]),
                                 "output_shape": list(io[name][1])}
        row = NODES[type(node)]
        if row.role == "neuron":
            entry["spiking"] = row.spiking
            entry["neurons"] = int(np.prod(io[name][1]))
            entry["params"] = {p: _summary(getattr(node, p)) for p in row.params
                               if getattr(node, p, None) is not None}
        elif row.weighted:
            w = np.asarray(node.weight)
            n = int(w.size) + (int(np.size(node.bias)) if hasattr(node, "bias") else 0)
            n_params += n
            entry["weights"] = {"shape": list(w.shape), "parameters": n}
            if kind.startswith("Conv"):
                from neuromoco.deploy.graph import conv_geometry
                g = conv_geometry(node, name)
                entry["conv"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "nd"}
        elif kind in ("SumPool2d", "AvgPool2d"):
            from neuromoco.deploy.graph import pool_geometry
            entry["pool"] = {k: list(v) for k, v in pool_geometry(node, name).items()}
        elif kind == "Flatten":
            from neuromoco.deploy.graph import flatten_span
            entry["start_dim"], entry["end_dim"] = int(node.start_dim), int(node.end_dim)
            entry["merges_dims"] = list(flatten_span(node, tuple(io[name][0]), name))  # without the batch
        nodes.append(entry)
    return {
        "file": str(path),
        "nodes": nodes,
        "edges": [{"from": a, "to": b, "recurrent": (a, b) in set(st.recurrent)} for a, b in graph.edges],
        "input": st.input,
        "output": st.output,
        "recurrent": bool(st.recurrent),
        "parameters": n_params,
        "spiking_neurons": int(sum(e.get("neurons", 0) for e in nodes if e.get("spiking"))),
        "card": None if card is None else {"path": str(card_file), **card.__dict__},
    }


def _fmt(v: dict[str, Any]) -> str:
    if "value" in v:
        return f"{v['value']:g}"
    if "min" in v:
        return f"{v['min']:g}..{v['max']:g}"
    return "-"


def run(args: argparse.Namespace) -> int:
    info = describe(args.model, args.card)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
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
    card = info["card"]
    if card:
        print(f"\nmodel card ({card['path']}):")
        for k in ("model", "input_shape", "time_steps", "dt", "dataset", "class_names", "accuracy", "version"):
            if card.get(k) not in (None, "", [], {}):
                print(f"  {k}: {card[k]}")
    else:
        print("\nno model card beside the graph (dt, input shape and T must then be given to other commands)")
    return 0
