"""`--dataset tonic:ClassName`: tonic's own classes on files the test writes in their layout (no download):
N-MNIST's .bin files, and a 1-D sensor class (SHD-like: events x, t, p on a (W, 1, 1) sensor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tonic.datasets
from own_recordings import digit_events, write_bin
from tonic.dataset import Dataset as TonicDataset

from neuromoco.errors import UserError
from neuromoco.train.cli import main as train_main
from neuromoco.train.data import DatasetMissing, get_dataset, get_event_dataset, get_spec


class Channels20(TonicDataset):
    """A 1-D sensor of 20 channels, as SHD's 700: files ROOT/Channels20/<train|test>/<n>_<label>.npy."""

    sensor_size = (20, 1, 1)
    dtype = np.dtype([("t", "<i8"), ("x", "<i8"), ("p", "<i8")])
    ordering = dtype.names
    classes = ("rising", "falling")

    def __init__(self, save_to, train=True, transform=None, target_transform=None):
        super().__init__(save_to, transform=transform, target_transform=target_transform)
        if not self._check_exists():
            self.download()
        folder = Path(self.location_on_system) / ("train" if train else "test")
        self.data = sorted(folder.glob("*.npy"))
        self.targets = [int(p.stem.split("_")[1]) for p in self.data]

    def _check_exists(self) -> bool:
        return False

    def __getitem__(self, index):
        return np.load(self.data[index]), self.targets[index]

    def __len__(self) -> int:
        return len(self.data)


@pytest.fixture()
def channels20(monkeypatch, tmp_path):
    monkeypatch.setattr(tonic.datasets, "Channels20", Channels20, raising=False)
    monkeypatch.delenv("NEUROMOCO_DOWNLOAD", raising=False)
    rng = np.random.default_rng(0)
    for part, n in (("train", 8), ("test", 4)):
        folder = tmp_path / "Channels20" / part
        folder.mkdir(parents=True)
        for i in range(n):
            label = i % 2
            t = np.sort(rng.integers(0, 100_000, 300))
            x = np.clip((t * 20 // 100_000) if label == 0 else 19 - t * 20 // 100_000, 0, 19)
            ev = np.zeros(300, dtype=Channels20.dtype)
            ev["t"], ev["x"], ev["p"] = t, x, 1
            np.save(folder / f"{i:02d}_{label}.npy", ev)
    return tmp_path


def test_one_dimensional_sensor_gives_one_pixel_high_frames(channels20):
    spec = get_spec("tonic:Channels20")
    assert spec.sensor_size == (20, 1, 1) and spec.class_names == ("rising", "falling") and spec.official_split
    ds = get_dataset("tonic:Channels20", "train", channels20, time_steps=5)
    frames, label = ds[1]
    assert len(ds) == 8 and label == 1 and tuple(frames.shape) == (5, 1, 1, 20) and int(frames.sum()) == 300
    assert frames[0, 0, 0, 19] > 0 and frames[-1, 0, 0, 0] > 0  # falling: high channels first
    assert get_event_dataset("tonic:Channels20", "test", channels20).labels.tolist() == [0, 1, 0, 1]


def test_tonic_nmnist_class_reads_bin_files(tmp_path):
    for i, (ev, label) in enumerate(digit_events(per_class=5, classes=3)):
        for part in ("Train", "Test"):
            folder = tmp_path / "NMNIST" / part / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            write_bin(folder / f"{i:05d}.bin", ev)
    ds = get_dataset("tonic:NMNIST", "test", tmp_path, time_steps=4)
    assert ds.spec.sensor_size == (34, 34, 2) and ds.spec.num_classes == 10 and ds.spec.class_names[0] == "0 - zero"
    assert len(ds) == 15 and ds.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert tuple(ds[0][0].shape) == (4, 2, 34, 34)
    rc = train_main(["supervised", "--dataset", "tonic:NMNIST", "--data-root", str(tmp_path), "--epochs", "1",
                     "-T", "4", "--batch-size", "5", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert rc == 0


def test_missing_files_and_unknown_class(tmp_path, monkeypatch):
    monkeypatch.delenv("NEUROMOCO_DOWNLOAD", raising=False)
    with pytest.raises(DatasetMissing, match=str((tmp_path / "POKERDVS").resolve())):
        get_event_dataset("tonic:POKERDVS", "train", tmp_path)
    with pytest.raises(UserError, match="tonic has no dataset class 'NoSuchSet'"):
        get_spec("tonic:NoSuchSet")


def test_one_dimensional_sensor_trains_the_flat_model_and_deploys(channels20, capsys):
    """SHD-style data: the deployable MLP trains on [P, 1, W] frames, exports, and `deploy run` reads the data
    back from the card alone (the recipe names the tonic class)."""
    import json

    from neuromoco.deploy.cli import main as deploy_main

    run = channels20 / "run"
    rc = train_main(["supervised", "--model", "mlp2-256", "--dataset", "tonic:Channels20", "--data-root",
                     str(channels20), "--epochs", "2", "-T", "5", "--batch-size", "4", "--device", "cpu",
                     "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    card = json.loads((run / "model_card.json").read_text())
    assert card["input_shape"] == [1, 1, 20] and card["dataset"]["name"] == "tonic:Channels20"
    rc = deploy_main(["run", str(run / "model.nir"), "--target", "reference", "--root", str(channels20),
                      "--no-progress", "--out", str(run / "deployed")])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((run / "deployed" / "summary.json").read_text())
    assert summary["samples"] == 4 and summary["accuracy"] == pytest.approx(card["accuracy"]["test"])
