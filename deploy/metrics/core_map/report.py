"""The core map's JSON-ready estimate (partition, fit, per-core load, time per step and energy per inference, with
and without weight sharing), and :class:`CoreMapping`, the estimate as ``deploy profile`` runs it batch by batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.metrics.core_map.load import CoreLoad, _Tally
from neuromoco.deploy.metrics.core_map.model import limit_values, load_core_model
from neuromoco.deploy.metrics.core_map.placement import Core, MapLayer, has_kernels, layers_from_plan, partition
from neuromoco.deploy.result import RunResult


def _memory(c: Core, lim: dict[str, float]) -> float:
    bits = lim.get("bits_per_shared_weight", lim["bits_per_synapse"]) if c.tile else lim["bits_per_synapse"]
    return c.weights * bits / 8


def _timing(tally: _Tally | None, load: CoreLoad | None, lim: dict[str, float]) -> dict[str, Any] | None:
    """Time per step and energy per inference of one partition's tally, or None without a run."""
    if tally is None or load is None or not load.samples:
        return None
    n, T, k = load.samples, load.steps, len(tally.cores)
    synops = float(tally.total.sum()) / n
    updates = float(tally.neurons.sum()) * T
    t_mean = tally.step_time_sum / (n * T) + lim["barrier_sync_s"]
    balanced = (synops / T * lim["synop_s"] + updates / T * lim["neuron_update_s"]) / max(k, 1)
    e = {"synops": synops * lim["synop_pj"], "neuron_updates": updates * lim["neuron_update_pj"],
         "barrier_sync": T * k * lim["barrier_sync_pj_per_core"]}
    e["total"] = e["synops"] + e["neuron_updates"] + e["barrier_sync"]
    return {"samples": n, "time_steps": T, "synops_per_inference": synops, "neuron_updates_per_inference": updates,
            "time_per_step_s": {"mean": t_mean, "max": tally.step_time_max + lim["barrier_sync_s"],
                                "if_perfectly_balanced": balanced + lim["barrier_sync_s"]},
            "time_per_inference_s": t_mean * T, "energy_per_inference_pj": e}


def core_map(layers: list[MapLayer], input_name: str, load: CoreLoad | None, model: dict[str, Any],
             cores: list[Core], problems: list[str],
             expanded: tuple[list[Core], list[str]] | None = None) -> dict[str, Any]:
    """The JSON-ready estimate: partition, fit, per-core load, time per step and energy per inference, with
    weight sharing; ``expanded``: the same without it (every synapse stored; None: the partition is the same)."""
    lim = limit_values(model)
    exp_cores, exp_problems = expanded if expanded is not None else (cores, problems)
    tally = load.tallies[0] if load else None
    exp_tally = tally if expanded is None else load.tallies[1] if load and len(load.tallies) > 1 else None
    steps_run = max(load.samples * load.steps, 1) if load else 1
    per_core = []
    for i, c in enumerate(cores):
        row: dict[str, Any] = {"core": i, "layer": c.layer, "neurons": c.neurons, "synapses": c.synapses,
                               "weights": c.weights, "fan_in": c.fan_in, "bound_by": c.bound_by,
                               "synaptic_memory_bytes": _memory(c, lim)}
        if c.tile:
            row["tile"] = {"channels": list(c.tile[:2]), "rows": list(c.tile[2:4]), "columns": list(c.tile[4:])}
        if tally is not None:
            row.update(synops_per_step_mean=float(tally.total[i] / steps_run),
                       synops_per_step_max=float(tally.peak[i]), bottleneck_steps=int(tally.bottleneck[i]))
        per_core.append(row)
    per_layer = []
    for lay in layers:
        mine = [c for c in cores if c.layer == lay.name]
        theirs = [c for c in exp_cores if c.layer == lay.name]
        per_layer.append({
            "layer": lay.name, "neurons": lay.neurons,
            "synapses": int(sum(w.synapses if isinstance(w, Kernel) else (w != 0).sum() for _, w in lay.incoming)),
            "parameters": int(sum(w.parameters if isinstance(w, Kernel) else (w != 0).sum()
                                  for _, w in lay.incoming)),
            "weight_sharing": any(c.tile for c in mine), "cores": len(mine), "cores_expanded": len(theirs),
            "synaptic_memory_bytes": sum(_memory(c, lim) for c in mine),
            "synaptic_memory_bytes_expanded": sum(_memory(c, lim) for c in theirs),
            "sources": [s for s, _ in lay.incoming]})
    chip = int(lim["cores_per_chip"])
    out: dict[str, Any] = {
        "chip": model["chip"], "is_a_model": True, "input": input_name,
        "limits": {k: {"value": e["value"], "status": e["status"], "source": e["source"]}
                   for k, e in model["limits"].items()},
        "derived": {"synapses_per_core": int(lim["synapses_per_core"]),
                    "shared_weights_per_core": int(lim["shared_weights_per_core"])},
        "costs": {k: {"value": e["value"], "status": e["status"], "source": e["source"]}
                  for k, e in model["costs"].items()},
        "model": model["model"],
        "layers": per_layer, "cores": per_core, "cores_needed": len(cores),
        "chips_needed": -(-len(cores) // chip) if cores else 0,
        "fits": not problems, "problems": problems,
        "synaptic_memory_bytes": sum(_memory(c, lim) for c in cores),
        "expanded": {"cores_needed": len(exp_cores), "chips_needed": -(-len(exp_cores) // chip) if exp_cores else 0,
                     "fits": not exp_problems, "problems": exp_problems,
                     "synaptic_memory_bytes": sum(_memory(c, lim) for c in exp_cores)},
    }
    timing = _timing(tally, load, lim)
    if timing is not None and tally is not None:
        busiest = int(np.argmax(tally.total)) if len(cores) else None
        out["load"] = {**timing, "most_loaded_core": None if busiest is None else {**per_core[busiest]},
                       "most_often_bottleneck": None if busiest is None else int(np.argmax(tally.bottleneck)),
                       "missing_sources": sorted(load.missing)}  # type: ignore[union-attr]
    exp_timing = _timing(exp_tally, load, lim)
    if exp_timing is not None:
        out["expanded"]["load"] = {k: exp_timing[k] for k in
                                   ("time_per_step_s", "time_per_inference_s", "energy_per_inference_pj")}
    return out


def _placements(layers: list[MapLayer], lim: dict[str, float]) -> tuple[tuple[list[Core], list[str]],
                                                                        tuple[list[Core], list[str]] | None]:
    """The partition with weight sharing and, when the plan has kernels, the one without (else None)."""
    shared = partition(layers, lim)
    return shared, partition(layers, lim, shared=False, exact=False) if has_kernels(layers) else None


def _load(layers: list[MapLayer], input_name: str, lim: dict[str, float], shared: tuple[list[Core], list[str]],
          expanded: tuple[list[Core], list[str]] | None) -> CoreLoad | None:
    """A load counter when the shared partition placed every neuron (the expanded one too, if it did)."""
    n = sum(lay.neurons for lay in layers)
    if sum(c.neurons for c in shared[0]) != n:
        return None
    full = expanded is not None and sum(c.neurons for c in expanded[0]) == n
    return CoreLoad(layers, shared[0], input_name, lim, expanded[0] if full else None)  # type: ignore[index]


class CoreMapping:
    """The estimate as ``deploy profile`` runs it: the graph's Lava plan, partitioned (with and without weight
    sharing), then fed batch by batch."""

    def __init__(self, layers: list[MapLayer], input_name: str, reason: str | None = None) -> None:
        self.model = load_core_model()
        self.layers, self.input_name, self.reason = layers, input_name, reason
        lim = limit_values(self.model)
        self.shared, self.expanded = _placements(layers, lim) if reason is None else (([], []), None)
        self.load = _load(layers, input_name, lim, self.shared, self.expanded) if reason is None else None

    @classmethod
    def build(cls, graph: Any, card: Any) -> CoreMapping:
        """From a NIR graph and its card; a graph Lava cannot run gives an estimate that says why it is absent."""
        from neuromoco.deploy.loihi.compile import compile_graph
        from neuromoco.errors import UserError

        try:
            plan = compile_graph(graph, card.dt, precision="float", input_shape=list(card.input_shape))
        except UserError as err:
            return cls([], "", reason=str(err))
        return cls(layers_from_plan(plan), plan.input_name)

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        if self.load is not None:
            self.load.update(result, frames)

    def result(self) -> dict[str, Any]:
        if self.reason is not None:
            return {"available": False, "reason": f"the graph has no Lava plan: {self.reason}", "is_a_model": True}
        out = core_map(self.layers, self.input_name, self.load, self.model, *self.shared, expanded=self.expanded)
        return {"available": True, **out}
