"""`--dataset PATH`: a folder of one's own recordings, one sub-folder per class, in every readable format.

Simulated digits (the embedded dataset's simulator) are written as real files; the same events must give
the same frames through every format, train for an epoch and deploy from the model card alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from own_recordings import WRITERS, digit_events, write_folder

from neuromoco.deploy.cli import main as deploy_main
from neuromoco.train.cli import main as train_main
from neuromoco.train.data import frame_events, get_dataset, get_event_dataset
from neuromoco.train.data.readers import READERS

FORMATS = list(WRITERS)


@pytest.fixture(scope="module")
def samples():
    return digit_events(per_class=5, classes=3)


def _frames(name: str, root: Path, split: str = "all", **kw) -> np.ndarray:
    ds = get_dataset(name, split, root, time_steps=6, cache=False, **kw)
    return np.stack([ds.frames(i) for i in range(len(ds))])


def test_every_suffix_has_a_writer_here():
    assert set(READERS) - {".hdf5"} == set(WRITERS)


def test_same_events_give_identical_frames_in_every_format(tmp_path, samples):
    expected = np.stack([frame_events(ev, (34, 34, 2), 6) for ev, _ in samples])
    for suffix in [*FORMATS, "mixed"]:
        folder = write_folder(tmp_path / suffix.strip("."), samples, FORMATS if suffix == "mixed" else suffix)
        ds = get_event_dataset(str(folder), "all", tmp_path / "data")
        assert ds.sensor_size == (34, 34, 2), suffix
        assert ds.class_names == ("digit0", "digit1", "digit2")
        assert ds.labels.tolist() == [label for _, label in samples]
        assert np.array_equal(_frames(str(folder), tmp_path / "data"), expected), suffix


def test_seeded_split_and_train_test_folders(tmp_path, samples):
    flat = write_folder(tmp_path / "flat", samples)
    train, test = (get_event_dataset(str(flat), s, tmp_path) for s in ("train", "test"))
    assert len(train) + len(test) == 15 and sorted(test.labels.tolist()) == [0, 1, 2]  # one per class
    split = tmp_path / "split"
    write_folder(split / "train", samples[:4] + samples[5:9] + samples[10:14])
    write_folder(split / "test", [samples[4], samples[9], samples[14]])
    assert len(get_event_dataset(str(split), "train", tmp_path)) == 12
    assert get_event_dataset(str(split), "test", tmp_path).labels.tolist() == [0, 1, 2]
    assert get_event_dataset(str(split), "test", tmp_path).spec.official_split


def test_sensor_size_and_time_unit_options(tmp_path, samples):
    us = write_folder(tmp_path / "us", samples)
    ms = tmp_path / "ms"
    for i, (ev, label) in enumerate(samples):  # the same events with timestamps in milliseconds (floats)
        (ms / f"digit{label}").mkdir(parents=True, exist_ok=True)
        rows = np.stack([ev["x"], ev["y"], ev["t"] / 1000.0, ev["p"]], axis=1)
        np.savetxt(ms / f"digit{label}" / f"{i}.csv", rows, delimiter=",", header="t_ignored", comments="",
                   fmt=["%d", "%d", "%.3f", "%d"])
        text = (ms / f"digit{label}" / f"{i}.csv").read_text().replace("t_ignored", "x,y,t,p")
        (ms / f"digit{label}" / f"{i}.csv").write_text(text)
    assert np.array_equal(_frames(str(ms), tmp_path, time_unit="ms"), _frames(str(us), tmp_path))
    big = get_event_dataset(str(us), "all", tmp_path, sensor_size=[40, 36, 2])
    assert big.sensor_size == (40, 36, 2) and _frames(str(us), tmp_path, sensor_size=[40, 36, 2]).shape[-2:] == (36, 40)


@pytest.mark.parametrize("suffix", [*FORMATS, "mixed"])
def test_own_folder_trains_one_epoch_and_deploys_from_the_card(suffix, tmp_path, samples, monkeypatch, capsys):
    folder = write_folder(tmp_path / "recordings", samples, FORMATS if suffix == "mixed" else suffix)
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    rc = train_main(["supervised", "--dataset", str(folder), "--model", "cnn3-34", "--epochs", "1", "-T", "4",
                     "--downsample", "2", "--batch-size", "4", "--max-samples", "12", "--device", "cpu",
                     "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    card = json.loads((run / "model_card.json").read_text())
    ds = card["dataset"]
    assert ds["name"] == str(folder.resolve()) and ds["kind"] == "folder"
    assert ds["sensor_size"] == [34, 34, 2] and ds["time_unit"] == "us"
    assert ds["time_steps"] == 4 and ds["downsample"] == 2 and "framing" in ds and card["input_shape"] == [2, 17, 17]
    monkeypatch.chdir(tmp_path)  # deploy is told nothing about the data: the card's recipe is enough
    out = tmp_path / "deployed"
    assert deploy_main(["run", str(run / "model.nir"), "--target", "reference", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 3 and summary["dataset"] == str(folder.resolve())
    with np.load(out / "predictions.npz") as z:
        assert z["labels"].tolist() == [0, 1, 2]


def test_card_recipe_gives_the_training_frames(tmp_path, samples):
    from neuromoco.train.data.provider import load_frames

    folder = write_folder(tmp_path / "rec", samples, ".h5")
    recipe = {"name": str(folder), "kind": "folder", "sensor_size": [36, 34, 2], "time_unit": "us",
              "time_steps": 5, "downsample": 2}
    frames, labels = load_frames(recipe, "test", str(tmp_path / "data"))
    ds = get_dataset(str(folder), "test", tmp_path / "other", time_steps=5, downsample=2, sensor_size=[36, 34, 2])
    assert frames.shape == (3, 5, 2, 17, 18) and labels.tolist() == ds.labels.tolist()
    assert np.array_equal(frames, np.stack([ds.frames(i) for i in range(len(ds))]))


def test_pretrain_then_finetune_keeps_the_recipe(tmp_path, samples, monkeypatch, capsys):
    folder = write_folder(tmp_path / "rec", samples, [".npy", ".csv"])
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "data"))
    common = ["--epochs", "1", "--batch-size", "4", "--device", "cpu"]
    assert train_main(["pretrain", "--dataset", str(folder), "--model", "cnn3-34", "-T", "3", "--sensor-size",
                       "36,34,2", "--queue-size", "8", *common, "--out", str(tmp_path / "pre")]) == 0
    assert train_main(["finetune", "--pretrained", str(tmp_path / "pre" / "last.pt"), "--augment", "weak",
                       "--label-fraction", "0.5", *common, "--out", str(tmp_path / "ft")]) == 0, capsys.readouterr().err
    card = json.loads((tmp_path / "ft" / "model_card.json").read_text())
    assert card["dataset"]["name"] == str(folder.resolve()) and card["dataset"]["sensor_size"] == [36, 34, 2]
    assert card["input_shape"] == [2, 34, 36] and card["time_steps"] == 3


def test_render_a_folder_writes_into_out(tmp_path, samples, capsys):
    folder = write_folder(tmp_path / "rec", samples)
    assert train_main(["data", "--render", str(folder), "--out", str(tmp_path / "png"), "--n", "2", "--no-views",
                       "--data-root", str(tmp_path / "data")]) == 0
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["rec_train_samples.png"]


def test_h5_attributes_and_headerless_csv(tmp_path, samples):
    import h5py

    h5 = tmp_path / "h5"
    csv = tmp_path / "csv"
    for i, (ev, label) in enumerate(samples):
        for root in (h5, csv):
            (root / f"digit{label}").mkdir(parents=True, exist_ok=True)
        with h5py.File(h5 / f"digit{label}" / f"{i}.hdf5", "w") as f:  # top-level datasets, times in ms
            for name in ("x", "y", "p"):
                f.create_dataset(name, data=ev[name])
            f.create_dataset("t", data=ev["t"] / 1000.0)
            f.attrs["sensor_size"], f.attrs["time_unit"] = [40, 36], "ms"
        rows = np.stack([ev["x"], ev["y"], ev["t"], ev["p"]], axis=1)
        np.savetxt(csv / f"digit{label}" / f"{i}.csv", rows, fmt="%d", delimiter=",")
    assert get_event_dataset(str(h5), "all", tmp_path).sensor_size == (40, 36, 2)
    assert np.array_equal(_frames(str(h5), tmp_path), _frames(str(csv), tmp_path, sensor_size=[40, 36, 2]))


def test_eval_reads_a_folder_with_the_sensor_size_training_used(tmp_path, samples, monkeypatch, capsys):
    folder = write_folder(tmp_path / "recordings", samples, ".npy")
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    assert train_main(["supervised", "--dataset", str(folder), "--sensor-size", "40,40,2", "--epochs", "1",
                       "-T", "3", "--batch-size", "4", "--max-samples", "12", "--device", "cpu", "--no-export",
                       "--out", str(run)]) == 0, capsys.readouterr().err
    assert train_main(["eval", "--checkpoint", str(run / "last.pt"), "--device", "cpu", "--out",
                       str(tmp_path / "ev")]) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "ev" / "eval_recordings_test.json").read_text())
    assert result["samples"] == 3 and result["dataset"] == str(folder.resolve())
