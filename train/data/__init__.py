"""Event data: datasets (tonic and the embedded offline digits), framing, disk caches, event augmentations.

The entry points other code uses::

    from neuromoco.train.data import get_dataset, make_contrastive_dataset, get_event_dataset, DATASETS

``get_event_dataset(name, split)`` gives ``(events, label)`` with tonic's structured events (x, y, t, p);
``get_dataset(name, split, time_steps=16, downsample=1)`` gives ``(frames [T, C, H, W] float32, label)``
with a disk cache of framed samples; ``make_contrastive_dataset(name, split, strength=...)`` gives
``((view_q, view_k), label)``. Datasets: "embedded" (offline default), "embedded-mnist" (offline, MNIST's
digits at 28x28: the stand-in for N-MNIST), "nmnist", "dvsgesture",
"cifar10dvs", "ncaltech101", ``"tonic:ClassName"`` (any class of tonic.datasets, :mod:`.tonic_any`), or the
path of a folder of one's own recordings (:mod:`.folder`, formats in :mod:`.readers`; ``sensor_size`` and
``time_unit`` keywords). Files live under ``default_root()`` (``$NEUROMOCO_DATA``, else the per-user cache
``$XDG_CACHE_HOME/neuromoco/data``, ``~/.cache/neuromoco/data`` without it); a real
dataset whose files are absent raises :class:`DatasetMissing` with one message saying where they go; one
with fewer files than the full dataset is used with one warning per split (``registry.warn_if_partial``).
"""

import importlib
from typing import Any

# imported on first use (PEP 562), so `train data` and `--help` do not pay for torch and tonic
_WHERE = {
    "contrastive_augmentation": "augment", "EVENT_DTYPE": "base", "EventDataset": "base",
    "CachedEvents": "datasets", "FramedDataset": "datasets", "TwoViews": "datasets", "describe": "datasets",
    "get_dataset": "datasets", "get_event_dataset": "datasets", "make_contrastive_dataset": "datasets",
    "EVENTS_PER_SAMPLE_BAND": "embedded", "MNIST_EVENTS_PER_SAMPLE_BAND": "embedded",
    "build_embedded": "embedded", "frame_events": "framing",
    "frame_shape": "framing", "DATASETS": "registry", "DatasetMissing": "registry", "DatasetSpec": "registry",
    "default_root": "registry", "get_spec": "registry", "stratified_split": "splits",
    "stratified_subset": "splits",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'neuromoco.train.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"neuromoco.train.data.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DATASETS",
    "EVENTS_PER_SAMPLE_BAND",
    "EVENT_DTYPE",
    "MNIST_EVENTS_PER_SAMPLE_BAND",
    "CachedEvents",
    "DatasetMissing",
    "DatasetSpec",
    "EventDataset",
    "FramedDataset",
    "TwoViews",
    "build_embedded",
    "contrastive_augmentation",
    "default_root",
    "describe",
    "frame_events",
    "frame_shape",
    "get_dataset",
    "get_event_dataset",
    "get_spec",
    "make_contrastive_dataset",
    "stratified_split",
    "stratified_subset",
]
