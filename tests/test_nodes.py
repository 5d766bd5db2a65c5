"""The NIR node facts table (neuromoco.deploy.nodes) against the code that dispatches on it.

Every node type in ``NODES`` must have a shape rule, a reference kernel and, if a synaptic layer counts
it, an energy rule; its parameter names must be real attributes of that NIR type; a type the project does
not run is one UserError line naming the node.
"""

from __future__ import annotations

import dataclasses

import nir
import numpy as np
import pytest

from neuromoco.deploy import graph, reference_executor
from neuromoco.deploy.metrics import walk
from neuromoco.deploy.nodes import (
    CONNECTION_TYPES,
    NEURON_TYPES,
    NODES,
    SPIKING_TYPES,
    SUPPORTED_NAMES,
    SYNAPSE_TYPES,
    facts,
    handler,
    node_is,
)
from neuromoco.errors import UserError

N = 6
_ONES = np.ones(N)
_POOL = {"kernel_size": np.array([2, 2]), "stride": np.array([2, 2]), "padding": np.array([0, 0])}
_CONV = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1}

#: one node of every type the project runs, with the (unbatched) input shape it takes
EXAMPLES: dict[type, tuple[nir.NIRNode, list[int]]] = {
    nir.Input: (nir.Input(input_type=np.array([N])), [N]),
    nir.Output: (nir.Output(output_type=None), [N]),
    nir.Affine: (nir.Affine(weight=np.ones((3, N)), bias=np.zeros(3)), [N]),
    nir.Linear: (nir.Linear(weight=np.ones((3, N))), [N]),
    nir.Conv1d: (nir.Conv1d(input_shape=None, weight=np.ones((2, 2, 3)), bias=np.zeros(2), **_CONV), [2, N]),
    nir.Conv2d: (nir.Conv2d(input_shape=None, weight=np.ones((2, 2, 3, 3)), bias=np.zeros(2), **_CONV), [2, N, N]),
    nir.SumPool2d: (nir.SumPool2d(**_POOL), [2, N, N]),
    nir.AvgPool2d: (nir.AvgPool2d(**_POOL), [2, N, N]),
    nir.Flatten: (nir.Flatten(input_type=None, start_dim=0, end_dim=-1), [2, N, N]),
    nir.Scale: (nir.Scale(scale=_ONES), [N]),
    nir.Threshold: (nir.Threshold(threshold=_ONES), [N]),
    nir.IF: (nir.IF(r=_ONES, v_threshold=_ONES, v_reset=0 * _ONES), [N]),
    nir.LIF: (nir.LIF(tau=_ONES, r=_ONES, v_leak=0 * _ONES, v_threshold=_ONES, v_reset=0 * _ONES), [N]),
    nir.LI: (nir.LI(tau=_ONES, r=_ONES, v_leak=0 * _ONES), [N]),
    nir.CubaLIF: (nir.CubaLIF(tau_syn=_ONES, tau_mem=_ONES, r=_ONES, v_leak=0 * _ONES, v_threshold=_ONES,
                              v_reset=0 * _ONES, w_in=_ONES), [N]),
    nir.CubaLI: (nir.CubaLI(tau_syn=_ONES, tau_mem=_ONES, r=_ONES, v_leak=0 * _ONES, w_in=_ONES), [N]),
}
_NOT_PARAMS = {"input_type", "output_type", "metadata"}


def _alone(node: nir.NIRNode, shape: list[int]) -> nir.NIRGraph:
    """Input -> node -> Output (just Input -> Output for those two)."""
    nodes = {"input": nir.Input(input_type=np.array(shape)), "output": nir.Output(output_type=None)}
    if facts(node).role in ("input", "output"):
        return nir.NIRGraph(nodes=nodes, edges=[("input", "output")], type_check=False)
    nodes = {"input": nodes["input"], "node": node, "output": nodes["output"]}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "node"), ("node", "output")], type_check=False)


def test_examples_cover_the_table():
    assert list(EXAMPLES) == list(NODES)


def test_every_type_has_a_shape_rule_and_a_reference_kernel():
    assert set(graph.SHAPE_RULES) == set(NODES)
    assert set(reference_executor.KERNELS) == set(NODES)


def test_energy_counts_every_connection_but_a_reshape():
    counted = {t for t in CONNECTION_TYPES if NODES[t].role != "reshape"}
    assert set(walk.COUNTED_TYPES) == counted


@pytest.mark.parametrize("kind", list(NODES), ids=lambda t: t.__name__)
def test_params_are_attributes_of_the_type(kind):
    node, _ = EXAMPLES[kind]
    row = NODES[kind]
    fields = {f.name for f in dataclasses.fields(kind)}
    assert set(row.params) <= fields, row.params
    for p in row.params:
        assert getattr(node, p) is not None, p
    if row.role == "neuron":  # a neuron's every field is a parameter: none escapes the finite check
        assert set(row.params) == fields - _NOT_PARAMS
    assert row.weighted == ("weight" in row.params)


@pytest.mark.parametrize("kind", list(NODES), ids=lambda t: t.__name__)
def test_each_type_checks_and_runs_alone(kind):
    from neuromoco.deploy.reference_executor import ReferenceExecutor

    node, shape = EXAMPLES[kind]
    g = _alone(node, shape)
    shapes = graph.check_graph(g)
    res = ReferenceExecutor(g, 1e-3, record_spikes=True).run(np.ones((2, 1, *shape), dtype=np.float32))
    assert res.output.shape[:2] == (2, 1)
    assert list(res.spike_counts) == (["node"] if NODES[kind].spiking else [])
    if NODES[kind].kernel_dims:
        assert len(shapes["input"]) == NODES[kind].kernel_dims + 1  # [C, *spatial]


def test_derived_tuples_follow_the_rows():
    assert set(NEURON_TYPES) == {t for t, r in NODES.items() if r.role == "neuron"}
    assert set(SPIKING_TYPES) == {nir.LIF, nir.IF, nir.CubaLIF}
    assert set(SYNAPSE_TYPES) == {nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d}
    assert all(NODES[t].stateful for t in NEURON_TYPES)
    assert {t for t, r in NODES.items() if r.current} == {nir.CubaLIF, nir.CubaLI}
    assert {t for t, r in NODES.items() if r.role == "neuron" and not r.leak} == {nir.IF}
    assert SUPPORTED_NAMES == tuple(t.__name__ for t in NODES)


def test_unsupported_type_is_one_line_naming_the_node():
    delay = nir.Delay(delay=np.ones(3))
    with pytest.raises(UserError, match=r"^node 'd1' has unsupported type Delay \(supported: Input, ") as err:
        facts(delay, "d1")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"^node 'd1' has unsupported type Delay ") as err:
        handler(reference_executor.KERNELS, delay, "d1", "the reference executor")
    assert "\n" not in str(err.value)
    assert not node_is(delay) and not node_is(delay, role="input")


def test_handler_names_node_type_and_where_for_a_type_the_table_lacks():
    fc = nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2))
    assert handler({nir.Affine: len}, fc, "fc", "x") is len
    with pytest.raises(UserError, match=r"^node 'fc' \(Affine\) cannot be mapped by a chip; it maps LIF, IF$"):
        handler({nir.LIF: len, nir.IF: len}, fc, "fc", "a chip")


def test_node_is():
    lif, _ = EXAMPLES[nir.LIF]
    assert node_is(lif, role="neuron", spiking=True) and node_is(lif)
    assert not node_is(lif, current=True)
    assert node_is(EXAMPLES[nir.Flatten][0], connection=True)


@pytest.mark.parametrize("kind", [t for t in CONNECTION_TYPES if t is not nir.Flatten], ids=lambda t: t.__name__)
def test_a_connection_kind_without_a_shape_rule_takes_its_reference_rules_shape(kind, monkeypatch):
    """A new stateless kind needs no shape rule: without one its output shape is its reference rule's."""
    node, shape = EXAMPLES[kind]
    want = graph.node_io_shapes(_alone(node, shape), shape)
    monkeypatch.delitem(graph.shapes.SHAPE_RULES, kind)
    assert graph.node_io_shapes(_alone(node, shape), shape) == want
    wrong = {nir.Conv1d: [shape[0] + 1, *shape[1:]], nir.Conv2d: [shape[0] + 1, *shape[1:]],
             nir.SumPool2d: [shape[0]], nir.AvgPool2d: [shape[0]]}.get(kind, [*shape[:-1], shape[-1] + 1])
    with pytest.raises(UserError, match=rf"node 'node' \({kind.__name__}\)"):
        graph.node_io_shapes(_alone(node, wrong), wrong)
