"""Which NIR nodes become Lava neuron layers and which become connections, and how late each layer runs.

* *Units* are the nodes with a state or an external value: the Input node and every neuron node
  (LIF, IF, CubaLIF, LI, CubaLI). *Targets* are the neuron nodes and the Output node.
* Everything between units is stateless and linear (Affine, Linear, Conv1d, Conv2d, SumPool2d,
  AvgPool2d, Flatten, Scale, and sums of several edges): :mod:`.compose` multiplies it into one map per
  source unit. Along the way every path counts the recurrent edges it crosses (0 or 1).
* Every Lava connection process delays by one step (``Dense``/``Sparse`` send at ``t`` what they
  accumulated at ``t-1``). A target's *delay* ``d`` is how many steps after the reference it runs:
  ``d(Input) = 0`` and, over its incoming paths from unit ``S`` with ``r`` recurrent edges,
  ``d(X) = max(d(S) + 1 - r)``. A self-recurrent neuron (``r = 1`` from itself) is consistent by itself:
  the one-step delay of Lava's connection is exactly NIR's recurrent delay.
* Paths that arrive early (a skip connection around ``k`` neuron layers, an Input read by a deep layer)
  are padded: their connection gets an *extra* synaptic delay ``k = d(X) - (d(S) + 1 - r)`` (Lava's
  ``DelaySparse``, Loihi 2's synaptic delay, at most :data:`MAX_EXTRA_DELAY`), so every input of a layer
  meets at the step the reference computes it. A path that arrives *late* cannot be fixed by adding delay:
  a recurrence through more than one neuron layer (``A -> B -> A`` takes two Lava steps where NIR's
  recurrent edge takes one) is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir

from neuromoco.deploy.graph import GraphStructure
from neuromoco.deploy.loihi.linear_ops import LINEAR_OPS, WHERE
from neuromoco.deploy.nodes import NODES, facts, handler
from neuromoco.errors import UserError

# node types the project runs elsewhere but Loihi cannot: why, for the error message
NO_LOIHI: dict[type, str] = {
    nir.Threshold: "a stateless threshold (spike when the input exceeds a value, no membrane) has no Loihi "
                   "neuron counterpart",
}

Pairs = dict[str, set[tuple[str, int]]]  # target -> {(source unit, recurrent edges on the path)}
Extra = dict[str, dict[tuple[str, int], int]]  # target -> {(source unit, recurrent edges): added delay}

#: the largest added synaptic delay: Loihi 2 holds a synapse's delay in 6 bits (Lava's ``DelaySparse``
#: bit-accurate model refuses more)
MAX_EXTRA_DELAY = 63


@dataclass(frozen=True)
class Layout:
    """The graph seen as Lava sees it (see the module docstring)."""

    input: str
    output: str
    units: list[str]  # the Input node, then the neuron nodes, in execution order
    stateless: list[str]  # the nodes between units, in execution order
    lin_order: list[str]  # the same, ordered over all edges among them (recurrent ones too)
    pairs: Pairs
    delays: dict[str, int]  # every target's (and the Input's) Lava delay
    extra: Extra  # every target's added synaptic delay per incoming (source unit, recurrent edges)

    @property
    def neurons(self) -> list[str]:
        return [n for n in self.units if n != self.input]

    @property
    def targets(self) -> list[str]:
        return [*self.neurons, self.output]


def check_mappable(g: nir.NIRGraph) -> None:
    """Refuse, naming the node, anything that is neither a unit, the Output, nor a linear op Lava maps."""
    for name, node in g.nodes.items():
        if type(node) in NO_LOIHI:
            raise UserError(f"node {name!r} ({type(node).__name__}) cannot run on Lava: {NO_LOIHI[type(node)]}")
        row = facts(node, name)
        if row.role not in ("input", "output", "neuron") and not row.connection:  # connections: ByReference
            handler(LINEAR_OPS, node, name, WHERE)


def is_neuron(node: nir.NIRNode) -> bool:
    return NODES[type(node)].role == "neuron"


def layout(g: nir.NIRGraph, st: GraphStructure) -> Layout:
    """Units, stateless order, structural pairs and delays of a checked, normalized graph."""
    units = [n for n in st.order if n == st.input or is_neuron(g.nodes[n])]
    targets = [*(n for n in units if n != st.input), st.output]
    stateless = [n for n in st.order if n not in units and n != st.output]
    lin_order = stateless_order(st, stateless)
    pairs = structural_pairs(st, units, targets, lin_order)
    delay, extra = delays(st, targets, pairs)
    return Layout(st.input, st.output, units, stateless, lin_order, pairs, delay, extra)


def stateless_order(st: GraphStructure, stateless: list[str]) -> list[str]:
    """Stateless nodes ordered over *all* edges among them (recurrent ones too); a cycle is refused."""
    members = set(stateless)
    indeg = {n: sum(1 for s, _ in st.preds[n] if s in members) for n in stateless}
    ready = [n for n in stateless if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for b in st.succs[n]:
            if b in members:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    if len(order) != len(stateless):
        loop = [n for n in stateless if n not in order]
        raise UserError(f"nodes {', '.join(loop)} form a cycle without a neuron; Lava needs a neuron in "
                        "every recurrent loop")
    return order


def structural_pairs(st: GraphStructure, units: list[str], targets: list[str], lin_order: list[str]) -> Pairs:
    """For every target, the (source unit, recurrent edges on the path) pairs that reach it."""
    reach: Pairs = {u: {(u, 0)} for u in units}

    def incoming(n: str) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for src, rec in st.preds[n]:
            for u, r in reach[src]:
                out.add((u, r + int(rec)))
        return out

    for n in lin_order:
        reach[n] = incoming(n)
    pairs = {t: incoming(t) for t in targets}
    for t, ps in pairs.items():
        deep = [u for u, r in ps if r > 1]
        if deep:
            raise UserError(f"node {t!r} receives from {deep[0]!r} through two recurrent edges; the Lava "
                            "target supports one step of recurrence per loop")
    return pairs


def delays(st: GraphStructure, targets: list[str], pairs: Pairs) -> tuple[dict[str, int], Extra]:
    """Lava delay of every unit and target, and the synaptic delay each incoming path needs added.

    A target runs as late as its latest input; every earlier input is padded. An input that would arrive
    after the target runs (a recurrence through more than one neuron layer) is refused.
    """
    delay: dict[str, int] = {st.input: 0}
    pending = [t for t in st.order if t in targets]
    for t in pending:
        cands = [delay[u] + 1 - r for u, r in pairs[t] if u in delay]
        if not cands:
            raise UserError(f"node {t!r} is only reached through recurrent edges; the Lava target cannot "
                            "place it in time")
        delay[t] = max(cands)
    extra: Extra = {}
    for t in pending:
        extra[t] = {}
        for u, r in sorted(pairs[t]):
            k = delay[t] - (delay[u] + 1 - r)
            if k < 0:
                raise UserError(
                    f"node {t!r} receives a recurrent input from {u!r} that loops through more than one "
                    f"neuron layer; every Lava connection adds a step of delay, so such a loop takes "
                    f"{1 - k} steps where NIR's recurrent edge takes one, and a delay can be added but not "
                    f"removed: the Lava target supports recurrence of a neuron layer onto itself only")
            if k > MAX_EXTRA_DELAY:
                raise UserError(
                    f"node {t!r} receives from {u!r} {k} steps earlier than from its deepest input (a skip "
                    f"connection around {k} neuron layers); Loihi 2 delays a synapse by at most "
                    f"{MAX_EXTRA_DELAY} steps")
            extra[t][(u, r)] = k
    return delay, extra
