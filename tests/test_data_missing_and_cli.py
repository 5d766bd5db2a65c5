"""Real datasets: the one-message error when files are absent, tonic's loading path on a tiny fake
DVS128 Gesture folder, and `train data` (listing, rendering, errors without traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuromoco.train.data import DatasetMissing, build_embedded, get_dataset, get_event_dataset
from neuromoco.train.data.registry import DATASETS, is_embedded

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "neuromoco-data"
    build_embedded(root, verbose=False)
    return root


@pytest.fixture()
def no_download(monkeypatch):
    import tonic.dataset

    def refuse(self):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(tonic.dataset.Dataset, "download", refuse)
    monkeypatch.delenv("NEUROMOCO_DOWNLOAD", raising=False)


@pytest.mark.parametrize("name", [n for n in DATASETS if not is_embedded(n)])
def test_missing_dataset_names_the_folder_and_files(name, tmp_path, no_download):
    with pytest.raises(DatasetMissing) as info:
        get_event_dataset(name, "train", tmp_path)
    message = str(info.value)
    folder = DATASETS[name].file_check("train").folder
    assert str((tmp_path / folder).resolve()) in message
    assert "network" in message and "\n" not in message
    for archive in DATASETS[name].archives:
        assert archive in message


def test_missing_dataset_from_get_dataset_too(tmp_path, no_download):
    with pytest.raises(DatasetMissing, match="DVSGesture"):
        get_dataset("dvsgesture", "test", tmp_path)


def _fake_gesture(root: Path, users=range(1, 30)) -> None:
    """tonic's pre-cut DVS128 Gesture layout: <split folder>/userNN_<lighting>/<class>.npy, rows x, y, p, t(ms)."""
    rng = np.random.default_rng(0)
    for user, light in [(u, light) for u in users for light in ("fluorescent", "led")]:
        folder = "ibmGestureTrain" if user <= 23 else "ibmGestureTest"
        d = root / "DVSGesture" / folder / f"user{user:02d}_{light}"
        d.mkdir(parents=True)
        for c in range(11):
            n = 200
            ev = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                           np.sort(rng.integers(0, 1000, n))], axis=1).astype(np.int64)
            np.save(d / f"{c}.npy", ev)


def test_real_dataset_path_through_tonic(tmp_path, no_download):
    _fake_gesture(tmp_path)
    train = get_event_dataset("dvsgesture", "train", tmp_path)
    test = get_event_dataset("dvsgesture", "test", tmp_path)
    assert len(train) == 23 * 2 * 11 and len(test) == 6 * 2 * 11  # the official split: users 1-23 / 24-29
    ev, label = train[0]
    assert ev.dtype.names == ("x", "y", "t", "p") and 0 <= label < 11 and len(ev) == 200
    assert ev["t"].max() > 1000  # milliseconds became microseconds
    ds = get_dataset("dvsgesture", "test", tmp_path, time_steps=4, downsample=4)
    frames, _ = ds[0]
    assert tuple(frames.shape) == (4, 2, 32, 32) and int(frames.sum()) == 200
    assert ds[0][0].equal(frames)  # second read from the cache


def _cli(*args: str, env_root: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_root is not None:
        env["NEUROMOCO_DATA"] = str(env_root)
    return subprocess.run([sys.executable, "-m", "neuromoco.train.cli", "data", *args], check=False,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_cli_lists_datasets_with_status(tmp_path):
    proc = _cli(env_root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in DATASETS:
        assert name in proc.stdout
    assert "missing" in proc.stdout and str(tmp_path.resolve() / "DVSGesture") in proc.stdout
    assert "not built yet" in proc.stdout


def test_cli_missing_dataset_is_one_message_without_traceback(tmp_path):
    proc = _cli("--render", "dvsgesture", "--out", str(tmp_path / "png"), "--data-root", str(tmp_path / "empty"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "DVSGesture" in proc.stderr and "network" in proc.stderr
    assert "unknown dataset" in _cli("--render", "mnist", "--out", str(tmp_path)).stderr


def test_cli_renders_png(tmp_path, data_root):
    proc = _cli("--render", "embedded", "--out", str(tmp_path), "--n", "3", "--time-steps", "6",
                "--data-root", str(data_root))
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["embedded_train_samples.png", "embedded_train_views.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
