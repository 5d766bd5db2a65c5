"""Datasets from Python: :func:`load_dataset` gives a torch ``Dataset`` of framed samples from every source
the training commands read; the event augmentations are composable transforms (``tonic``'s style: frozen
dataclasses called on a structured event array, ``transform(events, rng)``), re-exported here."""

from __future__ import annotations

import os
from collections.abc import Callable

from torch.utils.data import Dataset

from neuromoco.errors import UserError
from neuromoco.train.api.runs import PathLike
from neuromoco.train.data.augment import (
    Compose,
    DropByArea,
    DropByTime,
    DropRandom,
    EventDrop,
    EventTransform,
    RandomAffine,
    RandomApply,
    RandomChoice,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomTranslation,
    TemporalCrop,
    contrastive_augmentation,
)

__all__ = [
    "Compose",
    "DropByArea",
    "DropByTime",
    "DropRandom",
    "EventDrop",
    "EventTransform",
    "RandomAffine",
    "RandomApply",
    "RandomChoice",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomTranslation",
    "TemporalCrop",
    "contrastive_augmentation",
    "load_dataset",
]


def load_dataset(name_or_path: PathLike, split: str = "train", *, time_steps: int = 16, downsample: int = 1,
                 views: int = 1, augment: str | None = None, transform: Callable | None = None,
                 root: PathLike | None = None, max_samples: int | None = None, sensor_size: list[int] | None = None,
                 time_unit: str | None = None) -> Dataset:
    """A split of a dataset as a torch ``Dataset`` of framed samples, as the training commands read it.

    Args:
        name_or_path: a dataset name (``train data``: ``"embedded"``, ``"nmnist"``, ...), ``"tonic:ClassName"``
            (any class of ``tonic.datasets``), or a folder of one's own recordings, one sub-folder per class.
        split: ``"train"`` or ``"test"``.
        time_steps, downsample: frames per sample, spatial downsampling factor.
        views: 1 gives ``(frames [T, C, H, W] float32, label)``; 2 gives ``((view_q, view_k), label)``, two
            independent random augmentations of each sample at strength ``augment`` (NeuroMoCo's input).
        augment: views=1: ``"weak"``, ``"default"`` or ``"strong"`` draws the contrastive policy once per read
            (None: the cached frames); views=2: the views' strength (default ``"default"``).
        transform: views=1: an event transform of one's own instead (an ``EventTransform`` such as
            ``Compose((RandomHorizontalFlip(sensor), EventDrop(sensor)))``, or a tonic transform).
        root: where the dataset's files are (default ``$NEUROMOCO_DATA`` or the user cache).
        max_samples: the first N samples only.
        sensor_size, time_unit: a recordings folder's sensor ``[W, H, P]`` and timestamp unit.
    """
    from neuromoco.train.engine import loaders as D

    name = os.fspath(name_or_path)
    rootstr = None if root is None else os.fspath(root)
    own = D.own_options(None if sensor_size is None else list(sensor_size), time_unit)
    if views == 2:
        if transform is not None:
            raise UserError("load_dataset: views=2 draws the contrastive policy (augment=...); "
                            "transform is for views=1")
        ds = D.contrastive(name, split, root=rootstr, time_steps=time_steps, downsample=downsample,
                           strength=augment or "default", **own)
    elif views == 1:
        ds = D.labelled(name, split, root=rootstr, time_steps=time_steps, downsample=downsample, augment=augment,
                        event_transform=transform, **own)
    else:
        raise UserError(f"load_dataset: views must be 1 or 2, got {views}")
    return D.first_n(ds, max_samples)
