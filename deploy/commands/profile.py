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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nir
    import numpy as np

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.metrics.activity import Activity
    from neuromoco.deploy.metrics.core_map import CoreMapping
    from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter
    from neuromoco.deploy.metrics.walk import Walk
    from neuromoco.deploy.targets.base import Runner

from neuromoco.deploy.commands.common import (
    add_sample_arguments,
    add_shared_arguments,
    batches,
    load_model,
    parse_option_items,
    progress_bar,
    run_context,
    target_options,
    with_card_options,
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
    from neuromoco.deploy.metrics.energy_models import energy, load_energy_models, select_models
    from neuromoco.deploy.metrics.neurobench import neurobench_metrics
    from neuromoco.deploy.metrics.synops import profile
    from neuromoco.deploy.metrics.walk import walk
    from neuromoco.deploy.parity import parse_names
    from neuromoco.deploy.report import write_energy_report
    from neuromoco.deploy.targets import REFERENCE, TARGETS
    from neuromoco.io import atomic_write_json

    if args.target not in TARGETS:
        raise UserError(f"unknown target {args.target!r}; known: {', '.join(TARGETS)}")
    table = load_energy_models(args.energy_models)
    names = list(table) if args.energy_model.strip() == "all" else parse_names(args.energy_model)
    models = select_models(table, names)
    values = {**parse_option_items(args.option, [args.target])[args.target], "record_spikes": "true"}
    if args.target == REFERENCE:
        values["device"] = args.device
    graph, card, frames, labels = load_model(args)
    target, options = target_options(args.target, with_card_options(card, {args.target: values})[args.target])
    try:
        runner = target.runner(graph, card, options, run_context(args))
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any build failure becomes one clear line
        raise UserError(f"target {args.target} could not be built: {type(err).__name__}: {err}") from None

    graph_walk = walk(graph, card.input_shape)  # one walk of the graph for the energy profile and NeuroBench
    activity, counter, mapping, correct = _measure(args, graph, card, runner, frames, labels, graph_walk)
    prof = profile(graph, activity, card.input_shape, graph_walk)
    data = {
        "model": str(args.model), "target": args.target, "options": options.as_dict(),
        "dataset": args.dataset or card.dataset.get("name", ""), "split": args.split,
        "accuracy": correct / len(frames), "profile": prof, "energy_pj": energy(prof, models),
        "energy_models": models,
        "neurobench": neurobench_metrics(graph, counter, args.target, options.as_dict()),
        "loihi2_map": None if mapping is None else mapping.result(),
    }
    out = Path(args.out)
    atomic_write_json(out / "energy.json", data)
    report = write_energy_report(out, data)
    _print_summary(args.target, data)
    print(f"wrote {out / 'energy.json'} and {report}")
    return 0


def _measure(args: argparse.Namespace, graph: nir.NIRGraph, card: ModelCard, runner: Runner, frames: np.ndarray,
             labels: np.ndarray, graph_walk: Walk) -> tuple[Activity, NeuroBenchCounter, CoreMapping | None, int]:
    """Run every batch once, feeding the activity, NeuroBench and core-map counters; and count correct answers."""
    from neuromoco.deploy.metrics.activity import Activity
    from neuromoco.deploy.metrics.core_map import CoreMapping
    from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter

    activity = Activity()
    counter = NeuroBenchCounter(graph, card.input_shape, graph_walk)
    mapping = None if args.no_core_map else CoreMapping.build(graph, card)
    correct = 0
    bar = progress_bar(len(frames), f"profile ({args.target})", not args.no_progress, [args.target])
    for fr, lab in batches(frames, labels, args.batch_size):
        result = runner.run(fr)
        activity.update(result, fr)
        counter.update(result, fr)
        if mapping is not None:
            mapping.update(result, fr)
        correct += int((result.predictions == lab).sum())
        if bar is not None:
            bar.update(len(lab))
    if bar is not None:
        bar.close()
    return activity, counter, mapping, correct


def _print_summary(target: str, data: dict[str, Any]) -> None:
    """The per-inference figures, energies, NeuroBench metrics and core-map verdict, one line each."""
    t = data["profile"]["per_inference"]
    print(f"{target}: per inference {t['synops']:.4g} synaptic ops, {t['neuron_updates']:.4g} neuron updates, "
          f"{t['spikes']:.4g} spikes ({t['input_events']:.4g} input events); accuracy {data['accuracy']:.4f}")
    for name, e in data["energy_pj"].items():
        ann = "" if e["ann_pj"] is None else f", ANN {e['ann_pj'] * 1e-6:.4g} uJ (ANN/SNN {e['ann_over_snn']:.3g})"
        print(f"  {name}: SNN {e['snn_pj'] * 1e-6:.4g} uJ per inference{ann}")
    nb = data["neurobench"]
    so = nb["synaptic_operations"]
    print(f"  NeuroBench: footprint {nb['footprint']} B, connection sparsity {nb['connection_sparsity']:.4f}, "
          f"activation sparsity {nb['activation_sparsity']:.4f}, synaptic operations Dense {so['Dense']:.4g} / "
          f"Effective_MACs {so['Effective_MACs']:.4g} / Effective_ACs {so['Effective_ACs']:.4g}, "
          f"membrane updates {nb['membrane_updates']:.4g}")
    m = data["loihi2_map"]
    if m is not None and m.get("available", True):
        fit = "fits on one chip" if m["fits"] else "does NOT fit on one chip: " + "; ".join(m["problems"])
        step = m.get("load", {}).get("time_per_step_s", {}).get("mean")
        print(f"  Loihi 2 estimate (a model): {m['cores_needed']} cores "
              f"({m['expanded']['cores_needed']} without weight sharing), {fit}"
              + ("" if step is None else f"; {step * 1e6:.4g} us per step (most loaded core)"))
    elif m is not None:
        print(f"  Loihi 2 estimate unavailable: {m['reason']}")
