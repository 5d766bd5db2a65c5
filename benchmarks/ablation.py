"""The paper's ablation: supervised from scratch vs NeuroMoCo pre-training with lambda = 1, 0 and 0.5.

Rows: supervised training from scratch; pre-training with InfoNCE on the time-averaged features (lambda = 1),
the per-step loss only (lambda = 0) and MixInfoNCE (lambda = 0.5), each followed by a linear probe and by
fine-tuning (``train finetune``'s default recipe). Columns: 1 %, 10 % and 100 % of the train labels
(class-balanced, seeded). Each cell is the last epoch's test top-1 (no selection on the test split), mean +- std
over ``--seeds`` (a seed fixes pre-training, label subset and initialisation alike). Writes
``benchmarks/results/ablation_<dataset>.json``.

Every cell is a real ``train`` command run in this process, its output in ``RUNS/logs/``. The JSON is rewritten
(atomically) after each finished cell, so an interrupted run started again with the same settings continues
where it stopped; pre-training checkpoints stay in ``--runs``. The defaults are sized for 2 CPU cores in under
an hour on embedded-mnist; on a GPU, larger settings and ``--device cuda`` run it on DVS128 Gesture:

    python benchmarks/ablation.py                                   # embedded-mnist, the defaults below
    python benchmarks/ablation.py --quick                           # plumbing check (CI): seconds, not a result
    python benchmarks/ablation.py --dataset dvsgesture --model cnn5-128 -T 16 --pretrain-epochs 100 \\
        --finetune-epochs 100,60,30 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")

from bench_common import RESULTS, ROOT, machine_info, now

from neuromoco.io import atomic_write_json

VARIANTS = {"infonce_mean": 1.0, "per_step": 0.0, "mix": 0.5}  # pre-training variant -> MixInfoNCE lambda
METHODS = ("linear", "finetune")
QUICK = {"time_steps": 2, "pretrain_epochs": 1, "finetune_epochs": "1,1,1", "linear_epochs": 3,
         "fractions": "0.25,0.5,1.0", "seeds": 2, "batch_sizes": "2,4,4", "max_samples": 16, "queue_size": 8, 
         "pretrain_batch_size": 8}


def parse_list(text: str, kind: type = float) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def settings_of(a: argparse.Namespace) -> dict[str, Any]:
    """What the figures depend on: a run resumes only into a JSON with the same settings."""
    return {"dataset": a.dataset, "model": a.model, "time_steps": a.time_steps, "fractions": a.fractions,
            "seeds": list(range(a.seeds)), "pretrain_epochs": a.pretrain_epochs,
            "pretrain_batch_size": a.pretrain_batch_size, "queue_size": a.queue_size, "momentum": 0.99,
            "finetune_epochs": a.finetune_epochs, "linear_epochs": a.linear_epochs, "batch_sizes": a.batch_sizes,
            "max_samples": a.max_samples, "quick": a.quick, "variants": VARIANTS,
            "finetune_recipe": finetune_recipe(),
            "downstream_recipe": "train finetune's defaults (docs/training.md, Fine-tuning recipe); train linear "
                                 "--lr 1e-2; train supervised --lr 1e-3; test split evaluated after the last "
                                 "epoch only"}


def finetune_recipe() -> dict[str, Any]:
    """``train finetune``'s default recipe, as this run uses it."""
    from neuromoco.train.engine.modes import MODES

    m = MODES["finetune"]
    return {"backbone_lr_scale": m.backbone_lr_scale, "head_warmup_epochs": m.head_warmup_epochs,
            "head_warmup_lr": 1e-2, "freeze_bn": m.freeze_bn, "warmup_epochs": m.warmup_epochs}


SIZING = ("defaults sized for 2 CPU cores: T = 4 (not 16), the full 4,500-sample train split, 2 pre-training "
          "epochs (140 steps of batch 64), fine-tuning 30/10/2 epochs at 1/10/100 % labels, test split evaluated "
          "once after the last epoch; about 30 min on 2 quiet cores with --threads 1, hours on a loaded machine "
          "(it resumes). Short pre-training: the figures compare variants at equal, small budgets, not the "
          "paper's accuracy")


class Cells:
    """The result JSON: finished cells by key, written atomically after each."""

    def __init__(self, path: Path, settings: dict[str, Any], fresh: bool) -> None:
        self.path, self.settings = path, settings
        sizing = "--quick: a plumbing check, the figures mean nothing" if settings["quick"] else SIZING
        self.doc: dict[str, Any] = {"benchmark": "ablation", "settings": settings, "sizing": sizing, "cells": {}}
        if path.exists() and not fresh:
            old = json.loads(path.read_text())
            if old.get("settings") == settings:
                self.doc = {**old, "sizing": sizing}
                print(f"resuming {path}: {len(old['cells'])} cells done", file=sys.stderr)
            else:
                raise SystemExit(f"{path} holds a run with other settings: pass --fresh to start over, or --out")

    def get(self, key: str) -> dict[str, Any] | None:
        return self.doc["cells"].get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.doc["cells"][key] = value
        self.write()

    def write(self, **extra: Any) -> None:
        self.doc.update(extra)
        atomic_write_json(self.path, self.doc)


def run_train(argv: list[str], log: Path) -> float:
    """One ``train`` command in this process, its stderr and stdout to ``log``; returns wall seconds."""
    from neuromoco.train.cli import main as train

    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as f, contextlib.redirect_stderr(f), contextlib.redirect_stdout(f):
        print("train " + " ".join(argv), flush=True)
        rc = train(argv)
    if rc == 130:
        raise KeyboardInterrupt
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-6:])
        raise SystemExit(f"train {' '.join(argv)} failed (rc {rc}); {log}:\n{tail}")
    return time.perf_counter() - t0


def accuracy(run_dir: Path) -> dict[str, Any]:
    acc = json.loads((run_dir / "accuracy.json").read_text())
    return {"top1": acc["last"]["top1"], "top1_best": acc["best"]["top1"], "train_samples": acc["train_samples"],
            "test_samples": acc["test_samples"]}


def plan(a: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """Every cell, seed by seed (an interrupted run has whole seeds first): (key, what it runs)."""
    cells = []
    for seed in range(a.seeds):
        for fi, frac in enumerate(a.fractions):
            cells.append((f"supervised/{frac:g}/seed{seed}", {"method": "supervised", "seed": seed, "fi": fi}))
        for variant in VARIANTS:
            cells.append((f"pretrain/{variant}/seed{seed}", {"method": "pretrain", "seed": seed, "variant": variant}))
            for fi, frac in enumerate(a.fractions):
                for method in METHODS:
                    cells.append((f"{variant}/{method}/{frac:g}/seed{seed}",
                                  {"method": method, "seed": seed, "variant": variant, "fi": fi}))
    return cells


def run_cell(a: argparse.Namespace, key: str, cell: dict[str, Any], runs: Path) -> dict[str, Any]:
    seed, method = cell["seed"], cell["method"]
    common = ["--seed", str(seed), "--device", a.device, "--overwrite"]
    data = ["--dataset", a.dataset, "-T", str(a.time_steps)] + (["--data-root", a.data_root] if a.data_root else [])
    data += ["--max-samples", str(a.max_samples)] if a.max_samples else []
    out = runs / key.replace("/", "_")
    if method == "pretrain":
        argv = ["pretrain", *data, "--model", a.model, "--epochs", str(a.pretrain_epochs), "--batch-size",
                str(a.pretrain_batch_size), "--queue-size", str(a.queue_size), "--momentum", "0.99",
                "--mix-lambda", str(VARIANTS[cell["variant"]]), "--out", str(out), *common]
        wall = run_train(argv, runs / "logs" / f"{out.name}.log")
        hist = json.loads((out / "pretrain.json").read_text())["history"]
        return {"checkpoint": str(out / "last.pt"), "final_loss": hist[-1]["loss"], "wall_s": round(wall, 1),
                "command": "train " + " ".join(argv)}
    fi = cell["fi"]
    frac, batch = a.fractions[fi], a.batch_sizes[fi]
    down = ["--label-fraction", str(frac), "--batch-size", str(batch), "--no-export", "--out", str(out), *common]
    if method == "supervised":
        epochs = a.finetune_epochs[fi]
        argv = ["supervised", *data, "--model", a.model, "--epochs", str(epochs), "--eval-every", str(epochs),
                "--lr", "1e-3", *down]
    else:
        pre = pretrained(a, cell, runs)
        epochs = a.linear_epochs if method == "linear" else a.finetune_epochs[fi]
        lr = "1e-2" if method == "linear" else "1e-3"
        argv = [method, "--pretrained", pre, *data, "--epochs", str(epochs),
                "--eval-every", str(epochs), "--lr", lr, *down]
    wall = run_train(argv, runs / "logs" / f"{out.name}.log")
    return {**accuracy(out), "wall_s": round(wall, 1), "command": "train " + " ".join(argv)}


def pretrained(a: argparse.Namespace, cell: dict[str, Any], runs: Path) -> str:
    """The pre-training checkpoint of this cell's (variant, seed), (re)made when missing."""
    key = f"pretrain/{cell['variant']}/seed{cell['seed']}"
    done = CELLS.get(key)
    if done is None or not Path(done["checkpoint"]).exists():
        if done is not None:
            say(key, f"running pre-training again: {done['checkpoint']} is gone")
        CELLS.put(key, run_cell(a, key, {"method": "pretrain", "seed": cell["seed"], "variant": cell["variant"]},
                                runs))
    return CELLS.get(key)["checkpoint"]


def say(key: str, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {key}: {text}", flush=True)


def summarise(a: argparse.Namespace, cells: dict[str, Any]) -> dict[str, Any]:
    """``table[row][fraction] = {mean, std, n, values}``; rows ``supervised`` and ``<variant>/<method>``."""
    rows = ["supervised"] + [f"{v}/{m}" for v in VARIANTS for m in METHODS]
    table: dict[str, Any] = {}
    for row in rows:
        table[row] = {}
        for frac in a.fractions:
            vals = [cells[k]["top1"] for s in range(a.seeds) if (k := f"{row}/{frac:g}/seed{s}") in cells]
            table[row][f"{frac:g}"] = stats(vals)
    return table


def stats(vals: list[float]) -> dict[str, Any]:
    n = len(vals)
    mean = sum(vals) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None  # sample std
    return {"mean": mean, "std": std, "n": n, "values": vals}


def comparisons(a: argparse.Namespace, table: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean differences against seed noise: each pre-trained row vs supervised, and the mix vs each lambda.

    ``within_noise``: |difference| < the larger of the two rows' std (a rule of thumb, not a test)."""
    pairs = [(f"{v}/{m}", "supervised") for v in VARIANTS for m in METHODS]
    pairs += [(f"mix/{m}", f"{v}/{m}") for m in METHODS for v in VARIANTS if v != "mix"]
    out = []
    for row, ref in pairs:
        for frac in a.fractions:
            x, y = table[row][f"{frac:g}"], table[ref][f"{frac:g}"]
            if x["n"] < 2 or y["n"] < 2:
                continue
            diff = x["mean"] - y["mean"]
            noise = max(x["std"], y["std"])
            out.append({"row": row, "vs": ref, "fraction": frac, "diff": diff, "noise_std": noise,
                        "within_noise": abs(diff) < noise})
    return out


def markdown(a: argparse.Namespace, table: dict[str, Any]) -> str:
    head = "| | " + " | ".join(f"{f * 100:g} % labels" for f in a.fractions) + " |"
    lines = [head, "|---|" + "---|" * len(a.fractions)]
    for row, cols in table.items():
        cells = []
        for frac in a.fractions:
            s = cols[f"{frac:g}"]
            cells.append("—" if not s["n"] else f"{s['mean'] * 100:.1f} ± {(s['std'] or 0) * 100:.1f}"
                         + ("" if s["n"] == a.seeds else f" (n={s['n']})"))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CELLS: Cells


def main(argv: list[str] | None = None) -> int:
    global CELLS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="embedded-mnist",
                   help="any dataset `train data` lists (default embedded-mnist)")
    p.add_argument("--data-root", default=None, help="as train's --data-root")
    p.add_argument("--model", default="cnn3-34", help="architecture (default cnn3-34)")
    p.add_argument("--time-steps", "-T", type=int, default=4, help="frames per sample (default 4)")
    p.add_argument("--pretrain-epochs", type=int, default=2, help="pre-training epochs (default 2)")
    p.add_argument("--pretrain-batch-size", type=int, default=64, help="default 64")
    p.add_argument("--queue-size", type=int, default=2048, help="MoCo queue (default 2048)")
    p.add_argument("--finetune-epochs", default="30,10,2",
                   help="fine-tuning and supervised epochs per label fraction (default 30,10,2)")
    p.add_argument("--linear-epochs", type=int, default=100, help="linear-probe epochs (default 100)")
    p.add_argument("--fractions", default="0.01,0.1,1.0", help="label fractions (default 0.01,0.1,1.0)")
    p.add_argument("--batch-sizes", default="8,16,32", help="downstream batch size per fraction (default 8,16,32)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--max-samples", type=int, default=None, help="as train's --max-samples (smoke runs)")
    p.add_argument("--device", default="auto", help="as train's --device (auto, cpu, cuda)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: torch's own; 1 on a shared, loaded CPU: ten times faster)")
    p.add_argument("--quick", action="store_true",
                   help="CI-sized plumbing check: T=2, 16 samples, 1 epoch, 2 seeds (figures mean nothing)")
    p.add_argument("--runs", default=None, help="run directories (default runs/ablation_<dataset>[_quick])")
    p.add_argument("--out", default=None, help="result JSON (default benchmarks/results/ablation_<dataset>.json)")
    p.add_argument("--fresh", action="store_true", help="start over even if --out holds finished cells")
    p.add_argument("--summary", action="store_true", help="run nothing: the table of the cells finished so far")
    a = p.parse_args(argv)
    if a.quick:
        for k, v in QUICK.items():
            setattr(a, k, v)
    a.fractions = parse_list(str(a.fractions))
    a.finetune_epochs = parse_list(str(a.finetune_epochs), int)
    a.batch_sizes = parse_list(str(a.batch_sizes), int)
    if not len(a.fractions) == len(a.finetune_epochs) == len(a.batch_sizes):
        p.error("--fractions, --finetune-epochs and --batch-sizes need one value each per fraction")
    name = Path(a.dataset).name.replace(":", "_") + ("_quick" if a.quick else "")
    runs = Path(a.runs or ROOT / "runs" / f"ablation_{name}")
    out = Path(a.out or RESULTS / f"ablation_{name}.json")
    CELLS = Cells(out, settings_of(a), a.fresh)
    import torch

    threads = torch.get_num_threads()
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        run_all(a, runs, out)
    finally:
        torch.set_num_threads(threads)
    return 0


def run_all(a: argparse.Namespace, runs: Path, out: Path) -> None:
    import torch

    todo = plan(a)
    t0 = time.perf_counter()
    for i, (key, cell) in enumerate(todo, 1):
        if CELLS.get(key) is not None or a.summary:
            continue
        if cell["method"] == "pretrain":
            pretrained(a, cell, runs)
            res = CELLS.get(key)
            say(f"{i}/{len(todo)} {key}", f"loss {res['final_loss']:.4f}, {res['wall_s']:.0f} s")
            continue
        res = run_cell(a, key, cell, runs)
        CELLS.put(key, res)
        table = summarise(a, CELLS.doc["cells"])  # the table so far: a partial run says how far it got
        CELLS.write(table=table, markdown=markdown(a, table), complete=False)
        say(f"{i}/{len(todo)} {key}", f"top-1 {res['top1']:.4f}, {res['wall_s']:.0f} s")
    table = summarise(a, CELLS.doc["cells"])
    CELLS.write(table=table, comparisons=comparisons(a, table), markdown=markdown(a, table),
                complete=all(CELLS.get(k) is not None for k, _ in todo),
                **({} if a.summary else {"last_wall_s": round(time.perf_counter() - t0, 1)}), date=now(),
                machine=machine_info(torch_threads=torch.get_num_threads(),
                                     note="shared machine: other processes ran alongside"))
    print(markdown(a, table))
    done = sum(CELLS.get(k) is not None for k, _ in todo)
    print(f"{done}/{len(todo)} cells done; wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
