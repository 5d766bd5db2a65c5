"""Loihi 2 fixed point at PyTorch speed: ``reference-fixed`` against ``lava-fixed``, measured in one run.

Both targets run the same fixed-point plan (compiled once per target with the same options) on the same
samples; ``reference-fixed`` must be bit-exact, so besides samples/s the JSON records the agreement of
predictions, the fraction of samples whose spikes are identical at every layer and step, and whether the
outputs are identical (all must be 1.0 / true). Two graphs:

* ``cnn3``: the trained ``nir_models/neuromoco_embedded_cnn3.nir`` (T = 8 from its card) on ``--samples``
  samples of its dataset's test split (seeded Poisson events when the dataset is not there); Lava runs
  all of them in one time-multiplexed run;
* ``cnn_t300``: a small conv net built with NIR's API (random weights; conv 2-8, LIF, sum pooling, conv
  8-16, LIF, 256 -> 32 affine, LIF, 32 -> 10 readout) at T = 300; Lava runs ``--lava-samples`` of the
  samples, ``reference-fixed`` all ``--samples`` (its agreement is checked on the ones Lava ran).

``reference-fixed`` is warmed up once (weights moved into torch tensors) and its time is the median of
``--repeats`` runs, with one torch thread and with torch's default (both recorded, the faster reported),
in batches of ``--batch-size`` samples (0: all of them in one); Lava's time is one run including process
start-up, as ``deploy run`` pays it. ``products`` records how ``reference-fixed`` computed each layer's
inputs (a recovered convolution, its border correction's form, int8 or floating-point dense products);
``load_average_at_start`` and the machine's load at the end say how busy the CPU was.

Writes ``benchmarks/results/fixed_point_speed.json``. Usage: ``python benchmarks/fixed_point_speed.py
[--samples 64] [--lava-samples 4] [--repeats 3] [--batch-size 0] [--device cpu] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, dataset_frames, machine_info, now, write_json

OUT = RESULTS / "fixed_point_speed.json"
CNN3 = ROOT / "nir_models" / "neuromoco_embedded_cnn3.nir"
THREADS = (1, 0)  # reference-fixed with one torch thread and with torch's default (0); the faster is reported


def cnn_t300_graph(seed: int = 0, time_steps: int = 300):
    """A small conv net on 2x16x16 event frames at T = ``time_steps`` (random weights), and its card."""
    import nir

    from neuromoco.deploy.card import ModelCard

    rng = np.random.default_rng(seed)

    def lif(shape, tau=0.005):
        return nir.LIF(tau=np.full(shape, tau), r=np.ones(shape), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape))

    def pool():
        return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))

    nodes = {
        "input": nir.Input(input_type=np.array([2, 16, 16])),
        "conv1": nir.Conv2d(input_shape=(16, 16), weight=rng.normal(0.3, 0.6, (8, 2, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=rng.normal(0.02, 0.02, 8)),
        "lif1": lif((8, 16, 16)),
        "pool1": pool(),
        "conv2": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0.6, 0.5, (16, 8, 3, 3)), stride=1, padding=1,
                            dilation=1, groups=1, bias=np.zeros(16)),
        "lif2": lif((16, 8, 8)),
        "pool2": pool(),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([16, 4, 4])}),
        "fc": nir.Affine(weight=rng.normal(0.05, 0.3, (32, 256)), bias=np.zeros(32)),
        "lif3": lif((32,)),
        "readout": nir.Affine(weight=rng.normal(0, 1.0, (10, 32)), bias=np.zeros(10)),
        "output": nir.Output(output_type=np.array([10])),
    }
    order = ["input", "conv1", "lif1", "pool1", "conv2", "lif2", "pool2", "flat", "fc", "lif3", "readout", "output"]
    graph = nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)))
    card = ModelCard(input_shape=[2, 16, 16], time_steps=time_steps, dt=0.001)
    return graph, card


def agreement(lava, ours, samples: int) -> dict:
    """Predictions, per-sample identical spikes at every layer and step, identical outputs."""
    same = np.ones(samples, dtype=bool)
    for layer, s in lava.spikes.items():
        o = ours.spikes[layer][:, :samples]
        same &= (o == s).reshape(s.shape[0], samples, -1).all(axis=(0, 2))
    return {"samples_compared": samples,
            "prediction_agreement": float(np.mean(ours.predictions[:samples] == lava.predictions)),
            "identical_spikes_fraction": float(np.mean(same)),
            "identical_outputs": bool(np.array_equal(ours.output[:, :samples], lava.output)),
            "spikes_compared": {k: int(v.sum()) for k, v in lava.spike_counts.items()},
            "layers_compared": sorted(lava.spikes)}


def products_of(executor) -> dict:
    """How ``reference-fixed`` computes each layer's inputs: a convolution (kernel, stride, pooling, the
    correction's share of the synapses) or a sparse product, and how many sign parts are merged."""
    from neuromoco.deploy.targets.reference_fixed import products

    out = {}
    for lay in executor.layers:
        rows = []
        for c in lay.conns:
            synapses = int(c.matrix.nnz) if c.matrix is not None else int(c.kernel.synapses)
            row = {"source": c.source, "parts": max(1, len(c.members)), "synapses": synapses}
            if c.conv is not None:
                row.update(product="conv2d", kernel=list(c.conv.weight.shape), stride=list(c.conv.stride),
                           sum_pool=c.conv.pool,
                           correction_fraction=int(c.conv.correction.nnz) / max(1, synapses),
                           correction=(f"border {c.conv.border.mode}" if c.conv.border is not None
                                       else "sparse" if c.conv.correction.nnz else "none"))
            elif c.dense:
                row["product"] = "dense int8" if products.int8_limbs(c) is not None else "dense"
            else:
                row["product"] = "sparse"
            rows.append(row)
        out[lay.name] = rows
    return out


def measure(graph, card, frames: np.ndarray, lava_samples: int, repeats: int, device: str,
            batch_size: int = 0) -> dict:
    """Both targets on ``frames`` ``[T, B, ...]`` (Lava on the first ``lava_samples``; ``reference-fixed`` in
    batches of ``batch_size``, 0: all)."""
    import torch

    from neuromoco.deploy.targets import get_target

    T, B = frames.shape[:2]
    batch = batch_size if batch_size > 0 else max(B, 1)
    lava_t, lava_o = get_target("lava-fixed")
    rf_t, rf_o = get_target("reference-fixed")
    t0 = time.perf_counter()
    lava_runner = lava_t.runner(graph, card, lava_o.updated({"record_spikes": True}))
    lava_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    lava = lava_runner.run(frames[:, :lava_samples])
    lava_s = time.perf_counter() - t0
    per_threads = {}
    for threads in THREADS:
        t0 = time.perf_counter()
        rf = rf_t.runner(graph, card, rf_o.updated({"record_spikes": True, "device": device, "batch_size": batch,
                                                    "threads": threads}))
        rf_compile = time.perf_counter() - t0
        rf.run(frames[:, :2])  # warm-up: weights into torch tensors
        products = products_of(rf.executor)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ours = rf.run(frames)
            times.append(time.perf_counter() - t0)
        per_threads[threads or torch.get_num_threads()] = {
            "seconds_median": statistics.median(times), "seconds_each": times,
            "samples_per_s": B / statistics.median(times), "compile_seconds": rf_compile}
    best = max(per_threads, key=lambda k: per_threads[k]["samples_per_s"])
    rf_s = per_threads[best]["seconds_median"]
    lava_rate, rf_rate = lava_samples / lava_s, B / rf_s
    return {
        "time_steps": T,
        "synapses": int(sum(c.nnz for lay in lava_runner.plan.layers for c in lay.conns)
                        + sum(c.nnz for c in lava_runner.plan.readout.conns)),
        "lava_fixed": {"samples": lava_samples, "seconds": lava_s, "samples_per_s": lava_rate,
                       "compile_seconds": lava_compile, "run": lava_runner.last_run},
        "reference_fixed": {"samples": B, "batch_size": batch, "seconds_median": rf_s, "samples_per_s": rf_rate,
                            "device": device, "torch_threads": best, "by_torch_threads": per_threads,
                            "products": products},
        "speedup_samples_per_s": rf_rate / lava_rate,
        "agreement": agreement(lava, ours, lava_samples),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=64, help="samples per graph for reference-fixed (cnn3: Lava too)")
    ap.add_argument("--lava-samples", type=int, default=4, help="samples Lava runs of the T = 300 CNN")
    ap.add_argument("--repeats", type=int, default=3, help="timed reference-fixed runs (median)")
    ap.add_argument("--device", default="cpu", help="torch device of reference-fixed")
    ap.add_argument("--batch-size", type=int, default=0, help="reference-fixed samples per batch (0: all at once)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import torch

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph

    report: dict = {"benchmark": "fixed_point_speed", "date": now(), "graphs": {},
                    "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}
    card = ModelCard.load(ModelCard.beside(CNN3))
    graph = load_graph(CNN3, input_shape=card.input_shape)
    x, source = dataset_frames(card, args.samples, None)
    frames = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    res = measure(graph, card, frames, frames.shape[1], args.repeats, args.device, args.batch_size)
    report["graphs"]["cnn3"] = {"model": "nir_models/neuromoco_embedded_cnn3.nir (trained)", "data": source, **res}
    print(f"cnn3 T={card.time_steps}: lava-fixed {res['lava_fixed']['samples_per_s']:.2f} samples/s, "
          f"reference-fixed {res['reference_fixed']['samples_per_s']:.1f} samples/s "
          f"({res['speedup_samples_per_s']:.0f}x), agreement {res['agreement']}", flush=True)

    graph, card = cnn_t300_graph()
    rng = np.random.default_rng(0)
    frames = rng.poisson(0.05, size=(card.time_steps, args.samples, *card.input_shape)).astype(np.float32)
    res = measure(graph, card, frames, min(args.lava_samples, args.samples), args.repeats, args.device,
                  args.batch_size)
    report["graphs"]["cnn_t300"] = {"model": "conv 2-8, LIF, sumpool, conv 8-16, LIF, sumpool, 256-32, LIF, "
                                             "32-10 (random weights, NIR API)",
                                    "data": "Poisson event counts, rate 0.05 per pixel and step", **res}
    print(f"cnn T=300: lava-fixed {res['lava_fixed']['samples_per_s']:.3f} samples/s, "
          f"reference-fixed {res['reference_fixed']['samples_per_s']:.1f} samples/s "
          f"({res['speedup_samples_per_s']:.0f}x), agreement {res['agreement']}", flush=True)
    report["machine"] = machine_info(torch_threads=torch.get_num_threads())
    write_json(args.out, report)
    print(f"wrote {args.out}")
    ok = all(g["agreement"]["prediction_agreement"] == 1.0 and g["agreement"]["identical_spikes_fraction"] == 1.0
             and g["agreement"]["identical_outputs"] for g in report["graphs"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
