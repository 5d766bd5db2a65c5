"""The Lava plan as a table, node dispatch through the Lava target's own tables, a light package import."""

from __future__ import annotations

import subprocess
import sys

import nir
import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.loihi import linear_ops
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.targets.lava import TARGET
from neuromoco.errors import UserError


def _graph(shape=(2, 4, 4), n_out=3) -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    n_in = int(np.prod(shape))
    nodes = {
        "input": nir.Input(input_type=np.array(shape)),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array(shape)}),
        "scale": nir.Scale(scale=np.full(n_in, 0.5)),
        "fc": nir.Affine(weight=rng.normal(0.2, 0.3, (8, n_in)), bias=np.zeros(8)),
        "lif": nir.LIF(tau=np.full(8, 0.02), r=np.ones(8), v_leak=np.zeros(8), v_threshold=np.ones(8)),
        "ro": nir.Affine(weight=rng.normal(0, 1, (n_out, 8)), bias=np.full(n_out, 0.1)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "flat"), ("flat", "scale"), ("scale", "fc"), ("fc", "lif"), ("lif", "ro"), ("ro", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_plan_prints_as_a_table_of_layers(precision):
    plan = TARGET.compile(_graph(), ModelCard(input_shape=[2, 4, 4], time_steps=4, dt=0.001), precision=precision)
    lines = str(plan).splitlines()
    assert lines[0].startswith("Lava plan (") and "input 'input' [2, 4, 4]" in lines[0]
    assert lines[1].split("|")[1].strip() == "Layer" and set(lines[2]) <= {"|", "-"}
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[3:]}
    assert list(rows) == ["lif", "(readout)"]
    process = "LIFReset" if precision == "float" else "NirNeuron"  # fixed: one threshold per neuron
    assert rows["lif"][:5] == ["LIF", process, "8", "[8]", "1"] and rows["lif"][5].startswith("input: ")
    assert "bias on the host" in rows["(readout)"][5]
    assert ("<<" in rows["lif"][5]) == (precision == "fixed")


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_a_connection_kind_without_a_lava_op_is_read_off_the_reference_rule(monkeypatch, precision):
    """A connection node kind missing from LINEAR_OPS (and from the shape rules) compiles to the same plan
    through ByReference (its matrix and bias probed from the reference executor's rule)."""
    from neuromoco.deploy.graph import shapes

    g = _graph()
    g.nodes["scale"] = nir.Scale(scale=np.random.default_rng(1).uniform(0.2, 1.5, 32))
    want = compile_graph(g, 0.001, precision=precision, input_shape=[2, 4, 4])
    monkeypatch.delitem(linear_ops.LINEAR_OPS, nir.Scale)
    monkeypatch.delitem(shapes.SHAPE_RULES, nir.Scale)
    got = compile_graph(g, 0.001, precision=precision, input_shape=[2, 4, 4])
    for a, b in zip(want.layers, got.layers, strict=True):
        for ca, cb in zip(a.conns, b.conns, strict=True):
            assert ca.weight_exp == cb.weight_exp
            assert (ca.expanded() != cb.expanded()).nnz == 0
        for f in ("vth", "bias_mant", "bias_exp", "b0", "b1", "v0"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), f


def test_a_connection_too_large_to_probe_is_refused_by_name(monkeypatch):
    monkeypatch.delitem(linear_ops.LINEAR_OPS, nir.Scale)
    monkeypatch.setattr(linear_ops.ByReference, "MAX_DENSE", 4)
    with pytest.raises(UserError, match=r"node 'scale' \(Scale\).*needs its own LinearOp"):
        compile_graph(_graph(), 0.001, input_shape=[2, 4, 4])


def test_importing_compat_or_options_does_not_load_the_target():
    code = ("import sys, neuromoco.deploy.targets.lava.compat, neuromoco.deploy.targets.lava.options;"
            "heavy = [m for m in ('torch', 'scipy', 'lava', 'neuromoco.deploy.targets.lava.target') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_export_says_why_a_layer_needs_the_projects_own_process():
    """Per-neuron scales give every neuron its own threshold, which Lava's stock LIFReset cannot hold."""
    from pathlib import Path

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph
    from neuromoco.deploy.targets.lava import TARGET

    path = Path(__file__).resolve().parents[1] / "nir_models" / "neuromoco_embedded_cnn3.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    per_neuron = TARGET.compile(graph, card, precision="fixed", scale="neuron")
    per_layer = TARGET.compile(graph, card, precision="fixed", scale="layer")
    for lay in per_neuron.report["layers"]:
        assert lay["process"] == "NirNeuron" and "per-neuron threshold" in lay["process_reason"]
    for lay in per_layer.report["layers"]:
        assert lay["process"] == "LIFReset" and "stock LIFReset" in lay["process_reason"]
