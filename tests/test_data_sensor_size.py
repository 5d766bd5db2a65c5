"""A recordings folder's sensor size inferred from its events (issue 27): said in one line, recorded as inferred
in the recipe and the model card, and a later recording reaching beyond it is refused saying the size was
inferred and that ``--sensor-size W,H,P`` sets it (instead of "coordinates outside the 22x24 sensor" alone)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from own_recordings import write_npy

from neuromoco.errors import UserError
from neuromoco.train.data import get_event_dataset
from neuromoco.train.data.recipe import dataset_recipe

INFERRED = "sensor size inferred as 22x24x2 from the events (max x 21 + 1, max y 23 + 1"


def _events(seed: int, n: int = 300, max_x: int = 21, max_y: int = 23) -> np.ndarray:
    """Random events over a 32-wide sensor of which the recording reaches x = ``max_x``, y = ``max_y`` only."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    ev["t"] = np.sort(rng.integers(0, 50_000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, max_x + 1, n), rng.integers(0, max_y + 1, n), rng.integers(0, 2, n)
    ev["x"][0], ev["y"][0] = max_x, max_y
    return ev


def _folder(root: Path, per_class: int = 4, split: bool = False) -> Path:
    """Two classes of recordings reaching x = 21, y = 23 (``split``: train/ and test/ sub-folders)."""
    for c in range(2):
        for i in range(per_class):
            part = ("test" if i == per_class - 1 else "train") if split else ""
            folder = root / part / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            write_npy(folder / f"{i}.npy", _events(10 * c + i))
    return root


def test_inferred_size_is_said_in_one_line_and_recorded(tmp_path, capsys):
    folder = _folder(tmp_path / "rec")
    ds = get_event_dataset(str(folder), "all", tmp_path / "data")
    err = capsys.readouterr().err
    assert ds.sensor_size == (22, 24, 2)
    assert err.count("\n") == 1 and INFERRED in err and "--sensor-size W,H,P" in err, err
    assert str(folder.resolve()) in err
    recipe = dataset_recipe(str(folder))
    assert recipe["sensor_size"] == [22, 24, 2] and recipe["sensor_size_inferred"] is True
    assert capsys.readouterr().err == ""  # said once per folder in a process
    given = dataset_recipe(str(folder), sensor_size=[32, 24, 2])
    assert given["sensor_size"] == [32, 24, 2] and given["sensor_size_inferred"] is False
    assert capsys.readouterr().err == ""  # a given size is not inferred: nothing to say


def test_a_recording_beyond_a_recorded_inferred_size_says_how_to_set_it(tmp_path, capsys):
    from neuromoco.train.data.provider import load_frames

    folder = _folder(tmp_path / "rec")
    write_npy(folder / "class1" / "wide.npy", _events(99, max_x=30))  # a later recording: x up to 30
    spec = {"name": str(folder), "kind": "folder", "sensor_size": [22, 24, 2], "sensor_size_inferred": True,
            "time_unit": "us", "time_steps": 2}
    with pytest.raises(UserError) as err:
        load_frames(spec, "all", str(tmp_path / "data"))
    msg = str(err.value)
    assert "\n" not in msg and "wide.npy" in msg and "outside the 22x24 sensor" in msg, msg
    assert "inferred" in msg and "--sensor-size W,H,P" in msg, msg
    with pytest.raises(UserError) as err:  # recorded as known (given): the way out is named all the same
        load_frames({**spec, "sensor_size_inferred": False}, "all", str(tmp_path / "data"))
    assert "inferred" not in str(err.value) and "--sensor-size W,H,P" in str(err.value)


def test_trained_card_records_inferred_size_and_deploy_refuses_a_wider_recording(tmp_path, monkeypatch, capsys):
    """The issue's case end to end: train on recordings reaching x = 21 of a 32-wide sensor, then a new test
    recording reaches x = 30."""
    from neuromoco.deploy.cli import main as deploy_main
    from neuromoco.train.cli import main as train_main

    folder = _folder(tmp_path / "rec", split=True)
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    assert train_main(["supervised", "--dataset", str(folder), "--model", "cnn3-34", "--epochs", "1", "-T", "2",
                       "--batch-size", "4", "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
    assert INFERRED in capsys.readouterr().err
    card = json.loads((run / "model_card.json").read_text())
    assert card["dataset"]["sensor_size"] == [22, 24, 2] and card["dataset"]["sensor_size_inferred"] is True
    write_npy(folder / "test" / "class0" / "new.npy", _events(77, max_x=30))
    rc = deploy_main(["run", str(run / "model.nir"), "--target", "reference", "--no-progress",
                      "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "new.npy" in err and "outside the 22x24 sensor" in err and "inferred" in err and "--sensor-size" in err


def test_finetuning_from_a_pretrained_run_keeps_the_size_marked_inferred(tmp_path, monkeypatch, capsys):
    """``finetune --pretrained`` takes the recordings folder's sensor size from the pre-trained run's recipe, and
    with it the mark that the size was inferred (the card and a later out-of-sensor message say so)."""
    from neuromoco.train.cli import main as train_main

    folder = _folder(tmp_path / "rec", split=True)
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "data"))
    common = ["--epochs", "1", "-T", "2", "--batch-size", "4", "--device", "cpu", "--no-progress"]
    assert train_main(["pretrain", "--dataset", str(folder), "--model", "cnn3-34", "--queue-size", "8", *common,
                       "--out", str(tmp_path / "pre")]) == 0
    assert train_main(["finetune", "--pretrained", str(tmp_path / "pre" / "last.pt"), *common,
                       "--out", str(tmp_path / "ft")]) == 0
    card = json.loads((tmp_path / "ft" / "model_card.json").read_text())
    assert card["dataset"]["sensor_size"] == [22, 24, 2] and card["dataset"]["sensor_size_inferred"] is True
    capsys.readouterr()
