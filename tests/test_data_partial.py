"""A partial N-MNIST (fewer files than the full dataset, in its layout): used, with one warning per split
giving found vs. expected counts; `train data` shows it as partial; an empty or unreadable split is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from own_recordings import digit_events, write_bin

from neuromoco.errors import UserError
from neuromoco.train.cli import main as train_main
from neuromoco.train.data import DatasetMissing, get_dataset, get_event_dataset, registry


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(registry, "_WARNED", set())


def _partial_nmnist(root: Path, train_per_class: int = 4, test_per_class: int = 1) -> Path:
    samples = digit_events(per_class=5, classes=3)
    for part, n in (("Train", train_per_class), ("Test", test_per_class)):
        for i, (ev, label) in enumerate(samples):
            if i % 5 < n:
                folder = root / "NMNIST" / part / str(label)
                folder.mkdir(parents=True, exist_ok=True)
                write_bin(folder / f"{i:05d}.bin", ev)
    return root


def test_partial_nmnist_is_used_with_one_warning_per_split(tmp_path, capsys):
    root = _partial_nmnist(tmp_path)
    train = get_event_dataset("nmnist", "train", root)
    test = get_event_dataset("nmnist", "test", root)
    get_event_dataset("nmnist", "train", root)  # again: no second warning
    assert len(train) == 12 and len(test) == 3 and sorted(set(train.labels.tolist())) == [0, 1, 2]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    folder = (root / "NMNIST" / "Train").resolve()
    assert lines[0] == (f"warning: dataset 'nmnist' train split is partial: found 12 of 60000 files in {folder} "
                        "(per class found/expected: 0 4/5923, 1 4/6742, 2 4/5958, 3 0/6131, 4 0/5842, 5 0/5421, "
                        "6 0/5918, 7 0/6265, 8 0/5851, 9 0/5949); results are not comparable with published ones")
    assert "test split is partial: found 3 of 10000 files" in lines[1] and "0 1/980, 1 1/1135" in lines[1]
    frames, label = get_dataset("nmnist", "test", root, time_steps=4)[0]
    assert tuple(frames.shape) == (4, 2, 34, 34) and label == 0 and frames.sum() > 1000


def test_partial_nmnist_trains_and_train_data_shows_it(tmp_path, capsys):
    root = _partial_nmnist(tmp_path)
    assert train_main(["data", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "partial under" in out and "train 12 of 60000 files, test 3 of 10000 files" in out
    rc = train_main(["supervised", "--dataset", "nmnist", "--data-root", str(root), "--epochs", "1", "-T", "4",
                     "--batch-size", "4", "--device", "cpu", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.count("train split is partial: found 12 of 60000") == 1
    assert err.count("test split is partial: found 3 of 10000") == 1


def test_empty_split_is_still_an_error_naming_the_folder(tmp_path):
    root = _partial_nmnist(tmp_path, test_per_class=0)
    get_event_dataset("nmnist", "train", root)
    with pytest.raises(DatasetMissing) as info:
        get_event_dataset("nmnist", "test", root)
    assert str((root / "NMNIST" / "Test").resolve()) in str(info.value) and "missing or empty" in str(info.value)


def test_unreadable_file_names_the_file(tmp_path):
    root = _partial_nmnist(tmp_path)
    bad = root / "NMNIST" / "Test" / "0" / "00000.bin"
    bad.write_bytes(bad.read_bytes()[:-3])  # no longer whole 40-bit events
    with pytest.raises(UserError, match="00000.bin"):
        get_event_dataset("nmnist", "test", root)[0]
