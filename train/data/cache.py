"""Disk caches: framed samples (so later epochs read no raw events) and converted event streams.

A cache is a folder ``ROOT/cache/<kind>/<key>/`` with one ``.npy`` file per sample (``000123.npy``) and a
``meta.json`` saying what the key stands for; once every sample of a fixed-size cache is there they are
packed into one ``packed.npy`` read through a memory map. The key holds everything the content depends on: dataset,
split, dataset version (seed, generator parameters, tonic version, split seed), and for frames T, the
downsampling factor and the framing version. Files are written atomically, so several DataLoader workers
or processes can fill one cache at once; a half-written file is never read.

Frames are raw event counts, stored as ``uint8``/``uint16`` when they fit (4x / 2x smaller than float32)
and returned as float32.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.io import atomic_write_json


def cache_key(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join(str(p) for p in parts))


class NpyCache:
    """One ``.npy`` file per sample index under ``folder``; packed into one memory-mapped array once full.

    With ``size`` given, the first process that sees all ``size`` samples cached (while filling, or when
    the cache is opened) packs them into ``packed.npy`` ``[size, ...]`` and removes the per-sample files;
    reads then come from that memory map (a slice, no file opened per sample).
    """

    PACKED = "packed.npy"

    def __init__(self, folder: str | Path, meta: dict[str, Any] | None = None, size: int | None = None) -> None:
        self.folder = Path(folder)
        self.meta = meta or {}
        self.size = size
        self._meta_written = False
        self._packed: np.ndarray | None = None
        self._seen = np.zeros(size or 0, dtype=bool)
        if size and self._open_packed() is None and self.count() >= size:
            self.pack()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the memory map themselves
        state = dict(self.__dict__)
        state["_packed"] = None
        return state

    def path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.npy"

    def _open_packed(self) -> np.ndarray | None:
        if self._packed is None and self.size:
            try:
                packed = np.load(self.folder / self.PACKED, mmap_mode="r", allow_pickle=False)
            except (FileNotFoundError, ValueError, OSError):
                return None
            if packed.shape[0] == self.size:
                self._packed = packed
        return self._packed

    def get(self, index: int) -> np.ndarray | None:
        packed = self._open_packed()
        if packed is not None:
            return np.array(packed[index])
        try:
            array = np.load(self.path(index), allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            return None  # absent (or damaged: rebuilt and overwritten)
        self._note(index)
        return array

    def put(self, index: int, array: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self._meta_written:
            if not (self.folder / "meta.json").exists():
                atomic_write_json(self.folder / "meta.json", self.meta)
            self._meta_written = True
        _atomic_save(self.path(index), array)
        self._note(index)

    def _note(self, index: int) -> None:
        if self.size and not self._seen[index]:
            self._seen[index] = True
            if self._seen.all():
                self.pack()

    def count(self) -> int:
        """Samples cached (all of them once packed)."""
        if self._open_packed() is not None:
            return int(self.size or 0)
        return sum(1 for _ in self.folder.glob("[0-9]*.npy")) if self.folder.is_dir() else 0

    def pack(self, arrays: list[np.ndarray] | None = None) -> bool:
        """Pack the per-sample files (or ``arrays``, one per sample) into ``packed.npy``; False (nothing
        changed) when a sample is missing."""
        if not self.size:
            return False
        if arrays is None:
            arrays = []
            for i in range(self.size):
                try:
                    arrays.append(np.load(self.path(i), allow_pickle=False))
                except (FileNotFoundError, ValueError, OSError, EOFError):
                    return False
        if len(arrays) != self.size:
            raise ValueError(f"pack needs {self.size} arrays, got {len(arrays)}")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "meta.json").exists():
            atomic_write_json(self.folder / "meta.json", self.meta)
        dtype = np.result_type(*{a.dtype for a in arrays})
        _atomic_save(self.folder / self.PACKED, np.stack(arrays).astype(dtype, copy=False))
        for i in range(self.size):
            self.path(i).unlink(missing_ok=True)
        return self._open_packed() is not None

    def __len__(self) -> int:
        return self.count()


def _atomic_save(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def compact_counts(frames: np.ndarray) -> np.ndarray:
    """Event counts in the smallest unsigned type that holds them exactly (float32 if none does)."""
    top = float(frames.max()) if frames.size else 0.0
    if top <= np.iinfo(np.uint8).max:
        return frames.astype(np.uint8)
    if top <= np.iinfo(np.uint16).max:
        return frames.astype(np.uint16)
    return frames.astype(np.float32)
