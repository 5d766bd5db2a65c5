"""NIR node facts: one table that graph checks, the reference executor, every target and energy dispatch on.

Each NIR node type the project runs has one :class:`NodeFacts` row: its role in a network, the numeric
parameters NIR stores for it, and whether it holds state, spikes or a weight matrix. Code that needs to
treat node types differently looks the row up (:func:`facts`) or keeps its own ``{nir type: handler}``
table and dispatches through :func:`handler` (which names the node and its type when the table lacks
it), instead of an ``isinstance`` chain per module. Adding a stateless (connection) node type means three
files: one row here, its rule in ``reference_executor.KERNELS`` and its ONNX emitter. The rest is derived from
the reference rule where a table lacks the type: its output shape (``graph.shapes``), its Lava linear map
(``loihi.linear_ops.ByReference``), the metrics of ``deploy/metrics`` (they read this row and apply the node
through the rule); an entry in ``graph.SHAPE_RULES`` (named shape errors) or ``loihi.linear_ops.LINEAR_OPS``
(shared kernels, no probing) is an improvement, not a requirement. A neuron type needs a row here, its
equations in ``semantics`` and each target's neuron. ``tests/test_nodes.py`` checks that the core's tables
cover this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import nir

from neuromoco.errors import UserError

Role = Literal["input", "output", "synapse", "pool", "reshape", "scale", "threshold", "neuron"]


@dataclass(frozen=True)
class NodeFacts:
    """What every backend needs to know of one NIR node type."""

    type: type  # the nir class
    role: Role  # what it does in a network
    params: tuple[str, ...] = ()  # numeric parameters as NIR names them (checked finite on load)
    weighted: bool = False  # holds a weight matrix (energy also counts pools and Scale: metrics.walk.COUNTED_TYPES)
    stateful: bool = False  # carries state from one time step to the next (the neurons)
    spiking: bool = False  # a neuron whose output is 0/1 spikes (LIF, IF, CubaLIF)
    current: bool = False  # a neuron with a synaptic-current state (CubaLIF, CubaLI)
    leak: bool = False  # a neuron with a membrane time constant (all but IF)
    kernel_dims: int = 0  # spatial dimensions of a conv / pooling kernel (Conv1d 1; Conv2d and the pools 2)

    @property
    def name(self) -> str:
        return self.type.__name__

    @property
    def connection(self) -> bool:
        """Part of a connection between neuron layers: a (possibly affine) map of its input, no state."""
        return self.role in ("synapse", "pool", "reshape", "scale")


_POOL = ("kernel_size", "stride", "padding")
NODES: dict[type, NodeFacts] = {row.type: row for row in (
    NodeFacts(nir.Input, "input"),
    NodeFacts(nir.Output, "output"),
    NodeFacts(nir.Affine, "synapse", ("weight", "bias"), weighted=True),
    NodeFacts(nir.Linear, "synapse", ("weight",), weighted=True),
    NodeFacts(nir.Conv1d, "synapse", ("weight", "bias"), weighted=True, kernel_dims=1),
    NodeFacts(nir.Conv2d, "synapse", ("weight", "bias"), weighted=True, kernel_dims=2),
    NodeFacts(nir.SumPool2d, "pool", _POOL, kernel_dims=2),
    NodeFacts(nir.AvgPool2d, "pool", _POOL, kernel_dims=2),
    NodeFacts(nir.Flatten, "reshape"),
    NodeFacts(nir.Scale, "scale", ("scale",)),
    NodeFacts(nir.Threshold, "threshold", ("threshold",)),
    NodeFacts(nir.IF, "neuron", ("r", "v_threshold", "v_reset"), stateful=True, spiking=True),
    NodeFacts(nir.LIF, "neuron", ("tau", "r", "v_leak", "v_threshold", "v_reset"), stateful=True, spiking=True,
              leak=True),
    NodeFacts(nir.LI, "neuron", ("tau", "r", "v_leak"), stateful=True, leak=True),
    NodeFacts(nir.CubaLIF, "neuron", ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
              stateful=True, spiking=True, current=True, leak=True),
    NodeFacts(nir.CubaLI, "neuron", ("tau_syn", "tau_mem", "r", "v_leak", "w_in"), stateful=True, current=True,
              leak=True),
)}


def types_where(**want: object) -> tuple[type, ...]:
    """The node types whose facts have every given value, e.g. ``types_where(role="synapse")``."""
    return tuple(t for t, row in NODES.items() if all(getattr(row, k) == v for k, v in want.items()))


SUPPORTED_TYPES: tuple[type, ...] = tuple(NODES)
SUPPORTED_NAMES: tuple[str, ...] = tuple(t.__name__ for t in SUPPORTED_TYPES)
NEURON_TYPES: tuple[type, ...] = types_where(role="neuron")
SPIKING_TYPES: tuple[type, ...] = types_where(spiking=True)
SYNAPSE_TYPES: tuple[type, ...] = types_where(role="synapse")
CONNECTION_TYPES: tuple[type, ...] = tuple(t for t, row in NODES.items() if row.connection)


def facts(node: nir.NIRNode, name: str | None = None) -> NodeFacts:
    """The facts of ``node``'s exact type; a :class:`UserError` naming it when the project does not run it."""
    row = NODES.get(type(node))
    if row is None:
        where = f"node {name!r} has" if name else "a node has"
        raise UserError(f"{where} unsupported type {type(node).__name__} (supported: {', '.join(SUPPORTED_NAMES)})")
    return row


def node_is(node: nir.NIRNode, **want: object) -> bool:
    """Whether ``node``'s type is in the table with every given fact, e.g. ``node_is(node, role="input")``.

    False, not an error, for a type the project does not run: for code that walks a graph not yet checked.
    """
    row = NODES.get(type(node))
    return row is not None and all(getattr(row, k) == v for k, v in want.items())


H = TypeVar("H")


def handler(table: Mapping[type, H], node: nir.NIRNode, name: str, where: str) -> H:
    """``table[type(node)]``, or a :class:`UserError` saying that ``where`` (a target, an executor) cannot map it."""
    try:
        return table[type(node)]
    except KeyError:
        facts(node, name)  # an unknown type gets the general message
        raise UserError(f"node {name!r} ({type(node).__name__}) cannot be mapped by {where}; it maps "
                        f"{', '.join(t.__name__ for t in table)}") from None
