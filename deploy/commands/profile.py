"""`deploy profile MODEL.nir --target NAME --dataset NAME [--energy-model loihi,45nm] --out DIR`

Runs the graph on a target over a dataset split and, from the spikes of that run, counts synaptic
operations per layer (each spike times its exact fan-out; the input events feed the first layer), neuron
updates and spikes per inference, and estimates the energy per inference under named energy models
(``deploy/energy_models.json``; extend it with ``--energy-models FILE``), for the SNN and for the same
network run as an ANN. It also reports NeuroBench's metrics (footprint, connection sparsity, activation
sparsity, synaptic operations as Dense / Effective_MACs / Effective_ACs, membrane updates) and a Loihi 2
core-mapping estimate from the Lava plan (cores needed, fit, the most loaded core per time step, time per
step and energy per inference with that bound; limits in ``deploy/loihi2_cores.json``). Writes
``energy.json``, ``energy.md`` and the plots ``energy.png``, ``layers.png`` and ``cores.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuromoco.deploy.commands.common import (
    add_sample_arguments,
    add_shared_arguments,
    load_model,
    parse_option_items,
    run_context,
)
from neuromoco.deploy.metrics.energy_models import DEFAULT_MODELS
from neuromoco.errors import UserError

REPORTS = (
    "It reports, per inference: synaptic operations (each spike times its exact fan-out), neuron updates, spikes, "
    "input events, MACs of the same network as an ANN, and energy under each --energy-model; NeuroBench's "
    "metrics with NeuroBench's names: footprint (bytes of weights, biases, neuron constants and state at the "
    "target's precision), connection sparsity, activation sparsity (global and per layer), synaptic operations "
    "(Dense, Effective_MACs, Effective_ACs) and membrane updates; and a Loihi 2 core-mapping estimate (a model: "
    "cores needed under per-core neuron, synaptic-memory and fan-in limits, whether it fits one chip, the most "
    "loaded core per time step, time per step and energy per inference with that bound). See docs/reports.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = f"{p.description}. {REPORTS}" if p.description else REPORTS
    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--target", default="reference",
                   help="target whose spikes are counted (default reference; e.g. lava-fixed, onnx-int8)")
    add_sample_arguments(p, batch_size=32)
    p.add_argument("--device", default="cpu", help="device of the reference executor (default cpu)")
    p.add_argument("--energy-model", default=",".join(DEFAULT_MODELS),
                   help=f"comma-separated energy models, or 'all' (default {','.join(DEFAULT_MODELS)})")
    p.add_argument("--energy-models", action="append", default=[], metavar="FILE",
                   help="JSON file of further energy models ({\"models\": {NAME: {\"energy_pj\": {...}, "
                        "\"source\": ...}}}); may be repeated")
    p.add_argument("--no-core-map", action="store_true",
                   help="skip the Loihi 2 core-mapping estimate (it compiles the graph to a Lava plan)")
    p.add_argument("--out", required=True, help="folder for energy.json, energy.md and the plots")
    add_shared_arguments(p)


def run(args: argparse.Namespace) -> int:
    """``deploy profile``: :func:`neuromoco.deploy.api.profiling.measure_energy` with the flags; writes
    energy.json, energy.md and the plots, prints the summary."""
    from neuromoco.deploy.api.profiling import energy_model_table, measure_energy
    from neuromoco.deploy.targets import REFERENCE, TARGETS

    if args.target not in TARGETS:
        raise UserError(f"unknown target {args.target!r}; known: {', '.join(TARGETS)}")
    models = energy_model_table(args.energy_model, args.energy_models)
    values = {**parse_option_items(args.option, [args.target])[args.target], "record_spikes": "true"}
    if args.target == REFERENCE:
        values["device"] = args.device
    model, frames, labels = load_model(args)
    report = measure_energy(model, args.target, values, frames, labels, models, run_context(args),
                            core_map=not args.no_core_map, batch_size=args.batch_size,
                            progress=not args.no_progress, echo=print)
    report.data.update(model=str(args.model), dataset=args.dataset or model.card.dataset.get("name", ""),
                       split=args.split)
    out = Path(args.out)
    written = report.write(out)
    print(report.table())
    print(f"wrote {out / 'energy.json'} and {written}")
    return 0
