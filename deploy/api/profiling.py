"""Synaptic operations, NeuroBench metrics, a Loihi 2 core map and energy per inference from one run: the job
behind ``deploy profile`` and :func:`profile`.

The counts come from the spikes of a real run on the chosen target (each spike times its exact fan-out; the input
events feed the first layer), so a quantized target is profiled with its own activity, not the float model's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromoco.deploy.api.model import Model, as_model
from neuromoco.errors import UserError

if TYPE_CHECKING:
    import nir
    import numpy as np

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.metrics.activity import Activity
    from neuromoco.deploy.metrics.core_map import CoreMapping
    from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter
    from neuromoco.deploy.metrics.walk import Walk
    from neuromoco.deploy.targets.base import Runner


def energy_model_table(names: str | Sequence[str] | None = None,
                       files: Sequence[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """The energy models named (comma-separated or a list; ``all``; default the standard ones) from the shipped
    table and ``files`` (JSON ``{"models": {NAME: {"energy_pj": {...}, "source": ...}}}``)."""
    from neuromoco.deploy.metrics.energy_models import DEFAULT_MODELS, load_energy_models, select_models
    from neuromoco.deploy.parity import parse_names

    table = load_energy_models([str(f) for f in files])
    if names is None:
        chosen = list(DEFAULT_MODELS)
    elif isinstance(names, str) and names.strip() == "all":
        chosen = list(table)
    else:
        chosen = parse_names(names)
    return select_models(table, chosen)


@dataclass
class EnergyReport:
    """The outcome of a profile: ``data`` is the content of ``energy.json`` (per-inference counts, energy per
    model, NeuroBench metrics, the Loihi 2 core-map estimate)."""

    data: dict[str, Any]

    @property
    def energy_pj(self) -> dict[str, dict[str, Any]]:
        """Per energy model: ``snn_pj`` (and ``ann_pj``, ``ann_over_snn``) per inference."""
        return self.data["energy_pj"]

    @property
    def per_inference(self) -> dict[str, Any]:
        """Synaptic operations, neuron updates, spikes and input events per inference."""
        return self.data["profile"]["per_inference"]

    def table(self) -> str:
        """The per-inference figures, energies, NeuroBench metrics and core-map verdict: what ``deploy profile``
        prints."""
        return "\n".join(_summary_lines(self.data["target"], self.data))

    def to_json(self) -> str:
        """The ``energy.json`` text."""
        from neuromoco.io import _json_default

        return json.dumps(self.data, indent=2, sort_keys=False, default=_json_default) + "\n"

    def write(self, out_dir: str | Path) -> Path:
        """Write ``energy.json``, ``energy.md`` and its plots to ``out_dir``; returns ``energy.md``'s path."""
        from neuromoco.deploy.report import write_energy_report
        from neuromoco.io import atomic_write_json

        out = Path(out_dir)
        atomic_write_json(out / "energy.json", self.data)
        return write_energy_report(out, self.data)

    def __repr__(self) -> str:
        t = self.per_inference
        return f"EnergyReport({self.data['target']}: {t['synops']:.4g} synaptic ops per inference)"


def measure_energy(model: Model, target: str, values: dict[str, Any], frames: np.ndarray, labels: np.ndarray | None,
                   models: dict[str, dict[str, Any]], context: Any, *, core_map: bool = True, batch_size: int = 32,
                   progress: bool = False, echo: Callable[[str], None] | None = None) -> EnergyReport:
    """Run ``target`` once over ``frames`` and count everything the report holds (``values``: the target's
    options, spike records on)."""
    from neuromoco.deploy.api.options import target_options, with_card_options
    from neuromoco.deploy.metrics.energy_models import energy
    from neuromoco.deploy.metrics.neurobench import neurobench_metrics
    from neuromoco.deploy.metrics.synops import profile as count_profile
    from neuromoco.deploy.metrics.walk import walk

    graph, card = model.require_graph("profile"), model.card
    tgt, options = target_options(target, with_card_options(card, {target: values}, echo)[target])
    try:
        runner = tgt.runner(graph, card, options, context)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any build failure becomes one clear line
        raise UserError(f"target {target} could not be built: {type(err).__name__}: {err}") from None
    graph_walk = walk(graph, card.input_shape)  # one walk of the graph for the energy profile and NeuroBench
    activity, counter, mapping, correct = _measure(target, graph, card, runner, frames, labels, graph_walk,
                                                   core_map, batch_size, progress)
    prof = count_profile(graph, activity, card.input_shape, graph_walk)
    data = {
        "model": str(model.path), "target": target, "options": options.as_dict(), "dataset": "", "split": "",
        "accuracy": None if labels is None else correct / len(frames), "profile": prof,
        "energy_pj": energy(prof, models), "energy_models": models,
        "neurobench": neurobench_metrics(graph, counter, target, options.as_dict()),
        "loihi2_map": None if mapping is None else mapping.result(),
    }
    return EnergyReport(data)


def profile(model: Model | str | Path, frames: Any = None, target: str = "reference", options: Any = None, *,
            labels: Any = None, split: str = "test", root: str | None = None, limit: int | None = None,
            energy_models: str | Sequence[str] | None = None, energy_model_files: Sequence[str | Path] = (),
            core_map: bool = True, batch_size: int = 32, calibration: Any = None, progress: bool = False,
            **option_values: Any) -> EnergyReport:
    """Profile ``model`` on ``target`` over ``frames``: operations, NeuroBench metrics, energy per inference.

    ``frames`` as in :func:`run`. ``energy_models``: names (default the standard ones; ``"all"``), from the shipped
    table and ``energy_model_files``. ``core_map=False`` skips the Loihi 2 core-mapping estimate (it compiles the
    graph to a Lava plan). ``options`` / keyword arguments: the target's options, checked as ``-o`` checks them.
    Same job as ``deploy profile``; ``report.write(dir)`` writes its files.
    """
    from neuromoco.deploy.api.context import run_context
    from neuromoco.deploy.api.options import option_values as values_of
    from neuromoco.deploy.api.samples import frames_label, resolve_samples
    from neuromoco.deploy.targets import TARGETS

    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    models = energy_model_table(energy_models, energy_model_files)
    values = {**values_of(target, options, option_values), "record_spikes": "true"}
    model = as_model(model)
    data, labs = resolve_samples(model.card, frames, labels, split=split, root=root, limit=limit)
    report = measure_energy(model, target, values, data, labs, models, run_context(frames, root, calibration, progress),
                            core_map=core_map, batch_size=batch_size, progress=progress)
    report.data.update(dataset=frames_label(model.card, frames), split=split)
    return report


def _measure(target: str, graph: nir.NIRGraph, card: ModelCard, runner: Runner, frames: np.ndarray,
             labels: np.ndarray | None, graph_walk: Walk, core_map: bool, batch_size: int,
             progress: bool) -> tuple[Activity, NeuroBenchCounter, CoreMapping | None, int]:
    """Run every batch once, feeding the activity, NeuroBench and core-map counters; and count correct answers."""
    from neuromoco.deploy.api.samples import batches, progress_bar
    from neuromoco.deploy.metrics.activity import Activity
    from neuromoco.deploy.metrics.core_map import CoreMapping
    from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter

    activity = Activity()
    counter = NeuroBenchCounter(graph, card.input_shape, graph_walk)
    mapping = CoreMapping.build(graph, card) if core_map else None
    correct = 0
    bar = progress_bar(len(frames), f"profile ({target})", progress, [target])
    for fr, lab in batches(frames, labels, batch_size):
        result = runner.run(fr)
        activity.update(result, fr)
        counter.update(result, fr)
        if mapping is not None:
            mapping.update(result, fr)
        if lab is not None:
            correct += int((result.predictions == lab).sum())
        if bar is not None:
            bar.update(fr.shape[1])
    if bar is not None:
        bar.close()
    return activity, counter, mapping, correct


def _summary_lines(target: str, data: dict[str, Any]) -> list[str]:
    """The per-inference figures, energies, NeuroBench metrics and core-map verdict, one line each."""
    t = data["profile"]["per_inference"]
    acc = "" if data["accuracy"] is None else f"; accuracy {data['accuracy']:.4f}"
    out = [f"{target}: per inference {t['synops']:.4g} synaptic ops, {t['neuron_updates']:.4g} neuron updates, "
           f"{t['spikes']:.4g} spikes ({t['input_events']:.4g} input events){acc}"]
    for name, e in data["energy_pj"].items():
        ann = "" if e["ann_pj"] is None else f", ANN {e['ann_pj'] * 1e-6:.4g} uJ (ANN/SNN {e['ann_over_snn']:.3g})"
        out.append(f"  {name}: SNN {e['snn_pj'] * 1e-6:.4g} uJ per inference{ann}")
    nb = data["neurobench"]
    so = nb["synaptic_operations"]
    out.append(f"  NeuroBench: footprint {nb['footprint']} B, connection sparsity {nb['connection_sparsity']:.4f}, "
               f"activation sparsity {nb['activation_sparsity']:.4f}, synaptic operations Dense {so['Dense']:.4g} / "
               f"Effective_MACs {so['Effective_MACs']:.4g} / Effective_ACs {so['Effective_ACs']:.4g}, "
               f"membrane updates {nb['membrane_updates']:.4g}")
    m = data["loihi2_map"]
    if m is not None and m.get("available", True):
        fit = "fits on one chip" if m["fits"] else "does NOT fit on one chip: " + "; ".join(m["problems"])
        step = m.get("load", {}).get("time_per_step_s", {}).get("mean")
        out.append(f"  Loihi 2 estimate (a model): {m['cores_needed']} cores "
                   f"({m['expanded']['cores_needed']} without weight sharing), {fit}"
                   + ("" if step is None else f"; {step * 1e6:.4g} us per step (most loaded core)"))
    elif m is not None:
        out.append(f"  Loihi 2 estimate unavailable: {m['reason']}")
    return out
