"""Framing, the frame cache, and the provider deploy reads frames through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromoco.train.data import build_embedded, frame_events, get_dataset, get_event_dataset
from neuromoco.train.data.simulator import EVENT_DTYPE


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "neuromoco-data"
    build_embedded(root, verbose=False)
    return root


def _random_events(n=5000, seed=0, size=(34, 34)):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, size[0], n), rng.integers(0, size[1], n)
    ev["t"] = np.sort(rng.integers(0, 300_000, n))
    ev["p"] = rng.integers(0, 2, n)
    return ev


@pytest.mark.parametrize("time_steps", [1, 5, 16])
def test_shape_dtype_and_every_event_counted(time_steps):
    ev = _random_events()
    frames = frame_events(ev, (34, 34, 2), time_steps)
    assert frames.shape == (time_steps, 2, 34, 34) and frames.dtype == np.float32
    assert frames.sum() == len(ev)
    assert frames[:, 1].sum() == ev["p"].sum()  # channel 1 is ON


def test_matches_tonic_to_frame_apart_from_the_tail_tonic_drops():
    import tonic

    ev = _random_events(seed=3)
    ours = frame_events(ev, (34, 34, 2), 16)
    theirs = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=16)(ev.copy())
    assert np.array_equal(ours[:-1], theirs[:-1])
    width = (ev["t"][-1] - ev["t"][0]) // 16
    tail = ev[ev["t"] >= ev["t"][0] + 16 * width]  # tonic leaves these out; we count them in the last bin
    assert len(tail) >= 1
    assert np.array_equal(ours[-1] - theirs[-1], frame_events(tail, (34, 34, 2), 1)[0])


def test_downsampling_sums_pixels():
    ev = _random_events(seed=1)
    full = frame_events(ev, (34, 34, 2), 8)
    half = frame_events(ev, (34, 34, 2), 8, downsample=2)
    assert half.shape == (8, 2, 17, 17) and half.sum() == len(ev)
    assert np.array_equal(half, full.reshape(8, 2, 17, 2, 17, 2).sum(axis=(3, 5)))
    assert frame_events(ev, (34, 34, 2), 8, downsample=4).shape == (8, 2, 9, 9)


def test_empty_and_out_of_sensor_events():
    assert frame_events(np.zeros(0, dtype=EVENT_DTYPE), (34, 34, 2), 4).shape == (4, 2, 34, 34)
    bad = _random_events(10)
    bad["x"][0] = 34
    with pytest.raises(ValueError, match="outside the sensor"):
        frame_events(bad, (34, 34, 2), 4)


def test_dataset_frames_and_event_count(data_root):
    ds = get_dataset("embedded", "test", data_root, time_steps=16, cache=False)
    events = get_event_dataset("embedded", "test", data_root)
    frames, label = ds[0]
    assert isinstance(frames, torch.Tensor) and frames.dtype == torch.float32
    assert tuple(frames.shape) == (16, 2, 34, 34) == ds.frame_shape
    assert isinstance(label, int) and label == int(events.labels[0])
    assert int(frames.sum()) == len(events.events(0))
    small = get_dataset("embedded", "test", data_root, time_steps=4, downsample=2, cache=False)
    assert tuple(small[0][0].shape) == (4, 2, 17, 17)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert tuple(batch[0].shape) == (8, 16, 2, 34, 34) and batch[1].dtype == torch.int64


def test_cache_hit_returns_identical_frames(tmp_path, data_root):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_root / "embedded", root / "embedded")
    fresh = get_dataset("embedded", "test", root, time_steps=8, cache=False)
    ds = get_dataset("embedded", "test", root, time_steps=8)
    first = [ds[i][0] for i in range(3)]
    assert ds.cache.count() == 3
    reopened = get_dataset("embedded", "test", root, time_steps=8)
    for i in range(3):
        assert reopened.cache.get(i) is not None
        assert torch.equal(reopened[i][0], first[i]) and torch.equal(first[i], fresh[i][0])
    # the key holds T and the downsampling: another T is another cache
    other = get_dataset("embedded", "test", root, time_steps=4)
    assert other.cache.folder != ds.cache.folder and other.cache.get(0) is None
    # a full pass packs the cache into one memory-mapped array; reads stay identical
    reopened.build_cache()
    packed = get_dataset("embedded", "test", root, time_steps=8)
    assert (packed.cache.folder / "packed.npy").exists() and not list(packed.cache.folder.glob("0*.npy"))
    for i in range(len(packed)):
        assert torch.equal(packed[i][0], fresh[i][0])
    # an event transform is never cached
    flipped = get_dataset("embedded", "test", root, time_steps=8, event_transform=lambda e: e)
    assert flipped.cache is None


def test_provider_returns_frames_for_deploy(data_root):
    from neuromoco.train.data.provider import load_frames

    frames, labels = load_frames({"name": "embedded", "time_steps": 4}, "test", str(data_root), 10)
    assert frames.shape == (10, 4, 2, 34, 34) and frames.dtype == np.float32
    assert labels.shape == (10,) and labels.dtype == np.int64
    frames, labels = load_frames({"name": "embedded", "time_steps": 4, "downsample": 2}, "test", str(data_root), None)
    assert frames.shape == (179, 4, 2, 17, 17)
    with pytest.raises(LookupError):
        load_frames({"name": "not-a-dataset", "time_steps": 4}, "test", str(data_root), 1)


def test_provider_is_registered_for_deploy():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="neuromoco.datasets")}
    assert names.get("builtin") == "neuromoco.train.data.provider:load_frames"
