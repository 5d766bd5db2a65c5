"""The training commands' view of ``neuromoco.train.data``: labelled and two-view datasets, metadata, label fractions.

Every dataset error (unknown name, bad split or size) becomes a one-line :class:`UserError` naming dataset and
split.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from neuromoco.errors import UserError
from neuromoco.train import data


def _call(fn: Callable[..., Dataset], name: str, split: str, root: str | None, time_steps: int,
          downsample: int, **kw: Any) -> Dataset:
    try:
        return fn(name, split, root=root, time_steps=time_steps, downsample=downsample, **kw)
    except (KeyError, ValueError) as err:
        raise UserError(f"dataset {name!r} ({split}): {err}") from None


def labelled(name: str, split: str, *, root: str | None = None, time_steps: int = 16, downsample: int = 1,
             augment: str | None = None, sensor_size: list[int] | None = None,
             time_unit: str | None = None, sensor_inferred: bool = False,
             event_transform: Callable | None = None) -> Dataset:
    """Dataset of ``(frames [T,C,H,W] float32, label)``; ``augment`` ("weak", "default", "strong") draws one
    random event augmentation per sample and read (the contrastive views' policy), uncached; ``event_transform``
    another one (an ``EventTransform`` or a tonic transform, instead of ``augment``). ``sensor_size``
    and ``time_unit``: for a folder of one's own recordings (``name`` a path; ``sensor_inferred``: that size was
    inferred from the recordings when a run recorded it)."""
    kw: dict[str, Any] = own_options(sensor_size, time_unit, sensor_inferred)
    if event_transform is not None:
        kw.update(event_transform=event_transform, cache=False)
    elif augment not in (None, "none"):
        spec = data.get_spec(name, sensor_size=sensor_size, time_unit=time_unit)
        kw.update(event_transform=data.contrastive_augmentation(spec.sensor_size, augment,
                                                                hflip=spec.hflip_preserves_label), cache=False)
    return _call(data.get_dataset, name, split, root, time_steps, downsample, **kw)


def contrastive(name: str, split: str = "train", *, root: str | None = None, time_steps: int = 16,
                downsample: int = 1, strength: str = "default", sensor_size: list[int] | None = None,
                time_unit: str | None = None) -> Dataset:
    """Dataset of ``((view_q, view_k), label)``: two independent random augmentations of each sample.

    The views draw their randomness from torch's generator (``seed=None`` in ``neuromoco.train.data``), which the
    training loop re-seeds every epoch and DataLoader seeds per worker: runs are reproducible."""
    return _call(data.make_contrastive_dataset, name, split, root, time_steps, downsample, strength=strength,
                 sensor_size=sensor_size, time_unit=time_unit)


def metadata(name: str, sensor_size: list[int] | None = None, time_unit: str | None = None,
             sensor_inferred: bool = False) -> dict[str, Any]:
    """``{"num_classes", "class_names", "sensor_size", "recipe"}`` of a dataset (``recipe``: what the model
    card records so that deploy frames the same data, :mod:`neuromoco.train.data.recipe`)."""
    from neuromoco.train.data.recipe import dataset_recipe

    spec = data.get_spec(name, sensor_size=sensor_size, time_unit=time_unit)
    return {"num_classes": int(spec.num_classes), "class_names": [str(c) for c in spec.class_names],
            "sensor_size": [int(v) for v in spec.sensor_size],
            "recipe": dataset_recipe(name, sensor_size=sensor_size, time_unit=time_unit,
                                     sensor_inferred=sensor_inferred)}


def own_options(sensor_size: list[int] | None, time_unit: str | None, sensor_inferred: bool = False
                ) -> dict[str, Any]:
    """The recordings-folder options that are set, as keyword arguments of :func:`labelled`, :func:`contrastive`
    and :func:`metadata` (none at all for the named datasets' usual runs); ``sensor_inferred`` only with a size
    (a size a run recorded as inferred from its recordings keeps saying so)."""
    own: dict[str, Any] = {k: v for k, v in (("sensor_size", sensor_size), ("time_unit", time_unit)) if v}
    if sensor_inferred and sensor_size:
        own["sensor_inferred"] = True
    return own


def length(ds: Dataset) -> int:
    """Samples in ``ds``, a map-style dataset (torch's ``Dataset`` type declares no ``__len__``)."""
    return len(cast(Sized, ds))


def labels_of(ds: Dataset) -> np.ndarray:
    """All labels of ``ds`` without loading frames where the dataset exposes them (``targets``/``labels``)."""
    if isinstance(ds, Subset):
        return labels_of(ds.dataset)[np.asarray(ds.indices, dtype=np.int64)]
    for attr in ("targets", "labels"):
        v = getattr(ds, attr, None)
        if v is not None and not callable(v):
            arr = np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v).astype(np.int64).reshape(-1)
            if len(arr) == length(ds):
                return arr
    get = getattr(ds, "get_label", None) or getattr(ds, "label", None)
    if callable(get):
        return np.array([int(get(i)) for i in range(length(ds))], dtype=np.int64)
    return np.array([int(ds[i][1]) for i in range(length(ds))], dtype=np.int64)


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
    if not n or n >= length(ds):
        return ds
    return Subset(ds, list(range(int(n))))


def frame_shape(ds: Dataset) -> list[int]:
    """``[T, C, H, W]`` of the first sample (of either view for a two-view dataset)."""
    if length(ds) == 0:
        raise UserError("the dataset is empty")
    x = ds[0][0]
    if isinstance(x, (tuple, list)):
        x = x[0]
    return [int(v) for v in x.shape]
