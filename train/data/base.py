"""The event-dataset interface every source implements, and the one event dtype the pipeline uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from neuromoco.train.data.registry import DatasetSpec
from neuromoco.train.data.simulator import EVENT_DTYPE

__all__ = ["EVENT_DTYPE", "EventDataset", "to_event_array"]


def to_event_array(events: np.ndarray) -> np.ndarray:
    """Any tonic event array (fields x, y, t, p in any order and integer/bool types) -> ``EVENT_DTYPE``,
    sorted by time."""
    out = np.empty(len(events), dtype=EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        out[name] = np.asarray(events[name]).astype(np.int64)
    if len(out) > 1 and np.any(np.diff(out["t"]) < 0):
        out = out[np.argsort(out["t"], kind="stable")]
    return out


def list_index(index: int, length: int) -> int:
    """``index`` as a position in ``[0, length)``, negative ones counting from the end as for a list;
    IndexError outside (which also ends ``for x in dataset`` loops)."""
    if not -length <= index < length:
        raise IndexError(index)
    return index % length


class EventDataset(Dataset):
    """``(events, label)`` pairs: events a structured array with fields x, y, t (us), p (0/1), label an int.

    Subclasses set ``spec``, ``split``, ``labels`` (int64 array) and ``version`` (a string that changes
    whenever the events would change: it is part of every cache key), and implement :meth:`events`.
    """

    spec: DatasetSpec
    split: str
    labels: np.ndarray
    version: str
    root: Path | None  # the data folder (get_event_dataset sets it; None where unknown)

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        return self.spec.sensor_size

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def targets(self) -> np.ndarray:
        return self.labels

    def events(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        index = list_index(index, len(self))
        return self.events(index), int(self.labels[index])
