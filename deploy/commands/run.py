"""`deploy run MODEL.nir --target NAME --dataset NAME|FILE.npz [--split test] [--limit N] --out DIR`

Runs a graph on a target over a dataset split in batches (a progress bar per batch) and writes to
``--out``: ``predictions.npz`` (outputs ``[T, N, n_out]``, predictions, labels and per-layer spike counts
``spike_counts/<node> [T, N]``, see :meth:`neuromoco.deploy.result.RunResult.save`) and ``summary.json``
(accuracy, samples, time, per-layer spike totals, the options used). ``MODEL`` may also be a folder
written by ``deploy export`` (its artefact and model card are used as they are).

``--trace nir|npz`` also records every spiking layer's spikes (and every neuron's membrane voltage, where the target
has the ``record_voltages`` option: ``-o record_voltages=false`` leaves them out) and writes the run as a trace
(``trace.nir``: NIR graph data, read by ``nir.read_data``; or ``trace.npz``, see :mod:`neuromoco.deploy.traces`)
that ``deploy parity --targets trace:OUT/trace.nir`` compares like any target. The trace is written batch by batch
as the run goes (only the batch at hand's records are in memory; per batch the run keeps its outputs and per-layer
counts for ``predictions.npz``), and appears only once complete.

Each batch is one call of the target's runner; for Lava one batch is one Lava run (samples side by side
and one after another, state reset between samples), so a larger ``--batch-size`` starts fewer runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.commands.common import (
    add_sample_arguments,
    add_shared_arguments,
    add_target_flags,
    flag_options,
    load_samples,
    parse_option_items,
    resolve_card,
    run_context,
)
from neuromoco.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from neuromoco.deploy.targets import known_names

    p.add_argument("model", help="the .nir graph, or a folder written by `deploy export`")
    p.add_argument("--target", required=True, help=", ".join(known_names()))
    add_sample_arguments(p, batch_size=64)
    p.add_argument("--out", required=True, help="folder for predictions.npz and summary.json")
    p.add_argument("--trace", choices=["nir", "npz"],
                   help="also record every spiking layer's spikes (and membrane voltages where the target has "
                        "record_voltages; -o record_voltages=false: without) and write the run as OUT/trace.nir (NIR "
                        "graph data) or OUT/trace.npz, for `deploy parity --targets trace:FILE`; written batch by "
                        "batch as the run goes (one batch's records in memory)")
    add_target_flags(p)
    add_shared_arguments(p)


def run(args: argparse.Namespace) -> int:
    """``deploy run``: :func:`neuromoco.deploy.api.execution.execute` with the flags, then its files."""
    from neuromoco.deploy.api.execution import execute
    from neuromoco.deploy.api.model import Model
    from neuromoco.deploy.api.options import declared
    from neuromoco.io import atomic_write_json

    path = Path(args.model)
    if not path.exists():
        raise UserError(f"model not found: {path}")
    card = resolve_card(path, args.card, args.dt, args.dataset)
    values = {**flag_options(args), **parse_option_items(args.option, [args.target])[args.target]}
    if args.trace:
        values["record_spikes"] = "true"
        if "record_voltages" in declared(args.target):
            values = {"record_voltages": "true", **values}
    model = Model.load(path, card)
    out = Path(args.out)
    trace = (out / f"trace.{args.trace}", _trace_info(model, args)) if args.trace else None
    execution, frames, labels = execute(model, args.target, values, run_context(args), lambda: load_samples(card, args),
                                        batch_size=args.batch_size, progress=not args.no_progress, echo=print,
                                        trace=trace, keep_records=False)
    result, options, seconds = execution.result, execution.options, execution.run_seconds
    out.mkdir(parents=True, exist_ok=True)
    result.save(str(out / "predictions.npz"), labels=labels)
    acc = float(np.mean(result.predictions == labels))
    summary = {
        "model": str(args.model), "target": args.target, "options": options.as_dict(),
        "dataset": args.dataset or card.dataset.get("name"), "split": args.split, "samples": len(labels),
        "time_steps": int(frames.shape[1]), "accuracy": acc, "build_seconds": execution.build_seconds,
        "run_seconds": seconds, "samples_per_s": len(labels) / seconds if seconds > 0 else None,
        "spikes_per_sample": {k: float(v.sum() / len(labels)) for k, v in result.spike_counts.items()},
        "card_accuracy": card.accuracy or None,
    }
    atomic_write_json(out / "summary.json", summary)
    written = [out / "predictions.npz", out / "summary.json"]
    if execution.trace is not None:
        written.append(execution.trace)
    print(f"{args.target}: {len(labels)} samples, accuracy {acc:.4f}, {summary['samples_per_s']:.1f} samples/s; "
          f"wrote {', '.join(map(str, written))}")
    return 0


def _trace_info(model: Any, args: argparse.Namespace) -> Any:
    """What the trace states about the run besides its records (the options are added once the target is built)."""
    from neuromoco.deploy.graph import structure
    from neuromoco.deploy.traces import TraceInfo

    card = model.card
    output_node = None if model.graph is None else structure(model.graph).output
    return TraceInfo(target=args.target, model=str(args.model), dataset=args.dataset or card.dataset.get("name"),
                     split=args.split, dt=card.dt, output_node=output_node)
