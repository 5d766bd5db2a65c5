"""Loihi 2 fixed-point quantization loss of the embedded cnn3-34, with and without QAT, per-neuron and per-layer.

From one NeuroMoCo pre-training, three fine-tunings with the same seed and epochs: plain, ``--qat loihi``
with per-neuron scales and ``--qat loihi --qat-scale layer`` (one scale per layer: Lava's stock
``LIFReset``). Each model is judged as ``deploy parity --targets reference-fixed`` would judge it, over the
embedded train + test splits (1,797 samples): the bit-exact fixed-point emulator against the float
reference, with per-neuron (``-o scale=neuron``) and per-layer (``-o scale=layer``) scales. Recorded per
cell: prediction agreement with its 95 % Wilson interval, fixed-point and float accuracy, the worst
layer's relative spike-count difference and the largest relative weight error of the plan.

Every stage is the real command (``train pretrain``, ``train finetune``, ``deploy parity``) in its own
process; finished stages are kept in the work folder, so an interrupted run resumes.

    python benchmarks/quantization_loss.py                        # ~10 min on 2 quiet cores
    python benchmarks/quantization_loss.py --pretrained runs/demo/pretrain/last.pt   # reuse a pre-training

Writes ``benchmarks/results/quantization_loss.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, machine_info, now, write_json

RESULT = RESULTS / "quantization_loss.json"
#: the fine-tunings compared: name -> extra ``train finetune`` flags
VARIANTS = {"plain": [], "qat-neuron": ["--qat", "loihi", "--qat-scale", "neuron"],
            "qat-layer": ["--qat", "loihi", "--qat-scale", "layer"]}
SCALES = ("neuron", "layer")


def run(name: str, argv: list[str], log_dir: Path) -> float:
    """Run one command (``python -m neuromoco.<module> ...``) to completion; its wall time in seconds."""
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with (log_dir / f"{name}.log").open("w") as log:
        rc = subprocess.call([sys.executable, "-m", *argv], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, "TQDM_DISABLE": "1"})
    if rc not in (0, 1):  # deploy parity exits 1 when a tolerance fails: that is a result, not an error
        tail = (log_dir / f"{name}.log").read_text().splitlines()[-5:]
        raise SystemExit(f"{name} failed (rc {rc}):\n" + "\n".join(tail))
    wall = time.perf_counter() - t0
    print(f"{name}: {wall:.0f} s", file=sys.stderr)
    return wall


def cell(parity_json: Path) -> dict:
    """The reference-fixed quantization-loss entry of a ``deploy parity`` report, in this benchmark's terms."""
    report = json.loads(parity_json.read_text())
    entry = next(t for t in report["targets"].values() if t.get("role") == "quantization loss"
                 or t.get("compared_with", "").startswith("reference"))
    m = entry["metrics"]
    return {"status": entry["status"], "samples": m["samples"], "agreement": m["agreement"],
            "agreement_ci95": m.get("agreement_ci95"), "accuracy_fixed": m["accuracy_target"],
            "accuracy_float": m["accuracy_reference"],
            "accuracy_drop": m["accuracy_reference"] - m["accuracy_target"],
            "worst_layer_count_rel_diff": max(v["rel_diff"] for v in m["layers"].values()),
            "rate_cosine_min": min(v.get("rate_cosine", 1.0) for v in m["layers"].values())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/bench-quantization-loss", help="folder for the runs (resumable)")
    p.add_argument("--pretrained", help="an existing pre-training checkpoint (skips the pre-training)")
    p.add_argument("--time-steps", type=int, default=8)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=6)
    p.add_argument("--split", default="train,test", help="what the quantization loss is measured on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULT))
    args = p.parse_args(argv)

    work = (ROOT / args.work).resolve()
    logs = work / "logs"
    T = str(args.time_steps)
    seconds: dict[str, float] = {}
    pretrained = Path(args.pretrained).resolve() if args.pretrained else work / "pretrain" / "last.pt"
    if not args.pretrained and not (work / "pretrain" / "done").exists():
        seconds["pretrain"] = run("pretrain", [
            "neuromoco.train.cli", "pretrain", "--dataset", "embedded", "--model", "cnn3-34", "--time-steps", T,
            "--epochs", str(args.pretrain_epochs), "--batch-size", "64", "--queue-size", "1024", "--momentum",
            "0.99", "--seed", str(args.seed), "--out", str(work / "pretrain"),
            *(["--resume"] if (work / "pretrain" / "last.pt").exists() else [])], logs)
        (work / "pretrain" / "done").write_text("")
    cells: dict[str, dict] = {}
    for variant, flags in VARIANTS.items():
        run_dir = work / variant
        if not (run_dir / "model.nir").exists():
            seconds[f"finetune {variant}"] = run(f"finetune-{variant}", [
                "neuromoco.train.cli", "finetune", "--pretrained", str(pretrained), "--dataset", "embedded",
                "--time-steps", T, "--epochs", str(args.finetune_epochs), "--label-fraction", "1.0",
                "--seed", str(args.seed), *flags, "--out", str(run_dir),
                *(["--resume"] if (run_dir / "last.pt").exists() else [])], logs)
        for scale in SCALES:
            out = work / f"parity-{variant}-{scale}"
            if not (out / "parity.json").exists():
                seconds[f"parity {variant} {scale}"] = run(f"parity-{variant}-{scale}", [
                    "neuromoco.deploy.cli", "parity", str(run_dir / "model.nir"), "--targets", "reference-fixed",
                    "--dataset", "embedded", "--split", args.split, "-o", f"scale={scale}", "--no-progress",
                    "--out", str(out)], logs)
            cells[f"{variant} / scale={scale}"] = cell(out / "parity.json")
            acc = json.loads((run_dir / "accuracy.json").read_text())
            cells[f"{variant} / scale={scale}"]["finetune_test_top1"] = acc["last"]["top1"]
    result = {
        "benchmark": "quantization_loss", "date": now(), "machine": machine_info(),
        "setup": {"model": "cnn3-34", "dataset": "embedded", "split": args.split, "time_steps": args.time_steps,
                  "pretrain_epochs": args.pretrain_epochs, "finetune_epochs": args.finetune_epochs,
                  "seed": args.seed, "pretrained": str(pretrained), "target": "reference-fixed (bit-exact with "
                  "lava-fixed) against the float32 reference"},
        "cells": cells, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "goal": "with QAT: agreement >= 0.997 and no accuracy drop (issue 13)",
    }
    write_json(args.out, result)
    for name, c in cells.items():
        print(f"{name:28s} agreement {c['agreement']:.4f} {c['agreement_ci95']}  fixed {c['accuracy_fixed']:.4f} "
              f"float {c['accuracy_float']:.4f}  worst layer {c['worst_layer_count_rel_diff']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
