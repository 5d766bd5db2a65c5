"""What the Python API's training calls share: their keyword arguments as the engine's typed options (the
same dataclasses the command line builds), and reading a finished run back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from neuromoco.train.engine.config import DataOptions, OptimOptions, RunOptions

#: a path the API's calls take: a string or any ``os.PathLike``
PathLike = str | os.PathLike

#: the runtime options every training call takes, with the command line's defaults (``--device`` ...)
RUNTIME_DEFAULTS: dict[str, Any] = {"device": "auto", "amp": "auto", "seed": 0, "workers": None, "progress": True,
                                    "log_every": 10, "lif_impl": "auto"}


def data_options(data: PathLike | None, *, root: PathLike | None, time_steps: int | None, downsample: int | None,
                 max_samples: int | None, sensor_size: list[int] | None, time_unit: str | None) -> DataOptions:
    """``--dataset`` ... ``--max-samples`` from the call's arguments (a path as its string, as the flag holds)."""
    return DataOptions(dataset=None if data is None else os.fspath(data),
                       root=None if root is None else os.fspath(root), time_steps=time_steps, downsample=downsample,
                       max_samples=max_samples, sensor_size=None if sensor_size is None else list(sensor_size),
                       time_unit=time_unit)


def optim_options(*, epochs: int, batch_size: int, lr: float, optimizer: str = "adamw", weight_decay: float = 1e-4,
                  warmup_epochs: float = 0.0, grad_clip: float = 0.0) -> OptimOptions:
    """``--epochs`` ... ``--grad-clip`` (defaults: the flags')."""
    return OptimOptions(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), optimizer=optimizer,
                        weight_decay=float(weight_decay), warmup_epochs=float(warmup_epochs),
                        grad_clip=float(grad_clip))


def run_options(command: str, out: PathLike, *, resume: bool | PathLike, overwrite: bool, argv: dict[str, Any],
                **runtime: Any) -> RunOptions:
    """``--out`` ... ``--no-progress``: ``resume=True`` is ``--resume`` (``out/last.pt``), a path ``--resume
    CKPT``; ``runtime``: :data:`RUNTIME_DEFAULTS`' keys. ``argv``: what ``config.json`` records as the
    call's arguments."""
    unknown = set(runtime) - set(RUNTIME_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    rt = {**RUNTIME_DEFAULTS, **runtime}
    res = None if resume is False else "auto" if resume is True else os.fspath(resume)
    return RunOptions(command=command, out=Path(out), resume=res, overwrite=bool(overwrite),
                      log_every=int(rt["log_every"]), device=str(rt["device"]), amp=str(rt["amp"]),
                      seed=int(rt["seed"]), workers=rt["workers"], progress=bool(rt["progress"]),
                      argv={"api": f"neuromoco.train.api.{command}", **_plain(argv), **_plain(rt)},
                      lif_impl=str(rt["lif_impl"]))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as config.json can hold them (paths as strings; others by their ``repr``)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        elif isinstance(v, (list, tuple)):
            v = list(v)
        elif not isinstance(v, (str, int, float, bool, type(None))):
            v = repr(v)
        out[k] = v
    return out


def step_lines(run_dir: PathLike, kind: str = "step") -> list[dict[str, Any]]:
    """``metrics.jsonl``'s lines of ``kind`` in ``run_dir``: "step" (every ``log_every`` optimiser steps, with
    the loss) or "epoch"."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [r for r in lines if r.get("kind") == kind]
