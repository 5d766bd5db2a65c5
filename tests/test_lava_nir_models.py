"""Every graph in nir_models/ (the project's and those in the forms other tools write) on Lava.

Floating point reproduces the float64 reference's spikes exactly at every layer; fixed point keeps every
layer's total spike count within 3 % (a few samples of random-weight fixtures: the fixed-point
acceptance on prediction agreement is measured on trained models, see test_lava_target.py).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.deploy.targets.lava import TARGET

ROOT = Path(__file__).resolve().parents[1] / "nir_models"
#: at most 2x64x64 input values: the 128x128 graph (neuromoco_sim128_cnn5, ~60 s here) runs on Lava, float and
#: fixed, in hardware_tests/test_targets_parity.py
GRAPHS = [p for p in sorted(ROOT.glob("*.nir"))
          if np.prod(ModelCard.load(ModelCard.beside(p)).input_shape) <= 2 * 64 * 64]


def _frames(card_path: Path, batch: int) -> np.ndarray:
    spec = importlib.util.spec_from_file_location("nir_fixtures", ROOT / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.sample_frames(json.loads(card_path.read_text()), batch, seed=3)


@pytest.mark.skipif(not GRAPHS, reason="no graphs in nir_models/")
@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_nir_model_on_lava(path: Path):
    card_path = ModelCard.beside(path)
    card = ModelCard.load(card_path)
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card_path, 4)
    ref = ReferenceExecutor(graph, card.dt, dtype=torch.float64, record_spikes=True,
                            input_shape=card.input_shape).run(frames)
    res = TARGET.runner(graph, card, precision="float", tile=2, record_spikes=True).run(frames)
    for name, s in ref.spikes.items():
        np.testing.assert_array_equal(res.spikes[name], s, err_msg=name)
    np.testing.assert_allclose(res.output, ref.output, rtol=1e-9, atol=1e-9)
    fixed = TARGET.runner(graph, card, precision="fixed", tile=4).run(frames)
    for name, c in ref.spike_counts.items():
        assert abs(int(fixed.spike_counts[name].sum()) - int(c.sum())) <= max(5, 0.03 * c.sum()), name
