"""ONNX target speed on CPU: onnxruntime fp32 and int8 against the PyTorch reference executor, in one run.

For the 34x34 deployable conv net (a trained one from ``nir_models/`` when one is there, else the same
architecture as ``neuromoco.train.models.deployable.cnn3_34`` -- conv 16-32-32, LIF, sum pooling, a 512 -> 10 readout --
with random weights; the JSON says which), measures

* latency per time step: one sample (batch 1), one ``session.run`` per step carrying the states, median
  over steps; for the reference, a batch-1 sequence divided by T (it runs layer by layer over the whole
  sequence, so it has no per-step call);
* throughput: samples per second over ``--samples`` samples in batches of ``--batch``, each sample all T
  steps (the reference runs its own batched form);
* model sizes on disk (``.nir``, ``model.onnx``, ``model.int8.onnx``), and, as a sanity check, int8's
  prediction agreement and per-layer spike-count difference against the reference on the same samples.

Writes ``benchmarks/results/onnx_throughput.json``. Usage: ``python benchmarks/onnx_throughput.py
[--samples 256] [--batch 64] [--threads N] [--model PATH.nir] [--dataset NAME|FILE.npz]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (
    RESULTS,
    dataset_frames,
    describe_path,
    machine_info,
    model_under_test,
    now,
    write_json,
)

OUT = RESULTS / "onnx_throughput.json"


def time_it(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def step_latency(runner, frame_seq: np.ndarray, repeat: int) -> float:
    """Median seconds per ``session.run`` for one sample (batch 1), states carried."""
    spec = runner.spec
    times = []
    for _ in range(repeat):
        state = runner.initial_state(1)
        names = [runner.spec.output, *spec.spike_counts.values(), *(s.output for s in spec.states)]
        k = 1 + len(spec.spike_counts)
        for t in range(frame_seq.shape[0]):
            feed = {spec.input: frame_seq[t:t + 1], **state}
            t0 = time.perf_counter()
            res = runner.session.run(names, feed)
            times.append(time.perf_counter() - t0)
            state = {s.input: res[k + j] for j, s in enumerate(spec.states)}
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--calibration", type=int, default=64, help="calibration samples for int8")
    ap.add_argument("--threads", type=int, default=0, help="threads for torch and onnxruntime (0: default)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--model", default=None, help="a .nir file (default: a trained 34x34 model in nir_models/)")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch

    from neuromoco.deploy.reference_executor import ReferenceExecutor
    from neuromoco.deploy.targets.onnx import TARGET
    from neuromoco.deploy.targets.onnx.runner import OnnxRunner

    if args.threads:
        torch.set_num_threads(args.threads)
    graph, card, trained = model_under_test(args.model, time_steps=10)
    source = (f"trained: {describe_path(trained)}" if trained is not None else
              "random weights (no trained 34x34 model in nir_models/): architecture of train cnn3-34 + 512->10 head")
    frames, data_source = dataset_frames(card, args.samples, args.dataset, "test", min_samples=min(args.samples, 8))
    calib, calib_source = dataset_frames(card, args.calibration, args.dataset, "train",
                                         min_samples=min(args.calibration, 8))
    seq = np.ascontiguousarray(np.swapaxes(frames, 0, 1))  # [T, N, ...]
    T, N = seq.shape[:2]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import nir

        nir_path = tmp / "model.nir"
        nir.write(str(nir_path), graph)
        t0 = time.perf_counter()
        fp32_path = TARGET.export(graph, card, tmp / "fp32")
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        int8_path = TARGET.export(graph, card, tmp / "int8", quantize="int8", calibration=calib)
        quant_s = time.perf_counter() - t0
        report = json.loads((tmp / "int8" / "model.int8.quant.json").read_text())
        qlinear_path = TARGET.export(graph, card, tmp / "int8q", quantize="int8", calibration=calib,
                                     quantize_currents=True)
        seq_path = TARGET.export(graph, card, tmp / "seq", sequence=True)
        runners = {name: OnnxRunner(p, batch_size=args.batch, progress=False, threads=args.threads or None)
                   for name, p in (("onnxruntime_fp32", fp32_path), ("onnxruntime_int8", int8_path),
                                   ("onnxruntime_int8_quantized_currents", qlinear_path),
                                   ("onnxruntime_fp32_sequence", seq_path))}
        sizes = {"nir": nir_path.stat().st_size, "onnx_fp32": fp32_path.stat().st_size,
                 "onnx_int8": int8_path.stat().st_size,
                 "onnx_int8_quantized_currents": qlinear_path.stat().st_size,
                 "onnx_fp32_sequence": seq_path.stat().st_size}

        ref = ReferenceExecutor(graph, card.dt, input_shape=card.input_shape)

        def ref_run() -> object:
            return [ref.run(seq[:, s:s + args.batch]) for s in range(0, N, args.batch)]

        results: dict[str, dict] = {}
        outs = {"pytorch_reference": ref.run(seq)}
        fns = {"pytorch_reference": ref_run}
        for name, r in runners.items():
            outs[name] = r.run(seq)  # also the warm-up
            fns[name] = lambda r=r: r.run(seq)
        # throughput: rounds interleaved across the three, best round kept (other load on the machine
        # slows single rounds, never speeds them up)
        best = {name: float("inf") for name in fns}
        for _ in range(args.repeat):
            for name, fn in fns.items():
                best[name] = min(best[name], time_it(fn, 1))
        for name, t in best.items():
            results[name] = {"throughput_samples_per_s": N / t, "seconds_best_round": t}
        # latency per time step, batch 1
        one = seq[:, :1]
        t_ref = statistics.median([time_it(lambda: ref.run(one), 1) for _ in range(5 * args.repeat)])
        results["pytorch_reference"]["latency_per_step_ms_batch1"] = 1e3 * t_ref / T
        results["pytorch_reference"]["latency_note"] = "median batch-1 sequence time / T (no per-step call)"
        for name, r in runners.items():
            if r.spec.mode == "sequence":
                t_seq = statistics.median([time_it(lambda r=r: r.run(one), 1) for _ in range(5 * args.repeat)])
                results[name]["latency_per_step_ms_batch1"] = 1e3 * t_seq / T
                results[name]["latency_note"] = "median batch-1 sequence time / T (one Scan call per sequence)"
                continue
            results[name]["latency_per_step_ms_batch1"] = 1e3 * step_latency(r, one.reshape(T, 1, *one.shape[2:])[:, 0],
                                                                             args.repeat)
            results[name]["latency_note"] = "median time of one session.run at batch 1, states carried"
        base = results["pytorch_reference"]["throughput_samples_per_s"]
        for entry in results.values():
            entry["throughput_vs_reference"] = entry["throughput_samples_per_s"] / base
        refres = outs["pytorch_reference"]
        parity = {}
        for name in runners:
            o = outs[name]
            parity[name] = {
                "prediction_agreement": float((o.predictions == refres.predictions).mean()),
                "spike_count_rel_diff": {
                    k: float(abs(int(o.spike_counts[k].sum()) - int(v.sum())) / max(1, int(v.sum())))
                    for k, v in refres.spike_counts.items()},
                "spikes_identical": all(np.array_equal(o.spike_counts[k], v) for k, v in refres.spike_counts.items()),
            }

    doc = {
        "benchmark": "onnx_throughput",
        "model": source,
        "frames": data_source,
        "calibration_frames": calib_source,
        "variants": {
            "onnxruntime_int8": "default int8: int8 per-channel weights, spikes on an exact uint8 grid, synapse "
                                "outputs (currents) float; onnxruntime folds the weights' DequantizeLinear at load",
            "onnxruntime_int8_quantized_currents": "quantize_currents=True: synapse outputs uint8 too, so "
                                                   "onnxruntime runs QLinearConv / QGemm integer kernels",
            "onnxruntime_fp32_sequence": "the fp32 step graph in a Scan over time: one call per batch"},
        "samples": int(N), "time_steps": int(T), "batch": args.batch, "calibration_samples": len(calib),
        "results": results,
        "model_size_bytes": sizes,
        "int8": {"quantized_nodes": report["quantized_nodes"], "currents_quantized": report["currents_quantized"],
                 "export_seconds": quant_s},
        "fp32_export_seconds": export_s,
        "parity_vs_reference": parity,
        "machine": machine_info(torch_threads=torch.get_num_threads(),
                                onnxruntime_threads=args.threads or "default (all cores)",
                                onnxruntime=ort.__version__),
        "date": now(),
    }
    write_json(args.out, doc)
    print(json.dumps({k: doc[k] for k in ("model", "frames", "results", "model_size_bytes", "parity_vs_reference")},
                     indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
