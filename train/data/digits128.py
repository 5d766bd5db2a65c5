"""Handwritten digits as 128x128 event recordings: the simulator at a DVS128-sized sensor, written as a folder.

The 128x128 models (``cnn5-128``, ``sew-resnet18-128``) need data of their own size that every machine can
make without a network. scikit-learn's 8x8 digits (``load_digits()``, grey levels 0..16) go through the
project's event-camera simulator (:mod:`neuromoco.train.data.simulator`: three N-MNIST-style saccades, ON/OFF
events from log-intensity changes, threshold mismatch, refractory period, background noise) on a 128x128
sensor, the digit magnified to ``digit_size`` (default 96) pixels, with the blur's denormal tails flushed
(:data:`~neuromoco.train.data.simulator.FLUSH_BELOW`, for speed). About 8,400 events per sample over 300 ms;
some 0.07 s per sample on one core.

:func:`simulate_digits` is the generator ``benchmarks/scale.py`` uses for its frames (the same configuration,
``flush_below`` and per-sample seeds ``i`` for digit ``i`` at ``seed`` 0), so its events are those.
:func:`write_recordings` writes a recordings folder (docs/datasets.md, "Your own recordings"): one sub-folder
per digit, ``<digit>/<index>.npy`` a structured array ``x, y, t, p`` (microseconds, sorted, ``p`` 1 ON / 0
OFF), where ``index`` is the digit's position in ``load_digits()``; the first ``samples_per_class`` digits of
each class, so a larger folder holds a smaller one's files unchanged. The train/test split is the folder
reader's seeded 9:1 per class. ``recordings.json`` beside the class folders records the recipe;
:func:`ensure_recordings` writes the folder only when that recipe is not already there.

A model card whose ``dataset`` carries ``"generated": {"by": "digits128", ...}`` (:func:`card_entry`; the shipped
``nir_models/neuromoco_sim128_cnn5``) names such a folder by its recipe, not by a path: the dataset provider
(:mod:`neuromoco.train.data.provider`) calls :func:`folder_for`, which takes the folder the card names when it
holds that recipe, else writes it once under the data folder (``ROOT/embedded/digits128-v1-n50-seed0``), so
``deploy`` and the tests frame the model's data on any machine.

``scripts/make_sim128.py`` is the command line.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np

from neuromoco.io import atomic_write_json
from neuromoco.train.data.registry import resolve_root
from neuromoco.train.data.simulator import FLUSH_BELOW, SimulatorConfig, simulate

SENSOR = 128
DIGIT_SIZE = 96.0
#: bump when the folder's content for the same arguments changes
VERSION = 1
MANIFEST = "recordings.json"
#: the files' event dtype (the reader accepts any integer fields x, y, t, p)
FILE_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "u1")])


def sample_seeds(indices: np.ndarray | list[int], seed: int = 0) -> list:
    """The simulator's generator seed per digit: ``i`` at ``seed`` 0 (benchmarks/scale.py), else ``(seed, i)``."""
    return [int(i) if seed == 0 else (int(seed), int(i)) for i in indices]


def simulate_digits(n: int | None = None, indices: np.ndarray | list[int] | None = None, seed: int = 0,
                    sensor: int = SENSOR, digit_size: float = DIGIT_SIZE) -> tuple[list[np.ndarray], np.ndarray,
                                                                                  SimulatorConfig]:
    """Event streams (tonic's int64 ``x, y, t, p``), labels and the simulator setting for the digits
    ``indices`` of ``load_digits()`` (default: the first ``n``)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
    elif n is not None:
        idx = np.arange(n)
    else:
        raise TypeError("simulate_digits needs n or indices")
    cfg = SimulatorConfig(sensor=sensor, digit_size=digit_size)
    events = simulate(digits.images[idx] / 16.0, sample_seeds(idx, seed), cfg, flush_below=FLUSH_BELOW)
    return events, digits.target[idx].astype(np.int64), cfg


def first_per_class(samples_per_class: int) -> np.ndarray:
    """Indices into ``load_digits()`` of the first ``samples_per_class`` digits of each class, sorted."""
    from sklearn.datasets import load_digits

    target = load_digits().target
    chosen = [np.flatnonzero(target == c)[:samples_per_class] for c in range(10)]
    short = [c for c, ix in enumerate(chosen) if len(ix) < samples_per_class]
    if short:
        raise ValueError(f"load_digits() has fewer than {samples_per_class} digits of class(es) {short}")
    return np.sort(np.concatenate(chosen))


def recipe(samples_per_class: int, seed: int = 0, digit_size: float = DIGIT_SIZE, sensor: int = SENSOR) -> dict:
    cfg = SimulatorConfig(sensor=sensor, digit_size=digit_size)
    return {"version": VERSION, "samples_per_class": int(samples_per_class), "seed": int(seed),
            "source": "sklearn.datasets.load_digits (8x8, grey levels 0..16): the first samples_per_class "
                      "digits of each class; file <digit>/<index>.npy, index in load_digits()",
            "simulator": cfg.as_dict(), "flush_below": FLUSH_BELOW,
            "seeds": "sample i draws from numpy's default_rng(i) at seed 0, default_rng((seed, i)) otherwise",
            "sensor_size": [sensor, sensor, 2], "time_unit": "us"}


def write_recordings(out: str | Path, samples_per_class: int, seed: int = 0, digit_size: float = DIGIT_SIZE,
                     sensor: int = SENSOR, verbose: bool = True) -> dict:
    """Write the folder ``out`` (replacing the class folders a previous call wrote there); returns its recipe
    with the events-per-sample figures and the seconds it took."""
    out = Path(out)
    idx = first_per_class(samples_per_class)
    if verbose:
        print(f"simulating {len(idx)} digits at {sensor}x{sensor} (digit {digit_size:g} px) into {out.resolve()}",
              file=sys.stderr)
    t0 = time.perf_counter()
    events, labels, _ = simulate_digits(indices=idx, seed=seed, sensor=sensor, digit_size=digit_size)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # written last: a half-written folder never looks complete
    for c in range(10):
        shutil.rmtree(out / str(c), ignore_errors=True)
        (out / str(c)).mkdir()
    for i, label, ev in zip(idx, labels, events, strict=True):
        arr = np.empty(len(ev), dtype=FILE_DTYPE)
        for f in cast("tuple[str, ...]", FILE_DTYPE.names):  # a structured dtype's names are never None
            arr[f] = ev[f]
        np.save(out / str(label) / f"{i:04d}.npy", arr)
    counts = np.array([len(e) for e in events])
    info = {**recipe(samples_per_class, seed, digit_size, sensor), "samples": len(idx),
            "events_per_sample": {"mean": round(float(counts.mean()), 1), "min": int(counts.min()),
                                  "max": int(counts.max())},
            "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(out / MANIFEST, info)
    if verbose:
        print(f"  {len(idx)} samples, {counts.mean():.0f} events per sample on average, {info['seconds']} s",
              file=sys.stderr)
    return info


def ensure_recordings(out: str | Path, samples_per_class: int, seed: int = 0, digit_size: float = DIGIT_SIZE,
                      sensor: int = SENSOR, verbose: bool = True) -> Path:
    """``out`` holding this recipe's folder: written unless its ``recordings.json`` already says so."""
    out = Path(out)
    want = recipe(samples_per_class, seed, digit_size, sensor)
    try:
        have = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        have = {}
    if {k: have.get(k) for k in want} != want:
        write_recordings(out, samples_per_class, seed, digit_size, sensor, verbose)
    return out


def default_folder(root: str | Path | None, samples_per_class: int, seed: int = 0, digit_size: float = DIGIT_SIZE,
                   sensor: int = SENSOR) -> Path:
    """Where a card's generated folder is written: ``ROOT/embedded/digits128-v1-n<N>-seed<S>`` (the data
    folder: ``root``, else ``$NEUROMOCO_DATA``, else the per-user cache), with ``-d<size>``/``-s<sensor>`` when not
    the defaults."""
    name = f"digits128-v{VERSION}-n{samples_per_class}-seed{seed}"
    name += f"-d{digit_size:g}" if digit_size != DIGIT_SIZE else ""
    name += f"-s{sensor}" if sensor != SENSOR else ""
    return resolve_root(root) / "embedded" / name


def card_entry(samples_per_class: int, seed: int = 0, digit_size: float = DIGIT_SIZE, sensor: int = SENSOR) -> dict:
    """The ``generated`` entry of a card's ``dataset`` for this recipe (read back by :func:`folder_for`)."""
    return {"by": "digits128", "version": VERSION, "samples_per_class": int(samples_per_class), "seed": int(seed),
            "digit_size": float(digit_size), "sensor": int(sensor),
            "command": f"python scripts/make_sim128.py --out FOLDER --samples-per-class {samples_per_class}"
                       + (f" --seed {seed}" if seed else "")
                       + (f" --digit-size {digit_size:g}" if digit_size != DIGIT_SIZE else "")
                       + (f" --sensor {sensor}" if sensor != SENSOR else "")}


def folder_for(spec: dict, root: str | Path | None = None, verbose: bool = True) -> Path:
    """The recordings folder of a card's ``dataset`` with a ``generated`` entry: the folder its ``name`` names
    when that holds the recipe, else :func:`default_folder` (written there first when missing)."""
    gen = spec["generated"]
    if gen.get("by") != "digits128" or int(gen.get("version", VERSION)) != VERSION:
        raise ValueError(f"unknown generated dataset {gen!r} (this version writes digits128 v{VERSION})")
    args = (int(gen["samples_per_class"]), int(gen.get("seed", 0)), float(gen.get("digit_size", DIGIT_SIZE)),
            int(gen.get("sensor", SENSOR)))
    named = Path(str(spec.get("name", ""))).expanduser()
    try:
        have = json.loads((named / MANIFEST).read_text())
    except (OSError, ValueError):
        have = {}
    want = recipe(*args)
    if {k: have.get(k) for k in want} == want:
        return named
    return ensure_recordings(default_folder(root, *args), *args, verbose=verbose)
