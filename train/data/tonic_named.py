"""Real event datasets through tonic: N-MNIST, DVS128 Gesture, CIFAR10-DVS, N-Caltech101.

The files are looked for *before* tonic is asked for them: tonic's own check wants the downloaded archive
next to the extracted files and otherwise starts a download, which fails without network. Here:

* extracted files present -> tonic reads them (the archive is not needed);
* otherwise, with downloads allowed (``download=True`` or ``NEUROMOCO_DOWNLOAD=1``) -> tonic downloads and
  extracts as usual; a failure becomes :class:`DatasetMissing`;
* otherwise -> :class:`DatasetMissing`, one message saying which files go where.

Splits: N-MNIST and DVS128 Gesture use their official train/test sets (tonic's ``train=``). CIFAR10-DVS
and N-Caltech101 have none: a deterministic, seeded 9:1 split per class (:mod:`neuromoco.train.data.splits`).
Sizes: N-Caltech101's recordings (up to 240x180 pixels, origin moved to the recording's corner by tonic)
are resized to 128x128 by scaling coordinates (``x * 128 // 240``, ``y * 128 // 180``), as the NeuroMoCo
and Spikformer recipes resize their frames; CIFAR10-DVS, DVS128 Gesture and N-MNIST keep their sensors
(128x128, 128x128, 34x34). Polarities become 0 (OFF) / 1 (ON); timestamps are microseconds.
"""

from __future__ import annotations

import importlib.util
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from neuromoco.errors import UserError
from neuromoco.train.data.base import EventDataset, to_event_array
from neuromoco.train.data.registry import (
    DatasetMissing,
    DatasetSpec,
    download_allowed,
    files_present,
    get_spec,
    missing_message,
    resolve_root,
    warn_if_partial,
)
from neuromoco.train.data.splits import SPLIT_SEED, select_split, split_parts

NCALTECH_SOURCE = (240, 180)


def trusting_extracted_files(cls: type) -> type:
    """``cls`` told that its files are there: tonic's own check insists on the archive (and downloads it)."""
    return type(cls.__name__, (cls,), {"_check_exists": lambda self: True})


def _tonic_any(spec: DatasetSpec, extracted: bool):
    import tonic.datasets

    if spec.tonic_any is None:
        raise ValueError(f"dataset {spec.name!r} is not read through tonic (its spec names no tonic_any)")
    cls = getattr(tonic.datasets, spec.tonic_any)
    return trusting_extracted_files(cls) if extracted else cls


def resize_events(events: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Scale coordinates from a ``source`` (W, H) sensor onto ``target`` (W, H), clipped inside it."""
    out = events.copy()
    out["x"] = np.clip(events["x"] * target[0] // source[0], 0, target[0] - 1)
    out["y"] = np.clip(events["y"] * target[1] // source[1], 0, target[1] - 1)
    return out


class TonicEvents(EventDataset):
    """One split of a real dataset, read by tonic; events in the pipeline's dtype, sensor as in the spec."""

    root: Path  # always known here (resolve_root)

    def __init__(self, name: str, split: str = "train", root: str | Path | None = None,
                 download: bool | None = None) -> None:
        split_parts(split, True)  # a bad split name fails before anything is read
        spec = get_spec(name)
        if spec.tonic_any is None:
            raise ValueError(f"{name} is not a tonic dataset")
        self.spec, self.split, self.root = spec, split, resolve_root(root)
        self._parts = [self._open(p, download) for p in split_parts(split, spec.official_split)]
        part_labels = [np.array([self._label(ds, i) for i in range(len(ds))], dtype=np.int64) for ds in self._parts]
        self._index, self.labels = select_split(part_labels, split, spec.official_split)
        import tonic

        self.version = f"{spec.name}-tonic{tonic.__version__}-split{SPLIT_SEED}-n{len(self.labels)}"

    def _open(self, part: str, download: bool | None):
        spec = self.spec
        extracted = files_present(spec, part, self.root)
        if not extracted and not download_allowed(download):
            raise DatasetMissing(missing_message(spec, part, self.root))
        if spec.name == "cifar10dvs" and importlib.util.find_spec("aedat") is None:
            raise DatasetMissing("CIFAR10-DVS is stored as .aedat4 files, which tonic reads with the 'aedat' "
                                 "package: install it (pip install aedat) and run again")
        if extracted:
            warn_if_partial(spec, part, self.root)
        cls = _tonic_any(spec, extracted)
        kwargs = {"train": part == "train"} if spec.official_split else {}
        try:
            ds = cls(save_to=str(self.root), **kwargs)
        except (OSError, RuntimeError, ValueError, zipfile.BadZipFile, tarfile.TarError) as err:
            # a failed download (no network: URLError is an OSError; bad checksum: RuntimeError) ends here
            raise DatasetMissing(f"{missing_message(spec, part, self.root)} (download failed: "
                                 f"{type(err).__name__}: {err})") from None
        if len(ds) == 0:
            raise DatasetMissing(missing_message(spec, part, self.root))
        if spec.name == "ncaltech101":  # folder names -> class indices
            names = list(spec.class_names)
            found = sorted(set(ds.targets))
            lookup = {n: names.index(n) if n in names else None for n in found}
            if any(v is None for v in lookup.values()):
                lookup = {n: i for i, n in enumerate(found)}
            ds.targets = [lookup[t] for t in ds.targets]
        return ds

    @staticmethod
    def _label(ds, i: int) -> int:
        return int(ds.targets[i])

    def events(self, index: int) -> np.ndarray:
        k, i = self._index[index]
        try:
            raw, _ = self._parts[k][i]
        except (OSError, ValueError, IndexError) as err:  # a damaged or unreadable file: name it
            files = getattr(self._parts[k], "data", None)
            where = files[i] if isinstance(files, list) and i < len(files) else f"sample {i}"
            raise UserError(f"dataset {self.spec.name!r}: cannot read {where}: {err}") from None
        ev = to_event_array(raw)
        if self.spec.name == "ncaltech101":
            ev = resize_events(ev, NCALTECH_SOURCE, self.spec.sensor_size[:2])
        elif self.spec.name in ("dvsgesture", "cifar10dvs"):
            w, h = self.spec.sensor_size[:2]
            ev = ev[(ev["x"] < w) & (ev["y"] < h)]
        return ev
