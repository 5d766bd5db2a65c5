"""Membrane voltages recorded by the targets that expose them (``record_voltages``), against a hand computation.

The graph: one input, ``Affine`` weights 1.5 and 0.5, two LIF neurons (``tau = 2 ms``, ``dt = 1 ms``, so
``dt / tau = 1/2``; ``r = 1``, threshold 1, reset to 0), a constant input 1 for five steps.

Float (the reference): ``v <- v + (I - v) / 2``, then the reset where ``v > 1``, recorded after the reset.
  neuron 0, I = 1.5: 0.75; 0.375 + 0.75 = 1.125 fires -> 0; 0.75; 0 again; 0.75
  neuron 1, I = 0.5: 0.25, 0.375, 0.4375, 0.46875, 0.484375 (never fires)

Fixed point (reference-fixed; the plan's integers, asserted first): both weights 254 with exponent 3, so
``a = 254 << 3 = 2032`` and, with ``du = 4095`` (no current memory), ``u = a << 6 = 130048`` every step;
``dv = 2048`` halves ``v`` (``v <- v // 2 + 130048``); thresholds ``vth << 6`` = 2709 * 64 = 173376 and
8128 * 64 = 520192 (each neuron's own scale: 1 V is 64 * 2709.33 and 64 * 8128 units).
  neuron 0: 130048; 65024 + 130048 = 195072 fires -> 0; 130048; 0; 130048
  neuron 1: 130048, 195072, 227584, 243840, 251968
(130048 = 0.75 V at neuron 0's scale: the same trajectory in Lava's units.)
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.cli import main
from neuromoco.deploy.targets import get_target, options_class
from neuromoco.deploy.traces import read
from neuromoco.errors import UserError

T = 5
FLOAT_V = [[0.75, 0.25], [0.0, 0.375], [0.75, 0.4375], [0.0, 0.46875], [0.75, 0.484375]]
FIXED_V = [[130048, 130048], [0, 195072], [130048, 227584], [0, 243840], [130048, 251968]]
SPIKES = [[0, 0], [1, 0], [0, 0], [1, 0], [0, 0]]


def _graph() -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1])),
               "syn": nir.Affine(weight=np.array([[1.5], [0.5]]), bias=np.zeros(2)),
               "lif": nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                              v_reset=np.zeros(2)),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "syn"), ("syn", "lif"), ("lif", "output")], type_check=False)


def _card() -> ModelCard:
    return ModelCard(input_shape=[1], time_steps=T, dt=0.001)


def _run(target: str, **values):
    t, opts = get_target(target)
    return t.runner(_graph(), _card(), opts.updated({"record_spikes": True, **values}), None).run(np.ones((T, 1, 1)))


def test_the_reference_records_the_voltage_after_the_reset():
    for dtype in ("float64", "float32"):
        res = _run("reference", record_voltages=True, dtype=dtype)
        v = res.voltages["lif"]
        assert v.shape == (T, 1, 2) and v.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(v[:, 0], FLOAT_V)  # dyadic: exact in float32 too
        np.testing.assert_array_equal(res.spikes["lif"][:, 0], SPIKES)
    assert _run("reference").voltages == {}  # off by default


def test_reference_fixed_records_lavas_integer_voltage():
    t, opts = get_target("reference-fixed")
    lay = t.compile(_graph(), _card(), opts).layers[0]
    (conn,) = lay.conns
    assert conn.weight_exp == 3 and conn.expanded().toarray().ravel().tolist() == [254, 254]
    assert lay.du.tolist() == [4095, 4095] and lay.dv.tolist() == [2048, 2048]
    assert np.floor(lay.vth).tolist() == [2709, 8128]
    res = _run("reference-fixed", record_voltages=True)
    assert res.voltages["lif"].dtype == np.int32
    np.testing.assert_array_equal(res.voltages["lif"][:, 0], FIXED_V)
    np.testing.assert_array_equal(res.spikes["lif"][:, 0], SPIKES)
    # the definition (no fast kernel) records the same integers
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor
    from neuromoco.deploy.targets.reference_fixed.strategy import DEFINITION

    plan = t.compile(_graph(), _card(), opts)
    slow = FixedPointExecutor(plan, record_voltages=True, strategy=DEFINITION).run(np.ones((T, 1, 1)))
    np.testing.assert_array_equal(slow.voltages["lif"][:, 0], FIXED_V)


def test_a_target_without_voltages_refuses_the_option():
    for name in ("onnx", "lava-fixed"):
        with pytest.raises(UserError, match="unknown option 'record_voltages'"):
            options_class(name).parse({"record_voltages": "true"}, target=name)
    assert "Lava's fixed-point units" in options_class("reference-fixed").fields()["record_voltages"].metadata["help"]


@pytest.mark.parametrize("target,want", [("reference", FLOAT_V), ("reference-fixed", FIXED_V)])
def test_deploy_run_trace_writes_the_voltages_as_nirs_v(tmp_path, capsys, target, want):
    model = tmp_path / "two.nir"
    nir.write(str(model), _graph())
    _card().save(ModelCard.beside(model))
    frames = tmp_path / "frames.npz"
    np.savez(frames, frames=np.ones((1, T, 1), np.float32), labels=np.zeros(1, np.int64))
    out = tmp_path / "run"
    assert main(["run", str(model), "--target", target, "--dataset", str(frames), "--trace", "nir", "--out", str(out),
                 "--no-progress"]) == 0
    v = nir.read_data(str(out / "trace.nir")).nodes["lif"].observables["v"]  # NIR's own reader: [N, T, neurons]
    assert v.data.shape == (1, T, 2) and v.dt == 0.001
    np.testing.assert_array_equal(v.data[0], want)
    t = read(out / "trace.nir")
    assert t.info.options["record_voltages"] is True
    np.testing.assert_array_equal(t.result.voltages["lif"][:, 0], want)
    # -o record_voltages=false: spikes only
    assert main(["run", str(model), "--target", target, "--dataset", str(frames), "--trace", "npz", "--out",
                 str(tmp_path / "off"), "--no-progress", "-o", "record_voltages=false"]) == 0
    assert read(tmp_path / "off" / "trace.npz").voltages == {}


def test_every_fixed_point_kernel_records_the_definitions_voltages():
    """On the tiny CNN (3 layers): the memoryless kernel (DEFAULT) and the general step (GENERAL) give the
    definition's voltages, every layer and step."""
    from neuromoco.deploy.graph import load_graph
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor
    from neuromoco.deploy.targets.reference_fixed.strategy import DEFAULT, DEFINITION, GENERAL

    tiny = Path(__file__).resolve().parents[1] / "nir_models" / "neuromoco_tiny_cnn.nir"
    card = ModelCard.load(ModelCard.beside(tiny))
    t, opts = get_target("reference-fixed")
    plan = t.compile(load_graph(tiny, input_shape=card.input_shape), card, opts)
    x = np.random.default_rng(0).poisson(0.4, (10, 2, 2, 16, 16)).astype(np.float32)
    want = FixedPointExecutor(plan, record_voltages=True, strategy=DEFINITION).run(x).voltages
    assert set(want) == {"lif1", "lif2", "lif3"} and want["lif2"].shape == (10, 2, 8, 8, 8)
    assert all((v != 0).any() for v in want.values())
    for strategy in (DEFAULT, GENERAL):
        ex = FixedPointExecutor(plan, record_voltages=True, strategy=strategy)
        got = ex.run(x).voltages
        for k, v in want.items():
            np.testing.assert_array_equal(got[k], v, err_msg=f"{k} ({ex.layer_kernels[k]})")
