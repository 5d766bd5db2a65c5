"""The training commands' view of ``neuromoco.train.data``: labelled and two-view datasets, metadata, label fractions.

Datasets come from ``neuromoco.train.data`` (``get_dataset`` / ``make_contrastive_dataset``). Tests and tools can
register an in-process provider under a name with :func:`register` (used by the test suite for tiny synthetic
data), which takes precedence over ``neuromoco.train.data``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from neuromoco.errors import UserError


@dataclass
class Provider:
    """An in-process dataset source: ``labelled(split, time_steps, downsample)`` and ``contrastive(...)``."""

    labelled: Callable[..., Dataset]
    contrastive: Callable[..., Dataset]
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    sensor_size: list[int] = field(default_factory=list)


_PROVIDERS: dict[str, Provider] = {}


def register(name: str, provider: Provider) -> None:
    _PROVIDERS[name] = provider


def unregister(name: str) -> None:
    _PROVIDERS.pop(name, None)


def _data_module():
    try:
        from neuromoco.train import data
    except ImportError as err:  # pragma: no cover - the package ships with train/
        raise UserError(f"neuromoco.train.data is not available: {err}") from None
    for attr in ("get_dataset", "make_contrastive_dataset"):
        if not hasattr(data, attr):
            raise UserError(f"neuromoco.train.data lacks {attr}(); the data package is incomplete")
    return data


def _call(fn: Callable[..., Dataset], name: str, split: str, root: str | None, time_steps: int,
          downsample: int, **kw: Any) -> Dataset:
    try:
        return fn(name, split, root=root, time_steps=time_steps, downsample=downsample, **kw)
    except (KeyError, ValueError) as err:
        raise UserError(f"dataset {name!r} ({split}): {err}") from None


def labelled(name: str, split: str, *, root: str | None = None, time_steps: int = 16, downsample: int = 1,
             augment: str | None = None) -> Dataset:
    """Dataset of ``(frames [T,C,H,W] float32, label)``; ``augment`` ("weak", "default", "strong") draws one
    random event augmentation per sample and read (the contrastive views' policy), uncached."""
    augment = None if augment in (None, "none") else augment
    if name in _PROVIDERS:
        return _PROVIDERS[name].labelled(split, time_steps=time_steps, downsample=downsample,
                                         augment=augment is not None)
    data = _data_module()
    kw: dict[str, Any] = {}
    if augment is not None:
        spec = data.get_spec(name)
        kw = {"event_transform": data.contrastive_augmentation(spec.sensor_size, augment,
                                                               hflip=spec.hflip_preserves_label), "cache": False}
    return _call(data.get_dataset, name, split, root, time_steps, downsample, **kw)


def contrastive(name: str, split: str = "train", *, root: str | None = None, time_steps: int = 16,
                downsample: int = 1, strength: str = "default") -> Dataset:
    """Dataset of ``((view_q, view_k), label)``: two independent random augmentations of each sample.

    The views draw their randomness from torch's generator (``seed=None`` in ``neuromoco.train.data``), which the
    training loop re-seeds every epoch and DataLoader seeds per worker: runs are reproducible."""
    if name in _PROVIDERS:
        return _PROVIDERS[name].contrastive(split, time_steps=time_steps, downsample=downsample)
    return _call(_data_module().make_contrastive_dataset, name, split, root, time_steps, downsample,
                 strength=strength)


def dataset_names() -> list[str]:
    names = list(_PROVIDERS)
    try:
        from neuromoco.train import data
        names += [n for n in getattr(data, "DATASETS", {}) if n not in names]
    except ImportError:  # pragma: no cover
        pass
    return names


def _spec_value(spec: Any, *keys: str) -> Any:
    for k in keys:
        if isinstance(spec, dict) and k in spec:
            return spec[k]
        if hasattr(spec, k):
            return getattr(spec, k)
    return None


def metadata(name: str, dataset: Dataset | None = None) -> dict[str, Any]:
    """``{"num_classes", "class_names", "sensor_size"}`` of a dataset (from its registry entry where it has one)."""
    if name in _PROVIDERS:
        p = _PROVIDERS[name]
        return {"num_classes": p.num_classes, "class_names": list(p.class_names) or [str(i) for i in
                range(p.num_classes)], "sensor_size": list(p.sensor_size)}
    spec: Any = None
    try:
        from neuromoco.train import data
        spec = getattr(data, "DATASETS", {}).get(name)
    except ImportError:  # pragma: no cover
        pass
    base = _base(dataset) if dataset is not None else None
    names = _spec_value(spec, "class_names", "classes") or (_spec_value(base, "class_names", "classes")
                                                           if base is not None else None)
    n = _spec_value(spec, "num_classes", "n_classes") or (len(names) if names else None)
    if n is None and dataset is not None:
        n = int(labels_of(dataset).max()) + 1
    if n is None:
        raise UserError(f"cannot tell how many classes dataset {name!r} has")
    sensor = _spec_value(spec, "sensor_size") or (_spec_value(base, "sensor_size") if base is not None else None)
    names = [str(c) for c in names] if names else [str(i) for i in range(int(n))]
    return {"num_classes": int(n), "class_names": names, "sensor_size": [int(v) for v in sensor] if sensor else []}


def _base(ds: Dataset) -> Dataset:
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds


def labels_of(ds: Dataset) -> np.ndarray:
    """All labels of ``ds`` without loading frames where the dataset exposes them (``targets``/``labels``)."""
    if isinstance(ds, Subset):
        return labels_of(ds.dataset)[np.asarray(ds.indices, dtype=np.int64)]
    for attr in ("targets", "labels"):
        v = getattr(ds, attr, None)
        if v is not None and not callable(v):
            arr = np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v).astype(np.int64).reshape(-1)
            if len(arr) == len(ds):
                return arr
    get = getattr(ds, "get_label", None) or getattr(ds, "label", None)
    if callable(get):
        return np.array([int(get(i)) for i in range(len(ds))], dtype=np.int64)
    return np.array([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)


def class_balanced_subset(ds: Dataset, fraction: float, seed: int) -> Subset:
    """A seeded subset holding ``fraction`` of each class (rounded, at least one sample per class)."""
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"--label-fraction must be in (0, 1], got {fraction}")
    labels = labels_of(ds)
    if fraction >= 1.0:
        return Subset(ds, list(range(len(labels))))
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = max(1, round(fraction * len(idx)))
        keep += sorted(rng.choice(idx, size=n, replace=False).tolist())
    return Subset(ds, sorted(keep))


def first_n(ds: Dataset, n: int | None) -> Dataset:
    """The first ``n`` samples (``--max-samples``, for smoke runs), or ``ds`` itself."""
    if not n or n >= len(ds):
        return ds
    return Subset(ds, list(range(int(n))))


def frame_shape(ds: Dataset) -> list[int]:
    """``[T, C, H, W]`` of the first sample (of either view for a two-view dataset)."""
    if len(ds) == 0:
        raise UserError("the dataset is empty")
    x = ds[0][0]
    if isinstance(x, (tuple, list)):
        x = x[0]
    return [int(v) for v in x.shape]
