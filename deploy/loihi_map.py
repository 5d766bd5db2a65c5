"""A Loihi 2 core-mapping estimate from the Lava plan: cores needed, fit, the most loaded core per time step.

A model, not Intel's compiler: the limits and costs are data (``deploy/loihi2_cores.json``, each figure with
its source and whether it is published or assumed), the partition is greedy and contiguous per layer (see
the file's ``model`` list), and the per-step load comes from the measured spikes of a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.result import RunResult


def load_core_model() -> dict[str, Any]:
    """The packaged Loihi 2 limits, costs and model statements."""
    return json.loads(resources.files("neuromoco.deploy").joinpath("loihi2_cores.json").read_text())


def limit_values(model: dict[str, Any]) -> dict[str, float]:
    """``{name: value}`` of the limits and costs, with the synapses per core derived from memory and bits."""
    v = {k: float(e["value"]) for part in ("limits", "costs") for k, e in model[part].items()}
    v["synapses_per_core"] = float(int(v["synaptic_memory_bytes_per_core"] * 8 // v["bits_per_synapse"]))
    return v


@dataclass
class MapLayer:
    """One group of neurons to place: its incoming connections ``[n_neurons, n_source]`` by source name."""

    name: str
    neurons: int
    incoming: list[tuple[str, sp.csr_matrix]] = field(default_factory=list)
    order: np.ndarray | None = None  # placement order of the neurons (default: flat index order)

    def placed(self) -> np.ndarray:
        return np.arange(self.neurons) if self.order is None else self.order


@dataclass
class Core:
    layer: str
    rows: np.ndarray  # the layer's neurons (flat indices) placed on this core
    synapses: int
    fan_in: int
    bound_by: str  # what ended the block: neurons, synapses, fan_in or layer end

    @property
    def neurons(self) -> int:
        return len(self.rows)


def layers_from_plan(plan: Any) -> list[MapLayer]:
    """The plan's neuron layers, and its readout when it has connections (accumulators on chip).

    Neurons of a ``[C, H, W]`` layer are placed position by position, all channels of a position together
    (``H, W, C`` order), so that a core's block shares its receptive field (fan-in) as a conv layer's does.
    """
    def order(shape: tuple[int, ...]) -> np.ndarray | None:
        if len(shape) != 3:
            return None
        return np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()

    out = [MapLayer(lay.name, lay.size, [(c.source, c.matrix.tocsr()) for c in lay.conns], order(tuple(lay.shape)))
           for lay in plan.layers]
    if plan.readout.conns:
        out.append(MapLayer("(readout)", plan.readout.size,
                            [(c.source, c.matrix.tocsr()) for c in plan.readout.conns]))
    return out


def _fan_in(mats: list[sp.csr_matrix], offsets: list[int], a: int, b: int) -> int:
    cols = [np.unique(m[a:b].indices) + off for m, off in zip(mats, offsets)]
    return int(sum(len(c) for c in cols))


def partition(layers: list[MapLayer], limits: dict[str, float]) -> tuple[list[Core], list[str]]:
    """Contiguous blocks of each layer under the per-core limits; the reasons it cannot be placed, if any."""
    max_n, max_s, max_f = (int(limits[k]) for k in ("neurons_per_core", "synapses_per_core", "fan_in_per_core"))
    cores: list[Core] = []
    problems: list[str] = []
    for lay in layers:
        placed = lay.placed()
        mats = [(m != 0).astype(np.int64).tocsr()[placed] for _, m in lay.incoming]
        offsets = list(np.cumsum([0] + [m.shape[1] for m in mats[:-1]])) if mats else []
        per_row = sum((np.diff(m.indptr) for m in mats), np.zeros(lay.neurons, dtype=np.int64))
        cum = np.concatenate([[0], np.cumsum(per_row)])
        start = 0
        while start < lay.neurons:
            by_n = min(lay.neurons, start + max_n)
            by_s = int(np.searchsorted(cum, cum[start] + max_s, side="right")) - 1
            stop = min(by_n, by_s)
            bound = "synapses" if by_s < by_n else "neurons" if by_n < lay.neurons else "layer end"
            if stop <= start:
                problems.append(f"{lay.name}: neuron {start} alone has {int(per_row[start])} synapses, over the "
                                f"{max_s} a core holds")
                break
            if mats and _fan_in(mats, offsets, start, stop) > max_f:
                lo, hi = start + 1, stop  # largest stop with fan-in within the limit (fan-in grows with stop)
                if _fan_in(mats, offsets, start, lo) > max_f:
                    problems.append(f"{lay.name}: neuron {start} alone has fan-in "
                                    f"{_fan_in(mats, offsets, start, lo)}, over the {max_f} a core takes")
                    break
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if _fan_in(mats, offsets, start, mid) <= max_f else (lo, mid - 1)
                stop, bound = lo, "fan_in"
            cores.append(Core(lay.name, placed[start:stop], int(cum[stop] - cum[start]),
                              _fan_in(mats, offsets, start, stop) if mats else 0, bound))
            start = stop
    chip = int(limits["cores_per_chip"])
    if len(cores) > chip:
        problems.append(f"{len(cores)} cores needed, over the {chip} of one chip")
    return cores, problems


class CoreLoad:
    """Per-core synaptic operations per time step from a run's spikes, accumulated over batches."""

    def __init__(self, layers: list[MapLayer], cores: list[Core], input_name: str, limits: dict[str, float]) -> None:
        self.cores, self.limits, self.input_name = cores, limits, input_name
        self.samples = self.steps = 0
        # per source: [n_cores, n_source] count of synapses from each source neuron into each core
        by_source: dict[str, list[sp.csr_matrix]] = {}
        index = {id(c): i for i, c in enumerate(cores)}
        for lay in layers:
            mine = [c for c in cores if c.layer == lay.name]
            for src, m in lay.incoming:
                b = (m != 0).astype(np.float64).tocsr()
                rows = sp.lil_matrix((len(cores), b.shape[1]))
                for c in mine:
                    rows[index[id(c)]] = np.asarray(b[c.rows].sum(axis=0))
                by_source.setdefault(src, []).append(rows.tocsr())
        self.by_source = {k: sum(v[1:], v[0]).tocsr() for k, v in by_source.items()}
        self.total = np.zeros(len(cores))
        self.peak = np.zeros(len(cores))
        self.bottleneck = np.zeros(len(cores), dtype=np.int64)  # steps in which each core was the slowest
        self.step_time_sum = 0.0
        self.step_time_max = 0.0
        self.neurons = np.array([c.neurons for c in cores], dtype=np.float64)
        self.missing: set[str] = set()

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        T, B = np.asarray(frames).shape[:2]
        self.samples += B
        self.steps = T
        load = np.zeros((T * B, len(self.cores)))
        for src, m in self.by_source.items():
            if src == self.input_name:
                s = (np.asarray(frames).reshape(T * B, -1) != 0).astype(np.float64)
            elif src in result.spikes:
                s = np.asarray(result.spikes[src], dtype=np.float64).reshape(T * B, -1)
            else:
                self.missing.add(src)
                continue
            load += np.asarray((m @ s.T).T)
        self.total += load.sum(axis=0)
        self.peak = np.maximum(self.peak, load.max(axis=0, initial=0))
        t = load * self.limits["synop_s"] + self.neurons * self.limits["neuron_update_s"]
        slowest = t.max(axis=1)
        np.add.at(self.bottleneck, t.argmax(axis=1), 1)
        self.step_time_sum += float(slowest.sum())
        self.step_time_max = max(self.step_time_max, float(slowest.max(initial=0)))


def core_map(layers: list[MapLayer], input_name: str, load: CoreLoad | None, model: dict[str, Any],
             cores: list[Core], problems: list[str]) -> dict[str, Any]:
    """The JSON-ready estimate: partition, fit, per-core load, time per step and energy per inference."""
    lim = limit_values(model)
    steps_run = max(load.samples * load.steps, 1) if load else 1
    per_core = []
    for i, c in enumerate(cores):
        row: dict[str, Any] = {"core": i, "layer": c.layer, "neurons": c.neurons, "synapses": c.synapses,
                               "fan_in": c.fan_in, "bound_by": c.bound_by,
                               "synaptic_memory_bytes": c.synapses * lim["bits_per_synapse"] / 8}
        if load:
            row.update(synops_per_step_mean=float(load.total[i] / steps_run), synops_per_step_max=float(load.peak[i]),
                       bottleneck_steps=int(load.bottleneck[i]))
        per_core.append(row)
    per_layer = []
    for lay in layers:
        mine = [r for r in per_core if r["layer"] == lay.name]
        per_layer.append({"layer": lay.name, "neurons": lay.neurons,
                          "synapses": int(sum(int((m != 0).sum()) for _, m in lay.incoming)),
                          "cores": len(mine), "sources": [s for s, _ in lay.incoming]})
    chip = int(lim["cores_per_chip"])
    out: dict[str, Any] = {
        "chip": model["chip"], "is_a_model": True, "input": input_name,
        "limits": {k: {"value": e["value"], "status": e["status"], "source": e["source"]}
                   for k, e in model["limits"].items()},
        "derived": {"synapses_per_core": int(lim["synapses_per_core"])},
        "costs": {k: {"value": e["value"], "status": e["status"], "source": e["source"]} for k, e in model["costs"].items()},
        "model": model["model"],
        "layers": per_layer, "cores": per_core, "cores_needed": len(cores),
        "chips_needed": -(-len(cores) // chip) if cores else 0,
        "fits": not problems, "problems": problems,
    }
    if load and load.samples:
        n, T = load.samples, load.steps
        synops = float(load.total.sum()) / n
        updates = float(load.neurons.sum()) * T
        t_mean = load.step_time_sum / (n * T) + lim["barrier_sync_s"]
        balanced = (synops / T * lim["synop_s"] + updates / T * lim["neuron_update_s"]) / max(len(cores), 1)
        busiest = int(np.argmax(load.total)) if len(cores) else None
        out["load"] = {
            "samples": n, "time_steps": T, "synops_per_inference": synops, "neuron_updates_per_inference": updates,
            "most_loaded_core": None if busiest is None else {**per_core[busiest]},
            "most_often_bottleneck": None if busiest is None else int(np.argmax(load.bottleneck)),
            "time_per_step_s": {"mean": t_mean, "max": load.step_time_max + lim["barrier_sync_s"],
                                "if_perfectly_balanced": balanced + lim["barrier_sync_s"]},
            "time_per_inference_s": t_mean * T,
            "energy_per_inference_pj": {
                "synops": synops * lim["synop_pj"], "neuron_updates": updates * lim["neuron_update_pj"],
                "barrier_sync": T * len(cores) * lim["barrier_sync_pj_per_core"],
            },
            "missing_sources": sorted(load.missing),
        }
        e = out["load"]["energy_per_inference_pj"]
        e["total"] = e["synops"] + e["neuron_updates"] + e["barrier_sync"]
    return out


def estimate(plan: Any, runs: list[tuple[RunResult, np.ndarray]] | None = None) -> dict[str, Any]:
    """Partition ``plan`` onto Loihi 2 cores and price the runs' activity (a convenience for tests and scripts)."""
    model = load_core_model()
    layers = layers_from_plan(plan)
    cores, problems = partition(layers, limit_values(model))
    load = None
    if runs is not None and sum(c.neurons for c in cores) == sum(lay.neurons for lay in layers):
        load = CoreLoad(layers, cores, plan.input_name, limit_values(model))
        for res, fr in runs:
            load.update(res, fr)
    return core_map(layers, plan.input_name, load, model, cores, problems)


class CoreMapping:
    """The estimate as ``deploy profile`` runs it: the graph's Lava plan, partitioned, then fed batch by batch."""

    def __init__(self, layers: list[MapLayer], input_name: str, reason: str | None = None) -> None:
        self.model = load_core_model()
        self.layers, self.input_name, self.reason = layers, input_name, reason
        self.cores, self.problems = partition(layers, limit_values(self.model)) if reason is None else ([], [])
        placed = sum(c.neurons for c in self.cores) == sum(lay.neurons for lay in layers)
        self.load = (CoreLoad(layers, self.cores, input_name, limit_values(self.model))
                     if reason is None and placed else None)

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
        out = core_map(self.layers, self.input_name, self.load, self.model, self.cores, self.problems)
        return {"available": True, **out}
