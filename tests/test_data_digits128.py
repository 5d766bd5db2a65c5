"""The 128x128 simulated digits (``scripts/make_sim128.py``): deterministic files the folder reader reads, the
generator benchmarks/scale.py uses, and a card's ``generated`` entry resolved to a folder the provider frames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from neuromoco.train.data import get_dataset
from neuromoco.train.data.digits128 import (
    MANIFEST,
    card_entry,
    default_folder,
    first_per_class,
    simulate_digits,
)
from neuromoco.train.data.provider import load_frames
from neuromoco.train.data.simulator import FLUSH_BELOW, SimulatorConfig, simulate

ROOT = Path(__file__).resolve().parents[1]


def test_simulate_digits_is_the_benchmarks_generator():
    """benchmarks/scale.py: the first n digits / 16, seeds 0..n-1, 128x128 sensor, digit 96 px, flushed."""
    events, labels, cfg = simulate_digits(2)
    expected = simulate(load_digits().images[:2] / 16.0, [0, 1], SimulatorConfig(sensor=128, digit_size=96.0),
                        flush_below=FLUSH_BELOW)
    assert cfg == SimulatorConfig(sensor=128, digit_size=96.0)
    assert labels.tolist() == load_digits().target[:2].tolist()
    for a, b in zip(events, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_script_writes_the_same_folder_twice_and_the_reader_frames_it(tmp_path):
    out = tmp_path / "sim"
    written = []
    for _ in range(2):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sim128.py"), "--out", str(out),
                        "--samples-per-class", "2", "--force"], check=True, capture_output=True)
        written.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.npy"))})
    target = load_digits().target
    assert sorted(written[0]) == sorted(f"{target[i]}/{i:04d}.npy" for i in first_per_class(2))
    assert written[0] == written[1]
    files = sorted(out.rglob("*.npy"))
    ev = np.load(files[0])
    assert set(ev.dtype.names) == {"x", "y", "t", "p"} and ev["x"].max() < 128 and ev["y"].max() < 128
    assert np.all(np.diff(ev["t"]) >= 0)
    ds = get_dataset(str(out), "all", tmp_path / "data", time_steps=4, cache=False)
    assert len(ds) == 20 and ds.frame_shape == (4, 2, 128, 128)
    assert np.bincount(ds.labels).tolist() == [2] * 10
    assert ds.frames(0).sum() == len(np.load(out / "0" / "0000.npy"))  # framing loses no event


def test_card_entry_resolves_to_a_generated_folder(tmp_path):
    """A card naming a folder this machine lacks: the provider writes the recipe under the data folder."""
    spec = {"name": "/nonexistent/sim128", "kind": "folder", "sensor_size": [128, 128, 2], "time_unit": "us",
            "time_steps": 4, "downsample": 1, "generated": card_entry(2)}
    frames, labels = load_frames(spec, "train", root=str(tmp_path), limit=3)
    folder = default_folder(tmp_path, 2)
    assert (folder / MANIFEST).exists() and folder.name == "digits128-v1-n2-seed0"
    assert frames.shape == (3, 4, 2, 128, 128) and frames.sum() > 1000 and labels.shape == (3,)
    again, _ = load_frames({**spec, "name": str(folder)}, "train", root=str(tmp_path / "other"), limit=3)
    np.testing.assert_array_equal(again, frames)
    assert not (tmp_path / "other" / "embedded").exists()  # the named folder held the recipe: used as is
