"""The embedded offline dataset: scikit-learn's 1,797 handwritten digits as N-MNIST-style event streams.

``load_digits()`` (shipped inside scikit-learn, 8x8 images with grey levels 0..16, 10 classes, about 180
per class) goes through the event-camera simulation of :mod:`neuromoco.train.data.simulator` (three saccades on a
34x34 sensor, ON/OFF events from log-intensity changes, threshold mismatch, refractory period, background
noise). The result is generated once per seed (about 10 s on one core) and kept in
``ROOT/embedded/digits-events-v{VERSION}-seed{SEED}.npz``; later loads read that file. The split is
deterministic: 10% of each class (seeded) is the test set, see :mod:`neuromoco.train.data.splits`.

Typical sample: 2,000 - 3,700 events over 300 ms (mean about 2,900), both polarities about equally often;
the tests hold every sample to the band ``EVENTS_PER_SAMPLE_BAND``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from neuromoco.io import atomic_write
from neuromoco.train.data.base import EVENT_DTYPE, EventDataset
from neuromoco.train.data.registry import DATASETS, DEFAULT_SEED, EMBEDDED_VERSION, embedded_path
from neuromoco.train.data.simulator import DEFAULT_CONFIG, SimulatorConfig, simulate
from neuromoco.train.data.splits import SPLIT_SEED, stratified_split

#: every sample's event count lies in this band (tested)
EVENTS_PER_SAMPLE_BAND = (1000, 6000)


def config_hash(cfg: SimulatorConfig) -> str:
    return hashlib.sha1(json.dumps(cfg.as_dict(), sort_keys=True).encode()).hexdigest()[:8]


def build_embedded(root: str | Path | None = None, seed: int = DEFAULT_SEED, force: bool = False,
                   cfg: SimulatorConfig = DEFAULT_CONFIG, limit: int | None = None,
                   verbose: bool = True) -> Path:
    """Generate the embedded dataset into ``ROOT/embedded/`` (no-op when present unless ``force``).

    ``limit`` generates only the first ``limit`` digits (a quick look; not used by the default file name
    unless given, so a partial file never masquerades as the full one).
    """
    path = embedded_path(root, seed)
    if limit is not None:
        path = path.with_name(path.stem + f"-first{limit}.npz")
    if path.exists() and not force:
        return path
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[:limit] if limit else digits.images
    labels = digits.target[:limit] if limit else digits.target
    if verbose:
        print(f"building the embedded dataset: {len(images)} digits -> events, into {path}", file=sys.stderr)
    start = time.perf_counter()
    streams = simulate(images / 16.0, [(seed, i) for i in range(len(images))], cfg)
    counts = np.array([len(s) for s in streams], dtype=np.int64)
    allev = np.concatenate(streams) if streams else np.zeros(0, dtype=EVENT_DTYPE)
    meta = {
        "version": EMBEDDED_VERSION, "seed": seed, "simulator": cfg.as_dict(), "config_hash": config_hash(cfg),
        "source": "sklearn.datasets.load_digits (8x8, grey levels 0..16)", "n_samples": len(images),
        "seconds_to_generate": round(time.perf_counter() - start, 2),
    }
    arrays = {
        "x": allev["x"].astype(np.uint8), "y": allev["y"].astype(np.uint8), "t": allev["t"].astype(np.int32),
        "p": allev["p"].astype(np.uint8), "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "labels": labels.astype(np.int64), "images": digits.images[: len(images)].astype(np.uint8),
        "meta": np.array(json.dumps(meta)),
    }

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    _load.cache_clear()
    if verbose:
        print(f"  {len(images)} samples, {counts.mean():.0f} events per sample on average, "
              f"{meta['seconds_to_generate']} s", file=sys.stderr)
    return path


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


class EmbeddedDigits(EventDataset):
    """The embedded dataset's ``split`` ("train", "test" or "all"), all events held in memory."""

    def __init__(self, split: str = "train", root: str | Path | None = None, seed: int = DEFAULT_SEED,
                 path: str | Path | None = None) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        path = Path(path) if path is not None else build_embedded(root, seed)
        data = _load(str(path), path.stat().st_mtime)
        self.spec = DATASETS["embedded"]
        self.split = split
        self.path = path
        self.meta = data["meta"]
        self._data = data
        all_labels = data["labels"]
        self.indices = (np.arange(len(all_labels)) if split == "all"
                        else stratified_split(all_labels, seed=SPLIT_SEED)[split])
        self.labels = all_labels[self.indices]
        self.version = (f"embedded-v{self.meta['version']}-seed{self.meta['seed']}-{self.meta['config_hash']}"
                        f"-n{self.meta['n_samples']}-split{SPLIT_SEED}")

    def events(self, index: int) -> np.ndarray:
        i = int(self.indices[index])
        d = self._data
        sl = slice(int(d["offsets"][i]), int(d["offsets"][i + 1]))
        ev = np.empty(sl.stop - sl.start, dtype=EVENT_DTYPE)
        ev["x"], ev["y"], ev["t"], ev["p"] = d["x"][sl], d["y"][sl], d["t"][sl], d["p"][sl]
        return ev

    def image(self, index: int) -> np.ndarray:
        """The 8x8 source digit of a sample (grey levels 0..16)."""
        return self._data["images"][int(self.indices[index])]
