"""Run a model on a target over samples, in batches: the job behind ``deploy run`` and :func:`run`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neuromoco.deploy.api.model import Model, as_model
from neuromoco.deploy.result import RunResult

if TYPE_CHECKING:
    from neuromoco.deploy.traces import TraceInfo


@dataclass
class Execution:
    """One run: its result, the options it ran with, how long building and running took (seconds; the run without
    writing its trace), and the trace it wrote (or None)."""

    result: RunResult
    options: Any
    build_seconds: float
    run_seconds: float
    trace: Path | None = None


def build_runner(target: Any, options: Any, context: Any, model: Model) -> Any:
    """A runner of ``target`` for ``model``: an exported folder is opened as it is, a graph is built."""
    if model.graph is None:
        return target.load(model.path, options, context)
    return target.runner(model.graph, model.card, options, context)


def counts_only(result: RunResult) -> RunResult:
    """``result`` without its per-neuron records (spikes, voltages): its outputs and per-layer counts, small."""
    return RunResult(result.output, result.spike_counts)


def execute(model: Model, target: str, values: dict[str, Any], context: Any, samples: Callable[[], tuple],
            *, batch_size: int = 64, progress: bool = False, echo: Callable[[str], None] | None = None,
            trace: tuple[str | Path, TraceInfo] | None = None,
            keep_records: bool = True) -> tuple[Execution, np.ndarray, Any]:
    """Build ``target`` with ``values`` (over the card's options) and run it over ``samples()`` (read after the
    build, so a target that cannot build fails before the data is read); returns the run, frames and labels.

    ``trace``: ``(path, info)``: each batch is also appended to a trace at ``path`` as it comes
    (:class:`~neuromoco.deploy.traces.TraceWriter`: records, labels, frame keys; ``info`` with the options the
    run used), so no more than one batch's records is ever in memory for it; a run that fails leaves no file.
    ``keep_records=False``: the returned result keeps outputs and per-layer counts only (what ``deploy run``
    writes), not the spikes and voltages of every batch.
    """
    from neuromoco.deploy.api.options import target_options, with_card_options
    from neuromoco.deploy.api.samples import progress_bar
    from neuromoco.deploy.traces import TraceWriter

    values = with_card_options(model.card, {target: values}, echo)[target]
    tgt, options = target_options(target, values)
    t_build = time.perf_counter()
    runner = build_runner(tgt, options, context, model)
    t_build = time.perf_counter() - t_build
    frames, labels = samples()
    writer = None if trace is None else TraceWriter(trace[0], replace(trace[1], options=options.as_dict()))
    try:
        parts, seconds = _run_batches(runner, frames, labels, batch_size, writer, keep_records,
                                      progress_bar(len(frames), target, progress, [target]))
        written = None if writer is None else writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return Execution(RunResult.concatenate(parts), options, t_build, seconds, written), frames, labels


def _run_batches(runner: Any, frames: np.ndarray, labels: Any, batch_size: int, writer: Any, keep_records: bool,
                 bar: Any) -> tuple[list[RunResult], float]:
    """Each batch through ``runner`` (and appended to ``writer``); the results kept (without per-neuron records
    unless ``keep_records``) and the seconds spent running (not writing)."""
    from neuromoco.deploy.api.samples import batches
    from neuromoco.deploy.traces import sample_key

    parts: list[RunResult] = []
    done = correct = 0
    writing = 0.0
    t0 = time.perf_counter()
    for batch, lab in batches(frames, labels, batch_size):
        result = runner.run(batch)
        if writer is not None:
            t_write = time.perf_counter()
            writer.append(result, lab, [sample_key(batch[:, b]) for b in range(batch.shape[1])])
            writing += time.perf_counter() - t_write
        parts.append(result if keep_records else counts_only(result))
        del result
        done += batch.shape[1]
        if bar is not None:
            bar.update(batch.shape[1])
            if lab is not None:
                correct += int(np.sum(parts[-1].predictions == lab))
                bar.set_postfix(acc=f"{correct / done:.3f}")
    if bar is not None:
        bar.close()
    return parts, time.perf_counter() - t0 - writing


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
