"""What a job knows beside the model, samples and target options: dataset, calibration frames, progress."""

from __future__ import annotations

from typing import Any

import numpy as np


def run_context(dataset: Any = None, root: str | None = None, calibration: Any = None, progress: bool = False) -> Any:
    """The :class:`~neuromoco.deploy.targets.options.RunContext` of a job.

    ``calibration``: the frames quantizing targets (onnx-int8) calibrate on, an array ``[N, T, ...]`` or a frames
    ``.npz`` path (default: the dataset's train split). ``dataset`` is passed on only when it is a name or path.
    """
    from neuromoco.deploy.datasets import load_npz_frames
    from neuromoco.deploy.targets.options import RunContext

    if isinstance(calibration, str) or hasattr(calibration, "__fspath__"):
        calibration, _ = load_npz_frames(calibration)
    elif calibration is not None:
        calibration = np.asarray(calibration, dtype=np.float32)
    name = str(dataset) if isinstance(dataset, str) or hasattr(dataset, "__fspath__") else None
    return RunContext(dataset=name, root=root, calibration=calibration, progress=progress)
