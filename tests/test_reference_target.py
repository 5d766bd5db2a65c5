"""The reference target behind the common Target interface: export writes a checked copy, runners run it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.deploy.targets import get_target
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "nir_models" / "make_fixtures.py")
MF = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(MF)


def test_export_load_and_runner_agree(tmp_path):
    target, options = get_target("reference")
    graph, card_d = MF.sinabs_cnn()
    card = ModelCard(**card_d)
    path = target.export(graph, card, tmp_path)
    assert path == tmp_path / "model.nir" and (tmp_path / "model_card.json").exists()
    x = MF.sample_frames(card_d, 5)
    a = target.load(path, options).run(x)
    b = target.runner(graph, card, options).run(x)
    c = ReferenceExecutor(load_graph(path), card.dt).run(x)
    np.testing.assert_array_equal(a.output, b.output)
    np.testing.assert_array_equal(a.output, c.output)
    assert set(a.spike_counts) == {"1", "4", "8"}
    assert all(v.shape == (card.time_steps, 5) and v.dtype == np.int64 for v in a.spike_counts.values())
    assert a.output.dtype == np.float64 and a.predictions.shape == (5,)


def test_runner_options(tmp_path):
    target, _ = get_target("reference")
    graph, card_d = MF.snntorch_mlp()
    card = ModelCard(**card_d)
    x = MF.sample_frames(card_d, 3)
    res = target.runner(graph, card, dtype="float64", record_spikes=True).run(x)
    assert res.spikes["lif1"].shape == (card.time_steps, 3, 24) and res.spikes["lif1"].dtype == np.uint8
    np.testing.assert_array_equal(res.spikes["lif1"].reshape(card.time_steps, 3, -1).sum(-1),
                                  res.spike_counts["lif1"])
    with pytest.raises(UserError, match="float32 or float64"):
        target.runner(graph, card, dtype="int8")


def test_export_refuses_a_bad_graph(tmp_path):
    target, _ = get_target("reference")
    graph, card_d = MF.snntorch_mlp()
    graph.nodes["fc2"].weight[0, 0] = np.nan
    with pytest.raises(UserError, match="'fc2'.*NaN"):
        target.export(graph, ModelCard(**card_d), tmp_path)
    assert not (tmp_path / "model.nir").exists()
