"""Which fine-tuning recipe keeps what pre-training learned: candidates against the linear probe, same checkpoint.

For each label fraction, the linear probe (``train linear``) and ``train finetune`` under each candidate recipe
(the options of docs/training.md "Fine-tuning recipe") start from one pre-training checkpoint; each cell is the
last epoch's test top-1. Writes ``benchmarks/results/finetune_recipe_<dataset>.json``, rewritten after every
cell (an interrupted run continues). This is what chose ``train finetune``'s defaults:

    train pretrain --dataset embedded -T 8 --epochs 10 --batch-size 64 --queue-size 1024 --momentum 0.99 --out PRE
    python benchmarks/finetune_recipe.py --pretrained PRE/last.pt --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablation import accuracy, parse_list, run_train, stats
from bench_common import RESULTS, ROOT, machine_info, now

from neuromoco.io import atomic_write_json


def recipe(scale: float, lp: int, bn: bool, warmup: float = 0.0) -> list[str]:
    return ["--backbone-lr-scale", f"{scale:g}", "--head-warmup-epochs", str(lp),
            "--freeze-bn" if bn else "--no-freeze-bn", "--warmup-epochs", f"{warmup:g}"]


CANDIDATES = {
    "old": recipe(1, 0, False),  # everything at --lr from the first step (the recipe before this study)
    "lr0.1": recipe(0.1, 0, False),  # the encoder at a tenth of the readout's lr
    "bn": recipe(1, 0, True),  # the encoder's BatchNorm statistics kept
    "lp": recipe(1, 100, False),  # LP-FT: the readout first trained alone (100 probe epochs), then all
    "lp+lr0.1": recipe(0.1, 100, False),
    "lp+lr0.3": recipe(0.3, 100, False),
    "lp+bn": recipe(1, 100, True),
    "lp+lr0.1+bn": recipe(0.1, 100, True),
    "lr0.1+warm": recipe(0.1, 0, False, 1.0),  # one epoch of linear lr warm-up
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained", required=True, help="a `train pretrain` checkpoint")
    p.add_argument("--fractions", default="0.01,0.1,1.0")
    p.add_argument("--epochs", default="40,20,5", help="fine-tuning epochs per fraction (default 40,20,5)")
    p.add_argument("--batch-sizes", default="8,16,32", help="per fraction (default 8,16,32)")
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="which (default all)")
    p.add_argument("--full-fraction-candidates", default=None,
                   help="candidates run at fraction 1.0 (default all; 100 %% labels is the expensive column)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (label subset and initialisation)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's own)")
    p.add_argument("--runs", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    pre = json.loads(json.dumps(torch.load(a.pretrained, map_location="cpu", weights_only=False)["data"],
                                default=str))
    name = pre["dataset"]
    out = Path(a.out or RESULTS / f"finetune_recipe_{name}.json")
    runs = Path(a.runs or ROOT / "runs" / f"finetune_recipe_{name}")
    fracs, epochs, batches = parse_list(a.fractions), parse_list(a.epochs, int), parse_list(a.batch_sizes, int)
    cands = a.candidates.split(",")
    full = a.full_fraction_candidates.split(",") if a.full_fraction_candidates else cands
    doc = json.loads(out.read_text()) if out.exists() else {}
    if doc.get("pretrained") != a.pretrained:
        doc = {"benchmark": "finetune_recipe", "pretrained": a.pretrained, "pretrain_data": pre, "cells": {}}
    doc["candidates"] = {c: CANDIDATES[c] for c in cands}
    cells = doc["cells"]
    for seed in range(a.seeds):
        for frac, ep, bs in zip(fracs, epochs, batches, strict=False):
            common = ["--pretrained", a.pretrained, "--label-fraction", str(frac), "--batch-size", str(bs),
                      "--seed", str(seed), "--no-export", "--overwrite"]
            jobs = [("linear", ["linear", *common, "--epochs", "100", "--eval-every", "100", "--lr", "1e-2"])]
            jobs += [(c, ["finetune", *common, "--epochs", str(ep), "--eval-every", str(ep), "--lr", "1e-3",
                          *CANDIDATES[c]]) for c in cands if frac < 1.0 or c in full]
            for method, argv_ in jobs:
                key = f"{method}/{frac:g}/seed{seed}"
                if key in cells:
                    continue
                run_dir = runs / key.replace("/", "_")
                wall = run_train([*argv_, "--out", str(run_dir)], runs / "logs" / f"{run_dir.name}.log")
                cells[key] = {**accuracy(run_dir), "wall_s": round(wall, 1), "command": "train " + " ".join(argv_)}
                print(f"[{time.strftime('%H:%M:%S')}] {key}: top-1 {cells[key]['top1']:.4f} ({wall:.0f} s)",
                      flush=True)
                atomic_write_json(out, doc)
    rows = ["linear", *cands]
    doc["table"] = {r: {f"{f:g}": stats([cells[k]["top1"] for s in range(a.seeds)
                                         if (k := f"{r}/{f:g}/seed{s}") in cells]) for f in fracs} for r in rows}
    doc["date"] = now()
    doc["machine"] = machine_info(torch_threads=torch.get_num_threads(),
                                  note="shared machine: other processes ran alongside")
    atomic_write_json(out, doc)
    for r in rows:
        print(f"{r:14s} " + "  ".join(f"{f:g}: " + (f"{s['mean']:.4f}" if s["n"] else "  -   ")
                                      for f, s in ((f, doc["table"][r][f"{f:g}"]) for f in fracs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
