"""Lava simulation throughput (Loihi2SimCfg on CPU), with and without batching, against the PyTorch reference.

For the 34x34 deployable conv net (a trained one from ``nir_models/`` when one is there -- a 34x34 graph
whose card states an accuracy -- else the architecture of ``neuromoco.train.models.deployable.cnn3_34``: conv 16-32-32,
LIF, sum pooling, a 512 -> 10 readout, with random He-scaled weights; the JSON says which), measures on
the same samples:

* ``per_sample_runs``: no batching, one Lava run (process start, compile, run, stop) per sample;
* ``time_multiplexed``: one Lava run for all samples, one after another, neuron state reset between
  samples (per-layer reset offsets, no idle steps);
* ``tiled``: one Lava run, ``--tile`` samples side by side (block-diagonal connections) and the groups
  one after another;
* the PyTorch reference executor (float32, CPU, batched) on the same samples;

each as samples/s and time steps/s (sample time steps: samples x T per second; Lava steps: simulator
steps per second), the Lava/reference ratio, and the Lava target's agreement with the float64 reference
(predictions, spike counts per layer). Floating point for all three modes; fixed point for the
time-multiplexed and tiled modes. Because tiling only pays where Lava's per-step overhead dominates, the
same three modes are also measured on the small ``nir_models/neuromoco_tiny_cnn`` graph when it exists.

Writes ``benchmarks/results/lava_throughput.json``. Usage: ``python benchmarks/lava_throughput.py
[--samples 16] [--tile 8] [--single 3] [--model PATH.nir] [--dataset NAME|FILE.npz]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (
    RESULTS,
    ROOT,
    dataset_frames,
    describe_path,
    machine_info,
    model_under_test,
    now,
    write_json,
)

from neuromoco.deploy.card import ModelCard

OUT = RESULTS / "lava_throughput.json"


def rates(samples: int, T: int, seconds: float, lava_steps: int | None = None) -> dict:
    out = {"seconds": seconds, "samples": samples, "samples_per_s": samples / seconds,
           "sample_time_steps_per_s": samples * T / seconds}
    if lava_steps is not None:
        out["lava_steps"] = lava_steps
        out["lava_steps_per_s"] = lava_steps / seconds
    return out


def small_model(path: Path, n: int, tile: int) -> dict:
    """The three modes on a small graph (Poisson frames at its card's rate), float, with the reference."""
    import json

    from neuromoco.deploy.graph import load_graph
    from neuromoco.deploy.reference_executor import ReferenceExecutor
    from neuromoco.deploy.targets.lava import TARGET
    from neuromoco.deploy.targets.lava.runner import LavaRunner

    card = ModelCard.load(ModelCard.beside(path))
    rate = json.loads(ModelCard.beside(path).read_text())["dataset"].get("preprocessing", {}).get("rate", 0.2)
    T = card.time_steps
    x = np.random.default_rng(0).poisson(rate, size=(T, n, *card.input_shape)).astype(np.float32)
    graph = load_graph(path, input_shape=card.input_shape)
    ref = ReferenceExecutor(graph, card.dt, input_shape=card.input_shape)
    t0 = time.perf_counter()
    ref.run(x)
    out = {"model": str(path.relative_to(ROOT)), "time_steps": T,
           "reference_float32": rates(n, T, time.perf_counter() - t0)}
    plan = TARGET.compile(graph, card, precision="float")
    single = min(3, n)
    for mode, (t, per, count) in {"per_sample_runs": (1, 1, single), "time_multiplexed": (1, None, n),
                                  "tiled": (tile, None, n), "auto_tile": ("auto", None, n)}.items():
        runner = LavaRunner(plan, tile=t, samples_per_run=per)
        t0 = time.perf_counter()
        runner.run(x[:, :count])
        r = rates(count, T, time.perf_counter() - t0)
        r["tile"] = runner.tile
        r["ratio_to_reference_samples_per_s"] = r["samples_per_s"] / out["reference_float32"]["samples_per_s"]
        out[mode] = r
        print(f"small model {mode:17} tile {runner.tile:2}: {r['samples_per_s']:7.2f} samples/s, "
              f"x{r['ratio_to_reference_samples_per_s']:.3f} of reference", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=16, help="samples for the batched modes (default 16)")
    ap.add_argument("--single", type=int, default=3, help="samples run one Lava run each (default 3)")
    ap.add_argument("--tile", type=int, default=8, help="samples side by side in the tiled mode (default 8)")
    ap.add_argument("--model", default=None, help="a .nir file (default: a trained 34x34 model in nir_models/)")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--time-steps", type=int, default=16, help="T for the random-weight model (default 16)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import torch

    from neuromoco.deploy.reference_executor import ReferenceExecutor
    from neuromoco.deploy.targets.lava import TARGET
    from neuromoco.deploy.targets.lava.runner import LavaRunner

    graph, card, trained = model_under_test(args.model, args.time_steps)
    model_desc = (f"{describe_path(trained)} (trained)" if trained is not None
                  else "cnn3-34 architecture with random weights (no trained 34x34 model in nir_models/ yet)")
    n = max(args.samples, args.single)
    frames, data_desc = dataset_frames(card, n, args.dataset)
    T = int(frames.shape[1])
    x = np.ascontiguousarray(np.swapaxes(frames, 0, 1))  # [T, N, C, H, W]

    result: dict = {"benchmark": "lava_throughput", "model": model_desc, "data": data_desc, "time_steps": T,
                    "machine": machine_info(torch_threads=torch.get_num_threads())}
    # reference: float32 CPU, all samples in one batch (best of 3)
    ref = ReferenceExecutor(graph, card.dt, input_shape=card.input_shape)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        ref.run(x[:, :args.samples])
        best = min(best, time.perf_counter() - t0)
    result["reference_float32"] = rates(args.samples, T, best)
    ref64 = ReferenceExecutor(graph, card.dt, dtype=torch.float64, input_shape=card.input_shape).run(
        x[:, :args.samples])

    lava: dict = {}
    for precision in ("float", "fixed"):
        t0 = time.perf_counter()
        plan = TARGET.compile(graph, card, precision=precision)
        compile_s = time.perf_counter() - t0
        modes = {"per_sample_runs": (1, 1, args.single), "time_multiplexed": (1, None, args.samples),
                 "tiled": (args.tile, None, args.samples)}
        if precision == "fixed":
            modes = {k: modes[k] for k in ("time_multiplexed", "tiled")}
        entry: dict = {"compile_seconds": compile_s,
                       "synapses": int(sum(c.nnz for lay in plan.layers for c in lay.conns))}
        for mode, (tile, per_run, count) in modes.items():
            runner = LavaRunner(plan, tile=tile, samples_per_run=per_run)
            steps = 0
            t0 = time.perf_counter()
            if per_run == 1:
                parts = []
                for i in range(count):
                    parts.append(runner.run(x[:, i:i + 1]))
                    steps += runner.last_run["steps"]
                from neuromoco.deploy.result import RunResult

                res = RunResult.concatenate(parts)
            else:
                res = runner.run(x[:, :count])
                steps = runner.last_run["steps"]
            wall = time.perf_counter() - t0
            r = rates(count, T, wall, steps)
            r["tile"] = tile
            r["ratio_to_reference_samples_per_s"] = r["samples_per_s"] / result["reference_float32"]["samples_per_s"]
            ref_counts = {k: int(v[:, :count].sum()) for k, v in ref64.spike_counts.items()}
            got = {k: int(v.sum()) for k, v in res.spike_counts.items()}
            r["spike_counts_reference_float64"] = ref_counts
            r["spike_counts_lava"] = got
            r["prediction_agreement"] = float(np.mean(res.predictions == ref64.predictions[:count]))
            entry[mode] = r
            print(f"lava {precision:5} {mode:17} tile {tile:2}: {r['samples_per_s']:7.2f} samples/s, "
                  f"{r['sample_time_steps_per_s']:8.1f} sample steps/s, {r['lava_steps_per_s']:6.1f} Lava steps/s, "
                  f"x{r['ratio_to_reference_samples_per_s']:.3f} of reference, agreement "
                  f"{r['prediction_agreement']:.3f}", flush=True)
        lava[precision] = entry
    result["lava"] = lava
    f = lava["float"]
    result["batching_speedup"] = {
        "time_multiplexed_vs_per_sample_runs": f["time_multiplexed"]["samples_per_s"]
        / f["per_sample_runs"]["samples_per_s"],
        "tiled_vs_per_sample_runs": f["tiled"]["samples_per_s"] / f["per_sample_runs"]["samples_per_s"],
    }
    small = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"
    if small.exists():
        result["small_model"] = small_model(small, args.samples * 4, args.tile)
    rf = result["reference_float32"]
    print(f"reference float32: {rf['samples_per_s']:.1f} samples/s, {rf['sample_time_steps_per_s']:.0f} sample steps/s")
    result["date"] = now()
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
