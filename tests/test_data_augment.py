"""Event augmentations and the two-view wrapper: deterministic under a seed, label-preserving, in-sensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromoco.train.data import augment as A
from neuromoco.train.data import build_embedded, get_dataset, get_event_dataset, make_contrastive_dataset

SENSOR = (34, 34, 2)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "neuromoco-data"
    build_embedded(root, verbose=False)
    return root


@pytest.fixture(scope="module")
def sample(data_root):
    return get_event_dataset("embedded", "train", data_root)[0]


TRANSFORMS = {
    "resized_crop": A.RandomResizedCrop(SENSOR, scale=(0.3, 0.9)),
    "hflip": A.RandomHorizontalFlip(SENSOR, p=1.0),
    "rotation": A.RandomRotation(SENSOR, degrees=15),
    "translation": A.RandomTranslation(SENSOR, translate=0.15),
    "affine": A.RandomAffine(SENSOR, 15, (0.1, 0.1)),
    "drop_random": A.DropRandom((0.2, 0.4)),
    "drop_by_time": A.DropByTime((0.2, 0.4)),
    "drop_by_area": A.DropByArea(SENSOR, (0.3, 0.5)),
    "event_drop": A.EventDrop(SENSOR),
    "temporal_crop": A.TemporalCrop((0.4, 0.8)),
    "default_policy": A.contrastive_augmentation(SENSOR, "default"),
    "strong_policy": A.contrastive_augmentation(SENSOR, "strong"),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_deterministic_under_seed_and_inside_sensor(name, sample):
    events, _ = sample
    before = events.copy()
    transform = TRANSFORMS[name]
    a = transform(events, 123)
    b = transform(events, np.random.default_rng(123))
    assert np.array_equal(a, b), "same seed, same events"
    assert np.array_equal(events, before), "the input is not modified"
    assert a.dtype == events.dtype and 0 < len(a) <= len(events)
    assert a["x"].min() >= 0 and a["x"].max() < 34 and a["y"].min() >= 0 and a["y"].max() < 34
    assert set(np.unique(a["p"]).tolist()) <= {0, 1}
    assert np.all(np.diff(a["t"]) >= 0), "time order kept"
    outputs = [transform(events, s) for s in range(8)]
    if name != "hflip":  # the flip with p=1 has nothing to draw
        assert any(not np.array_equal(outputs[0], o) for o in outputs[1:]), "different seeds, different views"


def test_what_each_transform_does(sample):
    events, _ = sample
    flipped = A.RandomHorizontalFlip(SENSOR, p=1.0)(events, 0)
    assert np.array_equal(flipped["x"], 33 - events["x"]) and np.array_equal(flipped["t"], events["t"])
    full = A.RandomResizedCrop(SENSOR, scale=(1.0, 1.0), ratio=(1.0, 1.0))(events, 0)
    assert np.array_equal(full, events)  # a crop of the whole sensor is the identity
    cropped = A.TemporalCrop((0.5, 0.5))(events, 0)
    span = events["t"].max() - events["t"].min()
    assert cropped["t"].max() - cropped["t"].min() <= 0.5 * span + 1
    dropped = A.DropByArea(SENSOR, 0.5)(events, 0)
    kept = np.zeros((34, 34), bool)
    kept[dropped["y"], dropped["x"]] = True
    gone = np.zeros((34, 34), bool)
    gone[events["y"], events["x"]] = True
    assert (gone & ~kept).sum() > 0  # a box of pixels has no events left
    assert 0.6 < len(A.DropRandom(0.3)(events, 0)) / len(events) < 0.8


def test_two_views_label_preserving_and_reproducible(data_root):
    ds = make_contrastive_dataset("embedded", "train", data_root, time_steps=8, seed=5)
    plain = get_dataset("embedded", "train", data_root, time_steps=8, cache=False)
    for i in (0, 1, 50):
        (q, k), label = ds[i]
        assert label == plain[i][1] == int(ds.labels[i])
        assert q.shape == k.shape == (8, 2, 34, 34) and q.dtype == k.dtype == torch.float32
        assert not torch.equal(q, k), "two independent draws"
        (q2, k2), _ = ds[i]
        assert torch.equal(q, q2) and torch.equal(k, k2), "fixed seed: same views"
    epoch0 = ds[0][0][0]
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0][0], epoch0), "a new epoch draws new views"
    ds.set_epoch(0)
    assert torch.equal(ds[0][0][0], epoch0)


def test_two_views_follow_torch_seed_without_fixed_seed(data_root):
    ds = make_contrastive_dataset("embedded", "train", data_root, time_steps=4, downsample=2)
    torch.manual_seed(7)
    a = ds[3][0][0]
    torch.manual_seed(7)
    b = ds[3][0][0]
    c = ds[3][0][0]
    assert a.shape == (4, 2, 17, 17) and torch.equal(a, b) and not torch.equal(a, c)


def test_augmented_dataset_keeps_labels_and_skips_cache(data_root):
    aug = A.contrastive_augmentation(SENSOR, "default", hflip=False)
    ds = get_dataset("embedded", "test", data_root, time_steps=8, event_transform=aug, seed=0)
    plain = get_dataset("embedded", "test", data_root, time_steps=8, cache=False)
    assert ds.cache is None
    for i in range(5):
        assert ds[i][1] == plain[i][1]
    assert any(not torch.equal(ds[i][0], plain[i][0]) for i in range(5))


def test_policy_strengths():
    assert len(A.contrastive_augmentation(SENSOR, "none").transforms) == 0
    with_flip = A.contrastive_augmentation(SENSOR, "default", hflip=True)
    without = A.contrastive_augmentation(SENSOR, "default", hflip=False)
    assert any(isinstance(t, A.RandomHorizontalFlip) for t in with_flip.transforms)
    assert not any(isinstance(t, A.RandomHorizontalFlip) for t in without.transforms)
    with pytest.raises(ValueError):
        A.contrastive_augmentation(SENSOR, "extreme")
