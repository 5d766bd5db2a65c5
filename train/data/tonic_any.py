"""Any of tonic's dataset classes as a dataset: ``--dataset tonic:ClassName``.

The files go where the class reads them, ``ROOT/<ClassName>/...`` (tonic's layout, as for the named datasets);
nothing is downloaded unless allowed (``NEUROMOCO_DOWNLOAD=1``). Sensor size and classes come from tonic
(``cls.sensor_size``, ``cls.classes``; a class that reads its class list from its files, as SHD does, is
opened to read it). A class whose ``__init__`` takes ``train`` has an official split; others get the seeded
9:1 split per class. Events without a y field (1-D sensors such as SHD's 700 channels, sensor ``(700, 1, 1)``)
get ``y = 0``: frames are ``[T, P, 1, W]``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.errors import UserError
from neuromoco.train.data.base import EVENT_DTYPE, EventDataset
from neuromoco.train.data.registry import DatasetMissing, DatasetSpec, download_allowed, resolve_root
from neuromoco.train.data.splits import SPLIT_SEED, select_split, split_parts
from neuromoco.train.data.tonic_named import trusting_extracted_files

_CLASSES: dict[str, tuple[str, ...]] = {}  # classes read from a class's files (SHD), per class name


def tonic_dataset_class(name: str) -> type[Any]:
    """The class ``tonic.datasets.<ClassName>`` of ``tonic:ClassName``."""
    import tonic.datasets

    cls_name = name.split(":", 1)[1]
    cls = getattr(tonic.datasets, cls_name, None)
    if not isinstance(cls, type) or not hasattr(cls, "sensor_size"):
        known = sorted(n for n, v in vars(tonic.datasets).items() if isinstance(v, type) and hasattr(v, "sensor_size"))
        raise UserError(f"tonic has no dataset class {cls_name!r}; known: {', '.join(known)}")
    return cls


def _official(cls: type[Any]) -> bool:
    return "train" in inspect.signature(cls.__init__).parameters


def _class_names(classes: Any) -> tuple[str, ...] | None:
    if classes is None or isinstance(classes, property):
        return None
    if isinstance(classes, dict):
        return tuple(str(k) for k in sorted(classes, key=lambda k: classes[k]))
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(classes).reshape(-1).tolist()]
    return tuple(names) or None


def tonic_spec(name: str, root: str | os.PathLike | None = None, **_: object) -> DatasetSpec:
    """The spec of ``tonic:ClassName`` (classes read from the files when the class does not list them)."""
    cls = tonic_dataset_class(name)
    classes = _class_names(getattr(cls, "classes", None)) or _CLASSES.get(cls.__name__)
    if classes is None:
        classes = _CLASSES.setdefault(cls.__name__, _class_names(_open(cls, "train" if _official(cls) else "all",
                                                                       resolve_root(root), None).classes) or ())
    w, h, p = (int(v) for v in cls.sensor_size)
    return DatasetSpec(name=f"tonic:{cls.__name__}", title=f"tonic.datasets.{cls.__name__}", sensor_size=(w, h, p),
                       num_classes=len(classes), class_names=classes, official_split=_official(cls),
                       files=f"ROOT/{cls.__name__}/... (tonic's layout)", tonic_any=cls.__name__,
                       hflip_preserves_label=False)


def _open(cls: type, part: str, root: Path, download: bool | None):
    folder = root / cls.__name__
    present = folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))
    if not present and not download_allowed(download):
        raise DatasetMissing(f"dataset tonic:{cls.__name__}: no files in {folder.resolve()} (folder is missing or "
                             f"empty): put them there in tonic's layout, or set NEUROMOCO_DOWNLOAD=1 to let tonic "
                             "download them (needs network access)")
    opened = trusting_extracted_files(cls) if present else cls
    kwargs = {"train": part == "train"} if _official(cls) else {}
    try:
        ds = opened(save_to=str(root), **kwargs)
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise DatasetMissing(f"dataset tonic:{cls.__name__}: cannot open the files in {folder.resolve()}: "
                             f"{type(err).__name__}: {err}") from None
    if len(ds) == 0:
        raise DatasetMissing(f"dataset tonic:{cls.__name__} ({part}): no samples in {folder.resolve()}")
    return ds


class TonicClassEvents(EventDataset):
    """One split of ``tonic:ClassName``: ``(events, label)`` in the pipeline's dtype (y = 0 for 1-D sensors)."""

    def __init__(self, name: str, split: str = "train", root: str | Path | None = None,
                 download: bool | None = None) -> None:
        split_parts(split, True)  # a bad split name fails before anything is read
        cls = tonic_dataset_class(name)
        self.root = resolve_root(root)
        official = _official(cls)
        self._parts = [_open(cls, p, self.root, download) for p in split_parts(split, official)]
        if _class_names(getattr(cls, "classes", None)) is None:
            _CLASSES.setdefault(cls.__name__, _class_names(getattr(self._parts[0], "classes", None)) or ())
        self.spec = tonic_spec(name, self.root)
        self.split = split
        self._index, self.labels = select_split([self._labels(ds) for ds in self._parts], split, official)
        import tonic

        self.version = f"{self.spec.name}-tonic{tonic.__version__}-split{SPLIT_SEED}-n{len(self.labels)}"

    def _labels(self, ds) -> np.ndarray:
        targets = getattr(ds, "targets", None)
        raw = list(targets) if targets is not None and len(targets) == len(ds) else [ds[i][1] for i in range(len(ds))]
        names = list(self.spec.class_names)
        out = []
        for t in raw:
            if isinstance(t, (bytes, str)):
                t = t.decode() if isinstance(t, bytes) else t
                if t not in names:
                    raise UserError(f"dataset {self.spec.name}: label {t!r} is not one of its classes {names}")
                t = names.index(t)
            out.append(int(t))
        return np.asarray(out, dtype=np.int64)

    def events(self, index: int) -> np.ndarray:
        k, i = self._index[index]
        raw, _ = self._parts[k][i]
        names = raw.dtype.names or ()
        if "t" not in names or "x" not in names:
            raise UserError(f"dataset {self.spec.name}: events have fields {list(names)}, need at least t and x")
        out = np.zeros(len(raw), dtype=EVENT_DTYPE)
        for f in ("x", "y", "t", "p"):
            if f in names:
                out[f] = np.asarray(raw[f]).astype(np.int64)
        if len(out) > 1 and np.any(np.diff(out["t"]) < 0):
            out = out[np.argsort(out["t"], kind="stable")]
        return out
