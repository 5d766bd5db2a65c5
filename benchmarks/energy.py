"""Energy per inference of the graphs in nir_models/ (or the ones named), written as JSON.

    python benchmarks/energy.py [--model X.nir ...] [--target reference] [--samples 32] [--out FILE]

For each graph: synaptic operations, neuron updates, spikes and input events per inference, and energy per
inference under every model of ``deploy/energy_models.json`` (SNN, and the same network as an ANN where the
model has an ANN figure), counted exactly as ``deploy profile`` counts them, with NeuroBench's metrics and
the Loihi 2 core-mapping estimate (cores, fit, time per step bound by the most loaded core). With several
``--target``, each graph runs on each, and ``energy_layers_<graph>.png`` plots per-layer activation sparsity
and synaptic operations by target. Inputs are the model's own
dataset (test split) when a dataset provider knows it, otherwise seeded Poisson event counts at the rate
its model card states; the JSON says which. Default output: benchmarks/results/energy.json.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, machine_info, now, write_json

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.metrics.activity import Activity
from neuromoco.deploy.metrics.core_map import CoreMapping
from neuromoco.deploy.metrics.energy_models import energy, load_energy_models
from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter, neurobench_metrics
from neuromoco.deploy.metrics.synops import profile
from neuromoco.deploy.targets import get_target
from neuromoco.errors import UserError


def inputs(card: ModelCard, samples: int, salt: str) -> tuple[np.ndarray, str]:
    """Frames ``[N, T, C, H, W]`` of the model's dataset, or seeded Poisson counts when it is unavailable."""
    from neuromoco.deploy.datasets import load_frames

    try:
        frames, _ = load_frames(card, None, "test", None, samples)
        if len(frames):
            return frames, f"dataset {card.dataset.get('name')} (test split)"
    except (UserError, ImportError):  # no provider knows it (or the project's own is not installed)
        pass
    rate = float(((card.dataset or {}).get("preprocessing") or {}).get("rate", 0.3))
    rng = np.random.default_rng(zlib.crc32(salt.encode()))
    frames = rng.poisson(rate, size=(samples, card.time_steps, *card.input_shape)).astype(np.float32)
    return frames, f"seeded Poisson event counts, rate {rate} per input per step"


def measure(path: Path, target: str, samples: int, batch: int) -> dict:
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames, source = inputs(card, samples, path.stem)
    impl, options = get_target(target)
    runner = impl.runner(graph, card, options.updated({"record_spikes": True}))
    act = Activity()
    counter = NeuroBenchCounter(graph, card.input_shape)
    mapping = CoreMapping.build(graph, card)
    seconds = 0.0
    for i in range(0, len(frames), batch):
        fr = np.ascontiguousarray(np.swapaxes(frames[i:i + batch], 0, 1))
        t0 = time.perf_counter()
        res = runner.run(fr)
        seconds += time.perf_counter() - t0
        act.update(res, fr)
        counter.update(res, fr)
        mapping.update(res, fr)
    prof = profile(graph, act, card.input_shape)
    models = load_energy_models()
    e = energy(prof, models)
    return {
        "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "target": target,
        "inputs": source, "samples": prof["samples"], "time_steps": prof["time_steps"],
        "per_inference": prof["per_inference"], "exact_counts": prof["exact"],
        # one row per synaptic layer and input: a node fed by several (a SEW ADD, conv4<-lif1 and conv4<-lif3)
        # has a row per source, so the shortcut synapses are counted on their own
        "per_layer": [{k: r[k] for k in ("layer", "source", "sink", "connections", "spikes_in_per_inference",
                                          "synops_per_inference", "neuron_updates_per_inference", "ann_macs")}
                      for r in prof["layers"]],
        "energy_per_inference_uj": {
            name: {"snn": v["snn_pj"] * 1e-6, "ann": None if v["ann_pj"] is None else v["ann_pj"] * 1e-6,
                   "ann_over_snn": v["ann_over_snn"]} for name, v in e.items()},
        "neurobench": {k: v for k, v in neurobench_metrics(graph, counter, target, options.as_dict()).items()
                       if k != "source"},
        "loihi2_map": _map_summary(mapping.result()),
        "run_seconds": seconds,
    }


def _map_summary(m: dict) -> dict:
    """The core map's headline figures (the per-core table stays in `deploy profile`'s energy.json)."""
    if not m.get("available"):
        return {"available": False, "reason": m["reason"]}
    load = m.get("load") or {}
    return {"available": True, "cores_needed": m["cores_needed"], "chips_needed": m["chips_needed"], "fits": m["fits"],
            "problems": m["problems"], "layers": m["layers"],
            "most_loaded_core": load.get("most_loaded_core"), "time_per_step_s": load.get("time_per_step_s"),
            "energy_per_inference_pj": load.get("energy_per_inference_pj")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", help="a .nir graph (repeatable; default: all in nir_models/)")
    p.add_argument("--target", action="append", help="whose spikes are counted (repeatable; default reference)")
    p.add_argument("--samples", type=int, default=32, help="samples per graph (default 32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=str(RESULTS / "energy.json"))
    args = p.parse_args(argv)
    paths = [Path(m).resolve() for m in args.model] if args.model else sorted((ROOT / "nir_models").rglob("*.nir"))
    results = []
    for path in paths:
        by_target = {}
        for target in args.target or ["reference"]:
            try:
                r = measure(path, target, args.samples, args.batch_size)
            except UserError as err:
                print(f"{path.name} on {target}: skipped ({err})")
                continue
            results.append(r)
            by_target[target] = r["neurobench"]
            e, m = r["energy_per_inference_uj"], r["loihi2_map"]
            cores = f"{m['cores_needed']} Loihi 2 cores" if m["available"] else "no Lava plan"
            print(f"{r['model']} on {target}: {r['per_inference']['synops']:.4g} synops/inference; "
                  f"Loihi {e['loihi']['snn']:.4g} uJ; "
                  f"45nm SNN {e['45nm']['snn']:.4g} uJ vs ANN {e['45nm']['ann']:.4g} uJ; "
                  f"{cores}")
        if len(by_target) > 1:
            from neuromoco.deploy.report import plot_layer_metrics

            plot_layer_metrics(Path(args.out).parent / f"energy_layers_{path.stem}.png", by_target)
    models = load_energy_models()
    out = {
        "benchmark": "energy per inference",
        "machine": machine_info(),
        "date": now(),
        "energy_models": {k: {"energy_pj": v["energy_pj"], "source": v["source"]} for k, v in models.items()},
        "results": results,
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
