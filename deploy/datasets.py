"""Frames for ``deploy run`` / ``parity`` / ``profile``, without importing ``train/``.

Two sources: a pre-framed ``.npz`` file (``frames [N,T,C,H,W]``, ``labels [N]``; any tool can write one),
or a dataset provider registered under the entry-point group ``neuromoco.datasets``. A provider is a
function ``load_frames(dataset: dict, split: str, root: str | None, limit: int | None)`` returning
``(frames, labels)`` or raising ``LookupError`` when the dataset is not its own. The project's own
provider (``neuromoco.train.data.provider``) is one such plugin; deploy finds it by name, never by import.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.errors import UserError

GROUP = "neuromoco.datasets"


def load_npz_frames(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames and labels from an ``.npz`` file with arrays ``frames`` ``[N, T, *input_shape]`` (``[N, T, C, H, W]``
    for a convolutional graph, ``[N, T, F]`` for a flat one) and ``labels`` ``[N]``."""
    try:
        with np.load(path) as z:
            frames, labels = z["frames"], z["labels"]
    except FileNotFoundError:
        raise UserError(f"frames file not found: {path}") from None
    except (KeyError, ValueError, OSError) as err:
        raise UserError(f"{path} is not a frames file with 'frames' and 'labels' arrays: {err}") from None
    if frames.ndim < 3:
        raise UserError(f"{path}: frames must be [N, T, *input_shape], got shape {list(frames.shape)}")
    if labels.shape != frames.shape[:1]:
        raise UserError(f"{path}: {len(frames)} samples of frames but labels of shape {list(labels.shape)}")
    frames = frames[:limit].astype(np.float32)
    check_finite_frames(frames, str(path))
    return frames, labels[:limit].astype(np.int64)


def check_finite_frames(frames: np.ndarray, where: str) -> None:
    """A one-line error naming ``where`` and the first sample (and step) holding NaN or infinity."""
    bad = ~np.isfinite(frames)
    if not bad.any():
        return
    per_sample = bad.reshape(len(frames), -1).any(1)
    i = int(np.argmax(per_sample))
    t = int(np.argmax(bad[i].reshape(bad.shape[1], -1).any(1))) if frames.ndim > 1 else 0
    what = "NaN" if np.isnan(frames[i]).any() else "infinite"
    raise UserError(f"{where}: frames hold non-finite values ({what}) in {int(per_sample.sum())} of "
                    f"{len(frames)} samples, the first in sample {i} (time step {t})")


def load_frames(card: ModelCard, dataset: str | None = None, split: str = "test",
                root: str | None = None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[N, T, C, H, W]`` and labels for the graph's dataset (or ``dataset``, a name or ``.npz``).

    The dataset's preprocessing (time steps, downsampling) comes from the model card, so the target sees
    exactly what the model was trained on.
    """
    if dataset and dataset.endswith(".npz"):
        frames, labels = load_npz_frames(dataset, limit)
    else:
        spec: dict[str, Any] = dict(card.dataset)
        spec.setdefault("time_steps", card.time_steps)
        if dataset:
            spec["name"] = dataset
        if not spec.get("name"):
            raise UserError("no dataset: name one with --dataset (or a frames .npz file); the model card names none")
        frames, labels = _from_providers(spec, split, root, limit)
        check_finite_frames(frames, f"dataset {spec['name']!r} ({split} split)")
    expected = [card.time_steps, *card.input_shape]
    if list(frames.shape[1:]) != expected:
        source = dataset if dataset and dataset.endswith(".npz") else f"dataset {spec['name']!r}"
        raise UserError(f"the frames of {source} are [T, *input_shape] = {list(frames.shape[1:])} but "
                        f"{card.source} expects {expected}")
    return frames, labels


def _from_providers(spec: dict[str, Any], split: str, root: str | None,
                    limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    tried = []
    for ep in entry_points(group=GROUP):
        tried.append(ep.name)
        try:
            provider = ep.load()
        except ImportError as err:  # a provider whose package is broken or gone: say so, try the next
            tried[-1] += f" (unavailable: {err})"
            continue
        try:
            frames, labels = provider(spec, split, root, limit)
        except LookupError:
            continue
        return np.asarray(frames, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    raise UserError(f"no dataset provider knows {spec['name']!r} (providers: {', '.join(tried) or 'none'}); "
                    "pass a frames .npz file instead")
