"""Atomic writes: a report, a checkpoint or an artefact is either whole on disk or not there at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` (its return value is ignored) for a temporary file beside ``path``, then rename it
    over ``path``."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        write(str(tmp))
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def temporary_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """An empty temporary file in ``path``'s folder (made if missing), for a writer that fills it over time and then
    :func:`publish` es it; the same folder, so the rename is atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename the finished temporary file ``tmp`` over ``path``, with the user's umask (mkstemp makes 0600 files)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            # the keys are array names; mypy cannot know that none is savez_compressed's allow_pickle
            np.savez_compressed(f, **cast("dict[str, Any]", arrays))

    return atomic_write(path, write)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
