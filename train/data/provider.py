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
    """``(frames [N, T, C, H, W] float32, labels [N] int64)`` for ``spec`` = the card's ``dataset`` recipe
    (``{"name", "time_steps", "downsample"?, "kind"?, "sensor_size"?, "sensor_size_inferred"?, "time_unit"?}``;
    T and downsampling also read from ``spec["preprocessing"]``): a named dataset, ``tonic:ClassName``, or a
    recordings folder (the name is its path; sensor and time unit as recorded, an inferred sensor size said so
    in the message of events outside it; with a ``generated`` entry, a folder the project
    generates: :func:`neuromoco.train.data.digits128.folder_for`). ``LookupError`` for a name not known here."""
    from neuromoco.train.data.datasets import get_dataset
    from neuromoco.train.data.registry import DATASETS, is_folder_name

    name = str(spec.get("name", ""))
    if spec.get("generated"):  # a folder the project generates (digits128): the card's, else made under ROOT
        from neuromoco.train.data.digits128 import folder_for

        name = str(folder_for(spec, root))
    own: dict[str, Any] = {}
    if is_folder_name(name):  # a folder that is gone: the folder reader's one-line UserError
        sensor = spec.get("sensor_size") or None
        own = {"sensor_size": [int(v) for v in sensor] if sensor else None, "time_unit": spec.get("time_unit"),
               "sensor_inferred": bool(sensor and spec.get("sensor_size_inferred"))}
    elif not name.startswith("tonic:"):
        name = name.lower()
        if name not in DATASETS:
            raise LookupError(name)
    pre = spec.get("preprocessing") or {}
    time_steps = int(spec.get("time_steps", pre.get("time_steps", 16)))
    downsample = int(spec.get("downsample", pre.get("downsample", 1)) or 1)
    ds = get_dataset(name, split, root, time_steps=time_steps, downsample=downsample, **own)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    if n == len(ds):
        ds.build_cache()  # the whole split: frame it once into the packed cache
    frames = np.zeros((n, *ds.frame_shape), dtype=np.float32)
    for i in range(n):
        frames[i] = ds.frames(i)
    return frames, np.asarray(ds.labels[:n], dtype=np.int64)
