"""Writers of real event files in every format ``--dataset PATH`` reads, and a few simulated digits to fill them.

The events come from the embedded dataset's simulator (``train/data/simulator.py``): a handful of
scikit-learn digits through the N-MNIST-style DVS simulation (about a second), 34x34 sensor, microseconds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
from camera_files import CAMERA_WRITERS


@lru_cache(maxsize=4)
def digit_events(per_class: int = 5, classes: int = 3) -> tuple[tuple[np.ndarray, int], ...]:
    """``per_class`` simulated recordings of each digit ``0 .. classes-1``: ``((events, label), ...)``."""
    from sklearn.datasets import load_digits

    from neuromoco.train.data.simulator import simulate

    d = load_digits()
    idx = [int(i) for c in range(classes) for i in np.flatnonzero(d.target == c)[:per_class]]
    streams = simulate(d.images[idx] / 16.0, [(0, i) for i in idx])
    return tuple((ev, int(d.target[i])) for ev, i in zip(streams, idx, strict=True))


def write_npy(path: Path, ev: np.ndarray) -> None:
    out = np.empty(len(ev), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "?")])  # another field order
    for f in ("x", "y", "t", "p"):
        out[f] = ev[f]
    np.save(path, out)


def atis_bytes(ev: np.ndarray) -> bytes:
    """N-MNIST's 40-bit events: x (8 bits), y (8), polarity (1), timestamp (23, microseconds)."""
    t = np.asarray(ev["t"], dtype=np.int64)
    assert t.max() < 2 ** 23 and ev["x"].max() < 256 and ev["y"].max() < 240
    raw = np.empty((len(ev), 5), dtype=np.uint8)
    raw[:, 0] = ev["x"]
    raw[:, 1] = ev["y"]
    raw[:, 2] = (np.asarray(ev["p"], dtype=np.int64) << 7) | ((t >> 16) & 127)
    raw[:, 3] = (t >> 8) & 255
    raw[:, 4] = t & 255
    return raw.tobytes()


def write_bin(path: Path, ev: np.ndarray) -> None:
    path.write_bytes(atis_bytes(ev))


def write_aedat4(path: Path, ev: np.ndarray, size: tuple[int, int] = (34, 34)) -> None:
    import dv_processing as dv

    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("neuromoco-test", size))
    store = dv.EventStore()
    for t, x, y, p in zip(ev["t"].tolist(), ev["x"].tolist(), ev["y"].tolist(), ev["p"].tolist(), strict=True):
        store.push_back(int(t), int(x), int(y), bool(p))
    writer.writeEvents(store)
    del writer  # closes the file


def write_h5(path: Path, ev: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        for name in ("x", "y", "t", "p"):
            g.create_dataset(name, data=np.asarray(ev[name]))


def write_csv(path: Path, ev: np.ndarray) -> None:
    rows = np.stack([ev["x"], ev["y"], ev["t"], ev["p"]], axis=1).astype(np.int64)
    np.savetxt(path, rows, fmt="%d", delimiter=",", header="x,y,t,p", comments="")


WRITERS = {".npy": write_npy, ".bin": write_bin, ".aedat4": write_aedat4, ".h5": write_h5, ".csv": write_csv,
           **CAMERA_WRITERS}


def write_folder(root: Path, samples, suffixes: str | list[str] = ".npy", names: list[str] | None = None) -> Path:
    """``root/<class>/<i><suffix>`` for each ``(events, label)``; ``suffixes`` cycles when a list (mixed formats)."""
    cycle = [suffixes] if isinstance(suffixes, str) else list(suffixes)
    for i, (ev, label) in enumerate(samples):
        folder = root / (names[label] if names else f"digit{label}")
        folder.mkdir(parents=True, exist_ok=True)
        suffix = cycle[i % len(cycle)]
        WRITERS[suffix](folder / f"{i:03d}{suffix}", ev)
    return root
