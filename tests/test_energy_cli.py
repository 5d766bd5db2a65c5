"""`deploy profile` end to end: energy.json, the report with sources, the plot, user energy models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_parity_cli import write_model

from neuromoco.deploy.cli import main
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.metrics.activity import Activity
from neuromoco.deploy.metrics.synops import profile
from neuromoco.deploy.metrics.walk import synaptic_layers
from neuromoco.deploy.reference_executor import ReferenceExecutor


def test_profile_writes_energy_json_report_and_plot(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    out = tmp_path / "prof"
    rc = main(["profile", str(model), "--target", "reference", "--dataset", str(frames), "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    data = json.loads((out / "energy.json").read_text())
    assert set(data["energy_pj"]) == {"loihi", "45nm"}
    prof = data["profile"]
    assert prof["exact"] and prof["samples"] == 24
    assert [r["layer"] for r in prof["layers"]] == ["conv", "pool+fc"]
    t = prof["per_inference"]
    assert t["neuron_updates"] == (4 * 8 * 8 + 5) * 6
    loihi = data["energy_pj"]["loihi"]
    assert loihi["snn_pj"] == pytest.approx(t["synops"] * 23.6 + t["neuron_updates"] * 52.0)
    nm = data["energy_pj"]["45nm"]
    assert nm["ann_pj"] == pytest.approx(t["ann_macs"] * 4.6)
    report = (out / "energy.md").read_text()
    assert "Davies" in report and "Horowitz" in report and "pre-silicon" in report.lower()
    assert (out / "energy.png").stat().st_size > 1000
    # two Loihi energies per inference (the loihi model's, the core map's): both named in one sentence, with why
    from neuromoco.deploy.report import _fmt

    core = data["loihi2_map"]["load"]["energy_per_inference_pj"]["total"]
    (why,) = [ln for ln in report.splitlines() if ln.startswith("Two Loihi energies per inference")]
    assert f"gives {_fmt(loihi['snn_pj'] * 1e-6)} µJ" in why and f"core map below {_fmt(core * 1e-6)} µJ" in why
    assert "graded spike" in why and "barrier synchronisation" in why
    assert "(not the `loihi` model's figure: see Energy per inference)" in report  # the core map's own row


def test_profile_synops_match_dense_connectivity_of_a_real_run(tmp_path):
    """Synops from the profile equal spikes pushed through explicit 0/1 connectivity matrices."""
    model, frames_path = write_model(tmp_path)
    graph = load_graph(model, input_shape=[2, 8, 8])
    with np.load(frames_path) as z:
        frames = np.swapaxes(z["frames"][:6], 0, 1)
    res = ReferenceExecutor(graph, 0.001, record_spikes=True, input_shape=[2, 8, 8]).run(frames)
    act = Activity()
    act.update(res, frames)
    prof = profile(graph, act, [2, 8, 8])
    # connectivity matrix of each layer, one input position at a time, through the real conv / pool geometry
    import torch
    import torch.nn.functional as F

    def conv_matrix():
        m = np.zeros((2 * 8 * 8, 4 * 8 * 8))
        for i in range(2 * 8 * 8):
            x = torch.zeros(1, 2 * 8 * 8, dtype=torch.float64)
            x[0, i] = 1
            y = F.conv2d(x.reshape(1, 2, 8, 8), torch.ones(4, 2, 3, 3, dtype=torch.float64), padding=1)
            m[i] = (y.ravel() > 0).numpy()
        return m

    fan_conv = conv_matrix().sum(1)
    fan_lif1 = np.full(4 * 8 * 8, 5.0)  # each lif1 neuron is in one 2x2 window, which reaches 5 outputs
    syn = frames.sum((0, 1)).ravel() @ fan_conv + res.spikes["lif1"].sum((0, 1)).ravel() @ fan_lif1
    assert prof["per_inference"]["synops"] == pytest.approx(syn / 6)
    assert {x.name for x in synaptic_layers(graph, [2, 8, 8])} == {"conv", "pool+fc"}


def test_user_energy_models(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    extra = tmp_path / "models.json"
    extra.write_text(json.dumps({"models": {"mychip": {
        "energy_pj": {"synop": 2.0, "neuron_update": 1.0, "ann_mac": 10.0}, "source": "a measurement of ours",
        "caveats": ["made up for a test"]}}}))
    out = tmp_path / "prof"
    rc = main(["profile", str(model), "--dataset", str(frames), "--limit", "4", "--out", str(out),
               "--energy-models", str(extra), "--energy-model", "mychip,45nm-int8"])
    assert rc == 0, capsys.readouterr()
    data = json.loads((out / "energy.json").read_text())
    t = data["profile"]["per_inference"]
    assert data["energy_pj"]["mychip"]["snn_pj"] == pytest.approx(2 * t["synops"] + t["neuron_updates"])
    assert "a measurement of ours" in (out / "energy.md").read_text()
    assert main(["profile", str(model), "--dataset", str(frames), "--out", str(out),
                 "--energy-model", "nosuch"]) == 2
