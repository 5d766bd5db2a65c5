"""The project's dataset provider for ``deploy`` (entry point ``neuromoco.datasets`` = ``builtin``).

``deploy`` never imports ``train``; it finds this function through the entry point and calls it with the
dataset part of a model card. Frames are exactly what training fed the model (same framing, T,
downsampling), read from the frame cache when there.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def load_frames(spec: dict[str, Any], split: str = "test", root: str | None = None,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [N, T, C, H, W] float32, labels [N] int64)`` for ``spec`` = ``{"name", "time_steps",
    "downsample"?}`` (also read from ``spec["preprocessing"]``); ``LookupError`` for a name not known here."""
    from neuromoco.train.data.datasets import get_dataset
    from neuromoco.train.data.registry import DATASETS

    name = str(spec.get("name", "")).lower()
    if name not in DATASETS:
        raise LookupError(name)
    pre = spec.get("preprocessing") or {}
    time_steps = int(spec.get("time_steps", pre.get("time_steps", 16)))
    downsample = int(spec.get("downsample", pre.get("downsample", 1)) or 1)
    ds = get_dataset(name, split, root, time_steps=time_steps, downsample=downsample)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if n == len(ds):
        ds.build_cache()  # the whole split: frame it once into the packed cache
    frames = np.zeros((n, *ds.frame_shape), dtype=np.float32)
    for i in range(n):
        frames[i] = ds.frames(i)
    return frames, np.asarray(ds.labels[:n], dtype=np.int64)
