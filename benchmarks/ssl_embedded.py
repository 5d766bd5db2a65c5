"""NeuroMoCo pre-training, linear probe and fine-tuning at 10% labels vs supervised from scratch (embedded data).

Pre-train on the embedded dataset, then linear probe and fine-tune at 10% labels, against supervised training
from scratch at 10% labels. Writes ``benchmarks/results/ssl_embedded.json``.

Each stage runs as its own ``train`` process (the real commands), so its peak resident memory is its own
(``os.wait4`` rusage ``ru_maxrss``). Throughput is the commands' training samples/s (data loading included).
The machine is shared: the load average before and after is recorded beside the figures.

    python benchmarks/ssl_embedded.py                    # the defaults below: 95 s on 2 quiet cores, 10 min loaded
    python benchmarks/ssl_embedded.py --pretrain-epochs 2 --finetune-epochs 3   # a quick look
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

RESULT = RESULTS / "ssl_embedded.json"


def run_stage(name: str, argv: list[str], log_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "neuromoco.train.cli", *argv]
    log = (log_dir / f"{name}.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    log.close()
    if rc != 0:
        tail = (log_dir / f"{name}.log").read_text().splitlines()[-5:]
        raise SystemExit(f"stage {name} failed (rc {rc}):\n" + "\n".join(tail))
    print(f"{name}: {wall:.0f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB", file=sys.stderr)
    return {"command": "train " + " ".join(argv), "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn3-34")
    p.add_argument("--time-steps", type=int, default=8)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--linear-epochs", type=int, default=100)
    p.add_argument("--label-fraction", type=float, default=0.1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench_ssl_embedded"))
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULT))
    a = p.parse_args(argv)
    runs = Path(a.runs)
    runs.mkdir(parents=True, exist_ok=True)
    common = ["--seed", str(a.seed), "--overwrite", "--no-export"]
    data = ["--data-root", a.data_root] if a.data_root else []
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    stages = {}
    stages["pretrain"] = run_stage("pretrain", ["pretrain", "--dataset", "embedded", "--model", a.model, *data,
                                                "-T", str(a.time_steps), "--epochs", str(a.pretrain_epochs),
                                                "--batch-size", "64", "--queue-size", "1024", "--momentum", "0.99",
                                                "--temperature", "0.2", "--mix-lambda", "0.5", "--lr", "1e-3",
                                                "--out", str(runs / "pretrain"), "--seed", str(a.seed), "--overwrite"],
                                   runs)
    pre = str(runs / "pretrain" / "last.pt")
    down = ["--label-fraction", str(a.label_fraction), "--batch-size", "16", *data, *common]
    stages["linear"] = run_stage("linear", ["linear", "--pretrained", pre, "--epochs", str(a.linear_epochs),
                                            "--lr", "1e-2", "--out", str(runs / "linear"), *down], runs)
    stages["finetune"] = run_stage("finetune", ["finetune", "--pretrained", pre, "--epochs", str(a.finetune_epochs),
                                                "--lr", "1e-3", "--out", str(runs / "finetune"), *down], runs)
    stages["supervised"] = run_stage("supervised", ["supervised", "--dataset", "embedded", "--model", a.model,
                                                    "-T", str(a.time_steps), "--epochs", str(a.finetune_epochs),
                                                    "--lr", "1e-3", "--out", str(runs / "supervised"), *down], runs)
    pre_summary = json.loads((runs / "pretrain" / "pretrain.json").read_text())
    hist = pre_summary["history"]
    stages["pretrain"].update(
        samples_per_s=round(sum(h["samples_per_s"] for h in hist) / len(hist), 1),
        samples_per_s_best_epoch=round(max(h["samples_per_s"] for h in hist), 1),
        final_loss=round(hist[-1]["loss"], 4), final_contrastive_acc=round(hist[-1]["acc"], 4),
        loss_curve=[round(h["loss"], 4) for h in hist])
    for name in ("linear", "finetune", "supervised"):
        acc = json.loads((runs / name / "accuracy.json").read_text())
        stages[name].update(test_top1_last=acc["last"]["top1"], test_top1_best=acc["best"]["top1"],
                            best_epoch=acc["best"]["epoch"], train_samples=acc["train_samples"],
                            test_samples=acc["test_samples"],
                            samples_per_s=round(acc["train_samples_per_s"], 1) if acc["train_samples_per_s"] else None)
    stages["linear"]["note"] = ("the probe trains on cached time-averaged features; its samples/s is the head's, "
                                "not the encoder's")
    result = {
        "benchmark": "ssl_embedded", "dataset": "embedded (34x34, 2 polarities, 10 classes)",
        "model": a.model, "time_steps": a.time_steps, "label_fraction": a.label_fraction,
        "settings": {"pretrain_epochs": a.pretrain_epochs, "finetune_epochs": a.finetune_epochs,
                     "linear_epochs": a.linear_epochs, "pretrain_batch": 64, "queue_size": 1024, "momentum": 0.99,
                     "temperature": 0.2, "mix_lambda": 0.5, "optimizer": "adamw", "seed": a.seed},
        "accuracy_test_top1": {k: {"last": stages[k]["test_top1_last"], "best": stages[k]["test_top1_best"]}
                               for k in ("linear", "finetune", "supervised")},
        "stages": stages, "total_wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine_info(loadavg_before=[round(v, 2) for v in load_before],
                                note="shared machine: other processes ran alongside; throughput is what this run got"),
        "date": now(),
    }
    out = write_json(a.out, result)
    print(json.dumps(result["accuracy_test_top1"], indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
