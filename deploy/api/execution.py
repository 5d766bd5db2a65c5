"""Run a model on a target over samples, in batches: the job behind ``deploy run`` and :func:`run`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.api.model import Model, as_model
from neuromoco.deploy.result import RunResult


@dataclass
class Execution:
    """One run: its result, the options it ran with, and how long building and running took (seconds)."""

    result: RunResult
    options: Any
    build_seconds: float
    run_seconds: float


def build_runner(target: Any, options: Any, context: Any, model: Model) -> Any:
    """A runner of ``target`` for ``model``: an exported folder is opened as it is, a graph is built."""
    if model.graph is None:
        return target.load(model.path, options, context)
    return target.runner(model.graph, model.card, options, context)


def execute(model: Model, target: str, values: dict[str, Any], context: Any, samples: Callable[[], tuple],
            *, batch_size: int = 64, progress: bool = False,
            echo: Callable[[str], None] | None = None) -> tuple[Execution, np.ndarray, Any]:
    """Build ``target`` with ``values`` (over the card's options) and run it over ``samples()`` (read after the
    build, so a target that cannot build fails before the data is read); returns the run, frames and labels."""
    from neuromoco.deploy.api.options import target_options, with_card_options
    from neuromoco.deploy.api.samples import batches, progress_bar

    values = with_card_options(model.card, {target: values}, echo)[target]
    tgt, options = target_options(target, values)
    t_build = time.perf_counter()
    runner = build_runner(tgt, options, context, model)
    t_build = time.perf_counter() - t_build
    frames, labels = samples()
    parts: list[RunResult] = []
    t0 = time.perf_counter()
    bar = progress_bar(len(frames), target, progress, [target])
    for batch, _ in batches(frames, labels, batch_size):
        parts.append(runner.run(batch))
        if bar is not None:
            bar.update(batch.shape[1])
            if labels is not None:
                done = sum(p.output.shape[1] for p in parts)
                predicted = np.concatenate([p.predictions for p in parts])
                bar.set_postfix(acc=f"{np.mean(predicted == labels[:done]):.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    return Execution(RunResult.concatenate(parts), options, t_build, seconds), frames, labels


def run(model: Model | str | Path, frames: Any = None, target: str = "reference", options: Any = None, *,
        labels: Any = None, split: str = "test", root: str | None = None, limit: int | None = None,
        batch_size: int = 64, calibration: Any = None, progress: bool = False, **option_values: Any) -> RunResult:
    """Run ``model`` on ``target`` over ``frames`` and return its outputs and spike counts.

    ``frames``: an array ``[N, T, *input_shape]`` (samples first, as in a frames ``.npz``), a frames ``.npz`` path
    or a dataset name, or None for the model card's dataset (``split``, ``root`` and ``limit`` choose from a
    dataset). ``options``: the target's typed options (e.g. ``OnnxOptions(quantize="int8")``); keyword arguments
    set single options over them (``quantize="int8"``), checked as ``-o`` checks them. Each batch of
    ``batch_size`` samples is one runner call (for Lava one Lava run). ``calibration``: frames (array or
    ``.npz``) a quantizing target calibrates on. The model card's ``--qat`` options apply unless overridden.
    Same job as ``deploy run`` (without the files it writes).
    """
    from neuromoco.deploy.api.context import run_context
    from neuromoco.deploy.api.options import option_values as values_of
    from neuromoco.deploy.api.samples import resolve_samples

    values = values_of(target, options, option_values)
    model = as_model(model)

    def samples() -> tuple:
        return resolve_samples(model.card, frames, labels, split=split, root=root, limit=limit)

    context = run_context(frames, root, calibration, progress)
    execution, _, _ = execute(model, target, values, context, samples, batch_size=batch_size, progress=progress)
    return execution.result
