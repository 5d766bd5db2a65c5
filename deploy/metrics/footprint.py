"""NeuroBench's static metrics of a graph: ``footprint`` (bytes of weights, biases, neuron constants and neuron
state at a target's precision, which the target's :class:`~neuromoco.deploy.targets.TargetSpec` states) and
``connection_sparsity``. Definitions: :mod:`.neurobench`."""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from neuromoco.deploy.nodes import NODES, node_is


def precision_of(target: str, options: dict[str, Any] | None = None) -> tuple[str, dict[str, int]]:
    """The precision name and bytes per value of ``target`` under ``options`` (its ``TargetSpec``'s facts)."""
    from neuromoco.deploy.targets import spec

    return spec(target).precision_of(options)


def _weighted(graph: nir.NIRGraph) -> dict[str, Any]:
    return {k: v for k, v in graph.nodes.items() if node_is(v, weighted=True)}


def connection_sparsity(graph: nir.NIRGraph) -> float:
    """Zero weights / all weights of the weighted nodes, rounded to 4 decimals (NeuroBench's rounding)."""
    zeros = total = 0
    for node in _weighted(graph).values():
        w = np.asarray(node.weight)
        zeros += int((w == 0).sum())
        total += int(w.size)
    return round(zeros / total, 4) if total else 0.0


def _stored_values(node: Any, size: int) -> int:
    """Values a neuron node keeps: each of its NIR parameters (``nodes.NodeFacts.params``) once when uniform over
    the layer, per neuron otherwise; a zero-valued leak or reset needs no storage."""
    count = 0
    for p in NODES[type(node)].params:
        a = getattr(node, p, None)
        if a is None:
            continue
        a = np.asarray(a, dtype=np.float64)
        if p in ("v_leak", "v_reset") and not np.any(a):
            continue
        count += 1 if a.size <= 1 or np.all(a == a.flat[0]) else size
    return count


def _state_variables(node: Any) -> int:
    """State variables per neuron: the membrane, and the synaptic current where the neuron has one."""
    return 2 if NODES[type(node)].current else 1


def footprint(graph: nir.NIRGraph, shapes: dict[str, tuple[int, ...]], bytes_per: dict[str, int]) -> dict[str, int]:
    """Bytes of weights, biases, neuron constants and neuron state (one sample), and their sum ``footprint``."""
    weights = biases = constants = state = 0
    for node in _weighted(graph).values():
        weights += int(np.asarray(node.weight).size)
        b = getattr(node, "bias", None)
        biases += 0 if b is None else int(np.asarray(b).size)
    for name, node in graph.nodes.items():
        if node_is(node, role="neuron"):
            size = int(np.prod(shapes[name]))
            constants += _stored_values(node, size)
            state += size * _state_variables(node)
    out = {"weights": weights * bytes_per["weight"], "biases": biases * bytes_per["bias"],
           "neuron_constants": constants * bytes_per["neuron"], "neuron_state": state * bytes_per["state"]}
    out["footprint"] = sum(out.values())
    return out
