"""The embedded dataset: simulator statistics and physics, determinism, the seeded 9:1 split."""

from __future__ import annotations

import numpy as np
import pytest

from neuromoco.train.data import DATASETS, EVENTS_PER_SAMPLE_BAND, build_embedded, get_event_dataset
from neuromoco.train.data.simulator import EVENT_DTYPE, SimulatorConfig, simulate


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "neuromoco-data"
    build_embedded(root, verbose=False)  # once per session: every data test module shares it
    return root


@pytest.fixture(scope="module")
def all_events(data_root):
    ds = get_event_dataset("embedded", "all", data_root)
    return [ds.events(i) for i in range(len(ds))], ds.labels


def test_size_classes_and_dtype(all_events):
    events, labels = all_events
    assert len(events) == 1797
    assert sorted(set(labels.tolist())) == list(range(10))
    assert events[0].dtype == EVENT_DTYPE
    assert events[0].dtype.names == ("x", "y", "t", "p")  # tonic's NMNIST ordering


def test_simulator_statistics(all_events):
    events, _ = all_events
    lo, hi = EVENTS_PER_SAMPLE_BAND
    counts = np.array([len(e) for e in events])
    assert counts.min() >= lo and counts.max() <= hi, (counts.min(), counts.max())
    on_fraction = []
    for ev in events:
        assert np.all(np.diff(ev["t"]) >= 0), "timestamps must be sorted"
        assert ev["x"].min() >= 0 and ev["x"].max() < 34 and ev["y"].min() >= 0 and ev["y"].max() < 34
        assert set(np.unique(ev["p"]).tolist()) == {0, 1}, "both polarities in every sample"
        assert 0 <= ev["t"].min() and ev["t"].max() <= 300_000
        on_fraction.append(ev["p"].mean())
    assert 0.4 < np.mean(on_fraction) < 0.6
    # three saccades: events in every 50 ms stretch of the 300 ms recording
    hist = np.histogram(np.concatenate([e["t"] for e in events[:50]]), bins=6, range=(0, 300_000))[0]
    assert hist.min() > 0.3 * hist.mean()


def test_sample_is_independent_of_the_batch_it_was_generated_in(all_events):
    from sklearn.datasets import load_digits

    events, _ = all_events
    images = load_digits().images / 16.0
    alone = simulate(images[[7]], [(0, 7)])[0]
    assert np.array_equal(alone, events[7])
    again = simulate(images[[7]], [(0, 7)])[0]
    assert np.array_equal(alone, again)
    other_seed = simulate(images[[7]], [(1, 7)])[0]
    assert not np.array_equal(alone, other_seed)


def test_physics_no_change_no_event_and_refractory():
    quiet = SimulatorConfig(noise_hz=0.0, jitter_us=0.0)
    blank = simulate(np.zeros((1, 8, 8)), [(0, 0)], quiet)[0]
    assert len(blank) == 0  # a uniform scene moving gives no contrast change: no events without noise
    noisy = simulate(np.zeros((1, 8, 8)), [(0, 0)], SimulatorConfig())[0]
    expected = 0.2 * 34 * 34 * 0.3
    assert abs(len(noisy) - expected) < 5 * np.sqrt(expected)  # Poisson background activity
    from sklearn.datasets import load_digits

    img = load_digits().images[:3] / 16.0
    ev = simulate(img, [(0, i) for i in range(3)], quiet)
    for e in ev:
        pix = e["y"] * 34 + e["x"]
        order = np.lexsort((e["t"], pix))
        same_pixel = np.diff(pix[order]) == 0
        gaps = np.diff(e["t"][order])[same_pixel]
        assert gaps.min() >= quiet.refractory_us - 1
    fewer = simulate(img, [(0, i) for i in range(3)], SimulatorConfig(noise_hz=0.0, threshold=0.9))
    assert sum(map(len, fewer)) < 0.7 * sum(map(len, ev))  # a higher contrast threshold, fewer events


def test_split_is_seeded_9_to_1_per_class(data_root):
    train = get_event_dataset("embedded", "train", data_root)
    test = get_event_dataset("embedded", "test", data_root)
    assert len(train) + len(test) == 1797
    assert not set(train.indices.tolist()) & set(test.indices.tolist())
    for c in range(10):
        n_c = int((train.labels == c).sum() + (test.labels == c).sum())
        assert int((test.labels == c).sum()) == round(0.1 * n_c)
    again = get_event_dataset("embedded", "test", data_root)
    assert np.array_equal(again.indices, test.indices)
    assert DATASETS["embedded"].sensor_size == (34, 34, 2) and DATASETS["embedded"].num_classes == 10
