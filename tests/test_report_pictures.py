"""The report pictures a person reads: raster bands per layer, spike counts from zero, energy layers in graph order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy import report
from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.metrics.walk import walk

ROOT = Path(__file__).resolve().parents[1]


def _records(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A 30k-neuron layer beside a 32- and a 4-neuron one and a silent one; a few spikes flipped in the target."""
    rng = np.random.default_rng(seed)
    T = 6
    ref = {"big": (rng.random((T, 30, 32, 32)) < 0.02).astype(np.uint8),
           "mid": (rng.random((T, 32)) < 0.3).astype(np.uint8),
           "tiny": (rng.random((T, 4)) < 0.5).astype(np.uint8),
           "silent": np.zeros((T, 100), np.uint8)}
    tgt = {k: v.copy() for k, v in ref.items()}
    flips = [(1, 3, 4, 5), (4, 29, 31, 0), (2, 0, 0, 7)]
    for f in flips:
        tgt["big"][f] ^= 1
    tgt["tiny"][3, 1] ^= 1
    return ref, tgt


def test_raster_bands_one_per_layer_small_layers_whole_large_ones_capped_with_every_difference():
    ref, tgt = _records()
    bands = report.raster_bands(ref, tgt, max_rows=40)
    assert [b.name for b in bands] == ["big", "mid", "tiny", "silent"]
    big, mid, tiny, silent = bands
    assert (mid.rows == np.arange(32)).all() and (tiny.rows == np.arange(4)).all()  # small layers: every neuron
    assert big.neurons == 30 * 32 * 32 and len(big.rows) == 40 and np.all(np.diff(big.rows) > 0)
    flipped = {np.ravel_multi_index(f[1:], (30, 32, 32)) for f in [(1, 3, 4, 5), (4, 29, 31, 0), (2, 0, 0, 7)]}
    assert big.differing == 3 and flipped <= set(big.rows.tolist())  # the differences are always shown
    fires = (ref["big"] | tgt["big"]).reshape(6, -1).any(axis=0)
    assert fires[big.rows].all()  # the other rows are neurons that fire, not silent ones
    assert big.label.startswith("big: 30,720 neurons; 40 shown: the 3 that differ")
    assert mid.label == "mid: 32 neurons, all shown" and tiny.label == "tiny: 4 neurons, all shown"
    assert silent.firing == 0 and "none fires" in silent.label and 0 < len(silent.rows) <= 8


def test_raster_figure_has_a_labelled_band_per_layer(tmp_path, monkeypatch):
    ref, tgt = _records()
    figs = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figs.append(fig) or path.name)
    report.plot_raster(tmp_path / "raster.png", "onnx-int8", 2, ref, tgt)
    (fig,) = figs
    assert len(fig.axes) == 2 * len(ref)
    titles = [ax.get_title(loc="left") for ax in fig.axes[::2]]
    assert [t.split(":")[0] for t in titles] == list(ref)
    heights = [ax.get_position().height for ax in fig.axes[::2]]
    assert min(heights) > 0.15 * max(heights), heights  # the 4-neuron band is not a sliver of the 30k one
    report._plt().close(fig)


def test_raster_png_is_written(tmp_path):
    ref, tgt = _records()
    assert report.plot_raster(tmp_path / "r.png", "t", 0, ref, tgt) == "r.png"
    assert (tmp_path / "r.png").stat().st_size > 5000


@pytest.mark.parametrize("values,scale", [([1000, 3, 0], "symlog"), ([100, 3, 0], "linear"), ([0, 0], "linear")])
def test_count_scale_starts_at_zero(values, scale):
    assert report.count_scale(np.array(values, float)) == scale


def test_counts_plot_shows_a_silent_layer_as_zero():
    layers = {"lif1": {"reference_spikes": 30000, "target_spikes": 29990},
              "lif2": {"reference_spikes": 12, "target_spikes": 12},
              "lif3": {"reference_spikes": 0, "target_spikes": 0}}
    fig = report.counts_figure("onnx-int8", layers)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] == 0
    zeros = [t for t in ax.texts if t.get_text() == "0"]
    assert len(zeros) == 2 and all(t.xy[0] > 1.5 for t in zeros)  # one per side, at the silent layer (x = 2)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lif1", "lif2", "lif3"]
    report._plt().close(fig)


def _walk(name: str):
    path = ROOT / "nir_models" / f"{name}.nir"
    card = ModelCard.load(ModelCard.beside(path))
    return walk(load_graph(path, input_shape=card.input_shape), card.input_shape)


@pytest.mark.parametrize("name,layers", [
    # nodes read back from a NIR file are sorted by name: "0" and "2_..." came before "input", "conv6" before "conv3"
    ("sinabs_cnn", [("0", "input"), ("2+3", "1"), ("5+7", "4")]),
    ("rockpool_mlp", [("0_LinearTorch", "input"), ("2_LinearTorch", "1_LIFTorch")]),
    ("sew_skip_cnn", [("conv1", "input"), ("conv2", "lif1"), ("conv3", "lif1"), ("conv3", "lif2"), ("conv4", "lif1"),
                      ("conv4", "lif3"), ("pool+fc", "lif4")]),
])
def test_energy_layers_in_graph_order(name, layers):
    assert [(lay.name, lay.source) for lay in _walk(name).layers] == layers
