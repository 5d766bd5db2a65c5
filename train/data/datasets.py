"""From a dataset name to what training consumes: events, framed samples (cached), two-view samples.

* :func:`get_event_dataset` -> ``(events, label)``: the embedded digits, a real dataset through tonic
  (named, or ``tonic:ClassName``), or a folder of one's own recordings (``name`` a path).
* :func:`get_dataset` -> ``(frames [T, C, H, W] float32 tensor, label)``: events framed into T time bins
  (:mod:`neuromoco.train.data.framing`), optionally downsampled, with a disk cache of framed samples (used only when
  no ``event_transform`` is given: augmented samples are never cached, they differ at every draw).
* :func:`make_contrastive_dataset` -> ``((view_q, view_k), label)``: :class:`TwoViews`, two independently
  drawn augmentations (:mod:`neuromoco.train.data.augment`) of the same events, each framed.

A DataLoader stacks samples into ``[B, T, C, H, W]``; the models take ``[T, B, C, H, W]``
(``frames.transpose(0, 1)``). Frames are raw event counts (no normalisation).

Randomness of augmented samples: with ``seed=None`` each draw takes a fresh seed from torch's generator, so
``torch.manual_seed`` and DataLoader's per-worker seeding make a run reproducible and every epoch differs;
with an integer ``seed`` a sample's views depend only on ``(seed, epoch, index)`` (``set_epoch``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from neuromoco.train.data.augment import EventTransform, contrastive_augmentation
from neuromoco.train.data.base import EVENT_DTYPE, EventDataset, list_index, to_event_array
from neuromoco.train.data.cache import NpyCache, cache_key, compact_counts
from neuromoco.train.data.embedded import DEFAULT_SEED, EmbeddedDigits, open_embedded
from neuromoco.train.data.framing import FRAMING_VERSION, frame_events, frame_shape
from neuromoco.train.data.registry import get_spec, is_embedded, is_folder_name, resolve_root

COMPACT_EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])


def get_event_dataset(name: str, split: str = "train", root: str | Path | None = None,
                      download: bool | None = None, seed: int = DEFAULT_SEED, sensor_size=None,
                      time_unit: str | None = None, sensor_inferred: bool = False) -> EventDataset:
    """``(events, label)`` samples of ``split`` ("train", "test", or "all"); ``seed`` is the embedded
    dataset's generation seed. ``name``: a registry name, ``tonic:ClassName``, or a folder of recordings
    (``sensor_size``, ``time_unit`` and ``sensor_inferred``, whether that size was inferred when recorded,
    apply to folders only). Raises :class:`DatasetMissing` when a real dataset's files are absent."""
    if is_folder_name(name):
        from neuromoco.train.data.folder import FolderEvents

        ds: EventDataset = FolderEvents(name, split, sensor_size=sensor_size, time_unit=time_unit,
                                        sensor_inferred=sensor_inferred)
    elif name.startswith("tonic:"):
        from neuromoco.train.data.tonic_any import TonicClassEvents

        ds = TonicClassEvents(name, split, root, download=download)
    elif is_embedded(get_spec(name).name):
        ds = open_embedded(get_spec(name).name, split, root, seed=seed)
    else:
        from neuromoco.train.data.tonic_named import TonicEvents

        ds = TonicEvents(get_spec(name).name, split, root, download=download)
    ds.root = resolve_root(root)
    return ds


def _call_transform(transform: Callable, events: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if isinstance(transform, EventTransform):
        return transform(events, rng)
    return transform(events)  # a tonic transform (it draws from numpy's global generator)


class _SourceView:
    """What the framed and two-view datasets share: the event source's metadata, its length, and
    per-sample augmentation generators seeded by (seed, epoch, index)."""

    source: EventDataset
    seed: int | None = None
    epoch: int = 0

    # what other code reads without touching a sample
    @property
    def labels(self) -> np.ndarray:
        return self.source.labels

    targets = labels

    @property
    def spec(self):
        return self.source.spec

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source.class_names

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """With a fixed ``seed``: a new epoch draws new augmentations (as DistributedSampler.set_epoch)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
        return np.random.default_rng([self.seed, self.epoch, index])


class CachedEvents(EventDataset):
    """A real dataset's events, converted once and kept on disk (``ROOT/cache/events/``): later reads
    skip tonic's file parsing (CIFAR10-DVS's .aedat4 decoding in particular)."""

    def __init__(self, source: EventDataset, cache_root: str | Path) -> None:
        self.source = source
        self.spec, self.split, self.labels, self.version = source.spec, source.split, source.labels, source.version
        self.root = getattr(source, "root", None)
        key = cache_key(source.spec.name, source.split, source.version)
        self.cache = NpyCache(Path(cache_root) / "events" / key, {"dataset": source.spec.name,
                                                                  "split": source.split, "version": source.version})

    def events(self, index: int) -> np.ndarray:
        stored = self.cache.get(index)
        if stored is not None:
            return to_event_array(stored)
        ev = self.source.events(index)
        self.cache.put(index, ev.astype(COMPACT_EVENT_DTYPE))
        return ev


class FramedDataset(_SourceView, Dataset):
    """``(frames [T, C, H, W] float32 tensor, label)`` from an event dataset."""

    def __init__(self, events: EventDataset, time_steps: int = 16, downsample: int = 1,
                 event_transform: Callable | None = None, cache: bool = True,
                 cache_root: str | Path | None = None, seed: int | None = None) -> None:
        self.source = events
        self.time_steps, self.downsample = int(time_steps), int(downsample)
        self.event_transform = event_transform
        self.seed = seed
        self.frame_shape = frame_shape(events.sensor_size, self.time_steps, self.downsample)
        self.cache: NpyCache | None = None
        if cache and event_transform is None:
            root = Path(cache_root) if cache_root is not None else resolve_root(getattr(events, "root", None)) / "cache"
            key = cache_key(events.spec.name, events.split, f"T{self.time_steps}", f"ds{self.downsample}",
                            f"f{FRAMING_VERSION}", events.version)
            self.cache = NpyCache(root / "frames" / key, {
                "dataset": events.spec.name, "split": events.split, "time_steps": self.time_steps,
                "downsample": self.downsample, "framing_version": FRAMING_VERSION, "version": events.version,
                "frame_shape": list(self.frame_shape)}, size=len(events))

    def frames(self, index: int) -> np.ndarray:
        """The float32 frames ``[T, C, H, W]`` of one sample (from the cache when there)."""
        if self.cache is not None:
            stored = self.cache.get(index)
            if stored is not None:
                return stored.astype(np.float32)
        events = self.source.events(index)
        if self.event_transform is not None:
            events = _call_transform(self.event_transform, events, self._rng(index))
        frames = frame_events(events, self.source.sensor_size, self.time_steps, self.downsample)
        if self.cache is not None:
            self.cache.put(index, compact_counts(frames))
        return frames

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = list_index(index, len(self))
        return torch.from_numpy(self.frames(index)), int(self.source.labels[index])

    def build_cache(self, progress: bool = False) -> FramedDataset:
        """Frame every sample now and write the packed cache in one go (faster than filling it sample by
        sample during the first epoch). A no-op without a cache or when it is complete."""
        if self.cache is None or self.cache.count() >= len(self):
            return self
        indices = range(len(self))
        if progress:
            from tqdm import tqdm

            indices = tqdm(indices, desc=f"framing {self.source.spec.name} {self.source.split}", unit="sample")
        arrays = []
        for i in indices:
            stored = self.cache.get(i)
            arrays.append(stored if stored is not None else
                          compact_counts(frame_events(self.source.events(i), self.source.sensor_size,
                                                      self.time_steps, self.downsample)))
        self.cache.pack(arrays)
        return self


class TwoViews(_SourceView, Dataset):
    """``((view_q, view_k), label)``: two independent augmentations of one sample's events, each framed.

    The label is returned for evaluation only; self-supervised training does not read it.
    """

    def __init__(self, events: EventDataset, transform_q: Callable, transform_k: Callable | None = None,
                 time_steps: int = 16, downsample: int = 1, seed: int | None = None) -> None:
        self.source = events
        self.transform_q = transform_q
        self.transform_k = transform_k if transform_k is not None else transform_q
        self.time_steps, self.downsample = int(time_steps), int(downsample)
        self.seed = seed
        self.frame_shape = frame_shape(events.sensor_size, self.time_steps, self.downsample)

    def views(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        events = self.source.events(index)
        rng = self._rng(index)
        sensor = self.source.sensor_size
        q = frame_events(_call_transform(self.transform_q, events, rng), sensor, self.time_steps, self.downsample)
        k = frame_events(_call_transform(self.transform_k, events, rng), sensor, self.time_steps, self.downsample)
        return q, k

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        index = list_index(index, len(self))
        q, k = self.views(index)
        return (torch.from_numpy(q), torch.from_numpy(k)), int(self.source.labels[index])


def get_dataset(name: str, split: str = "train", root: str | Path | None = None, time_steps: int = 16,
                downsample: int = 1, event_transform: Callable | None = None, cache: bool = True,
                download: bool | None = None, seed: int | None = None, sensor_size=None,
                time_unit: str | None = None, sensor_inferred: bool = False) -> FramedDataset:
    """Framed samples ``(frames [T, C, H, W] float32, label)`` of a dataset split (see module docstring)."""
    events = get_event_dataset(name, split, root, download=download, sensor_size=sensor_size, time_unit=time_unit,
                               sensor_inferred=sensor_inferred)
    return FramedDataset(events, time_steps, downsample, event_transform, cache,
                         cache_root=resolve_root(root) / "cache", seed=seed)


def make_contrastive_dataset(name: str, split: str = "train", root: str | Path | None = None,
                             time_steps: int = 16, downsample: int = 1, strength: str = "default",
                             seed: int | None = None, download: bool | None = None,
                             cache_events: bool = True, sensor_size=None, time_unit: str | None = None,
                             sensor_inferred: bool = False) -> TwoViews:
    """Two-view samples for NeuroMoCo pre-training, with the augmentation policy ``strength``
    ("none", "weak", "default", "strong"); horizontal flips only where they keep the class."""
    events = get_event_dataset(name, split, root, download=download, sensor_size=sensor_size, time_unit=time_unit,
                               sensor_inferred=sensor_inferred)
    if cache_events and not isinstance(events, EmbeddedDigits):  # the embedded events are in memory already
        events = CachedEvents(events, resolve_root(root) / "cache")
    spec = events.spec
    aug = contrastive_augmentation(spec.sensor_size, strength, hflip=spec.hflip_preserves_label)
    return TwoViews(events, aug, None, time_steps, downsample, seed=seed)


def describe(ds: Any) -> dict[str, Any]:
    """A small summary (for logs and model cards) of a dataset made here."""
    src = getattr(ds, "source", ds)
    return {"name": src.spec.name, "split": src.split, "samples": len(ds), "version": src.version,
            "time_steps": getattr(ds, "time_steps", None), "downsample": getattr(ds, "downsample", None),
            "frame_shape": list(getattr(ds, "frame_shape", ())), "sensor_size": list(src.sensor_size),
            "event_dtype": str(EVENT_DTYPE)}
