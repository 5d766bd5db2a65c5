"""Bad recordings folders: one line naming the folder or file, exit code 2, no traceback
(`train ... --dataset PATH`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from own_recordings import digit_events, write_aedat4, write_folder, write_npy

from neuromoco.train.cli import main as train_main


def _good(root: Path) -> Path:
    return write_folder(root, digit_events(per_class=2, classes=2))


def _ev(t, x=None, y=None) -> np.ndarray:
    ev = np.zeros(len(t), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    ev["t"] = t
    ev["x"] = x if x is not None else 1
    ev["y"] = y if y is not None else 2
    return ev


def _no_folder(root: Path) -> tuple[Path, str]:
    return root / "nowhere", "dataset folder"


def _missing_file(root: Path) -> tuple[Path, str]:
    """A recording file given as --dataset is named a file, not a folder."""
    return root / "rec01.npy", "dataset file"


def _a_file(root: Path) -> tuple[Path, str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "rec02.npy").write_bytes(b"")
    return root / "rec02.npy", "is a file, not a folder"


def _no_class_folders(root: Path) -> tuple[Path, str]:
    (root / "d").mkdir()
    (root / "d" / "README.txt").write_text("no recordings here")
    return root / "d", "no class sub-folders"


def _class_without_files(root: Path) -> tuple[Path, str]:
    folder = _good(root / "d")
    (folder / "digit7").mkdir()
    (folder / "digit7" / "notes.txt").write_text("not an event file")
    return folder / "digit7", "class folder has no event files"


def _unreadable(root: Path) -> tuple[Path, str]:
    folder = _good(root / "d")
    (folder / "digit0" / "broken.npy").write_bytes(b"not a numpy file")
    return folder / "digit0" / "broken.npy", "cannot read as .npy"


def _not_structured(root: Path) -> tuple[Path, str]:
    folder = _good(root / "d")
    np.save(folder / "digit1" / "plain.npy", np.zeros((5, 4)))
    return folder / "digit1" / "plain.npy", "not a structured array with fields x, y, t, p"


def _mixed_sensors(root: Path) -> tuple[Path, str]:
    folder = root / "d"
    for c, size in (("a", (34, 34)), ("b", (40, 30))):
        (folder / c).mkdir(parents=True)
        write_aedat4(folder / c / "r.aedat4", _ev([1, 2, 3]), size)
    return folder / "b" / "r.aedat4", "mixed sensor sizes"


def _unsorted(root: Path) -> tuple[Path, str]:
    folder = _good(root / "d")
    write_npy(folder / "digit1" / "unsorted.npy", _ev([5, 9, 7, 11]))
    return folder / "digit1" / "unsorted.npy", "timestamps are not sorted"


def _negative(root: Path) -> tuple[Path, str]:
    folder = _good(root / "d")
    write_npy(folder / "digit0" / "negative.npy", _ev([-3, 1, 2]))
    return folder / "digit0" / "negative.npy", "negative timestamps"


def _outside(root: Path) -> tuple[Path, str]:
    folder = _good(root / "d")
    write_npy(folder / "digit0" / "wide.npy", _ev([1, 2, 3], x=[1, 40, 2]))
    return folder / "digit0" / "wide.npy", "outside the 34x34 sensor"


CASES = [_no_folder, _missing_file, _a_file, _no_class_folders, _class_without_files, _unreadable, _not_structured,
         _mixed_sensors, _unsorted, _negative, _outside]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_folder_is_one_line_naming_the_file(case, tmp_path, monkeypatch, capsys):
    named, message = case(tmp_path)
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "data"))
    extra = ["--sensor-size", "34,34,2"] if case is _outside else []
    given = named if case in (_no_folder, _missing_file, _a_file) else tmp_path / "d"  # the others build d/
    rc = train_main(["supervised", "--dataset", str(given),
                     "--model", "cnn3-34", "--epochs", "1", "-T", "4", "--batch-size", "2", "--device", "cpu",
                     "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert message in err and str(named.resolve() if case is not _mixed_sensors else named) in err, err


def test_bad_sensor_size_and_time_unit_are_usage_errors(tmp_path, capsys):
    for extra in (["--sensor-size", "34,34"], ["--time-unit", "minutes"]):
        with pytest.raises(SystemExit) as info:
            train_main(["supervised", "--dataset", str(tmp_path), "--out", str(tmp_path / "r"), *extra])
        assert info.value.code == 2
    assert "W,H,P" in capsys.readouterr().err
