"""What keeping freed memory (``neuromoco.train.engine.allocator``) does to a CPU training step: time and peak RSS.

glibc's mallopt can only be set for a whole process, so every case runs in a fresh subprocess: build the model
(registry name), one intra-op thread, a seeded Poisson batch ``[T=8, B, 2, 34, 34]``, AdamW as the train commands
build it; 2 warm-up steps, then the median CPU time of ``--steps`` training steps, and the process's peak RSS
(VmHWM). Cases: each model x LIF implementation x batch size, with the allocator left alone (``default``) and
kept (``keep``, what the train commands set on CPU), the two interleaved ``--repeats`` times. Writes
``benchmarks/results/allocator.json``; about five minutes with the defaults.

    python benchmarks/allocator.py [--models cnn3-34,sew-resnet8-34] [--impls native,fused] [--batches 32,128]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, machine_info, now, write_json

CASE = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
name, impl, mode, batch, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if mode == "keep":
    from neuromoco.train.engine.allocator import keep_freed_memory
    keep_freed_memory()
from neuromoco.train.engine.loops import build_optimizer
from neuromoco.train.models.neurons import set_lif_impl
from neuromoco.train.models.registry import build_classifier
g = torch.Generator().manual_seed(0)
x = torch.poisson(torch.full((8, batch, 2, 34, 34), 0.1), generator=g)
y = torch.randint(0, 10, (batch,), generator=g)
model = build_classifier(name, (2, 34, 34), 10)
set_lif_impl(model, impl)
opt = build_optimizer(model.parameters(), "adamw", 1e-3, 1e-4)
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(2):
    step()
times = []
for _ in range(steps):
    t = time.process_time()
    step()
    times.append(time.process_time() - t)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"step_cpu_ms": 1e3 * statistics.median(times), "peak_rss_mib": hwm / 1024}))
"""


def run_case(model: str, impl: str, mode: str, batch: int, steps: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE, model, impl, mode, str(batch), str(steps)],
                          capture_output=True, text=True, timeout=900, env={**_env(), "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{model} {impl} {mode} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("NEUROMOCO_KEEP_FREED_MEMORY", None)
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn3-34,sew-resnet8-34",
                    help="registry names (default cnn3-34,sew-resnet8-34)")
    ap.add_argument("--impls", default="native,fused", help="--lif-impl values (default native,fused)")
    ap.add_argument("--batches", default="32,128", help="batch sizes (default 32,128)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per case (default 8)")
    ap.add_argument("--repeats", type=int, default=2, help="fresh processes per case (default 2)")
    ap.add_argument("--out", default=str(RESULTS / "allocator.json"))
    args = ap.parse_args(argv)
    cases: dict[str, dict[str, list[dict]]] = {}
    batches = [int(b) for b in args.batches.split(",")]
    for model, impl, batch in itertools.product(args.models.split(","), args.impls.split(","), batches):
        key = f"{model} {impl} batch {batch}"
        cases[key] = {"default": [], "keep": []}
        for r in range(args.repeats):
            for mode in (("default", "keep") if r % 2 == 0 else ("keep", "default")):
                cases[key][mode].append(run_case(model, impl, mode, batch, args.steps))
        d, k = (statistics.median(c["step_cpu_ms"] for c in cases[key][m]) for m in ("default", "keep"))
        print(f"{key}: default {d:.1f} ms, keep {k:.1f} ms per step (x{d / k:.2f}); peak RSS MiB default "
              f"{[round(c['peak_rss_mib']) for c in cases[key]['default']]}, keep "
              f"{[round(c['peak_rss_mib']) for c in cases[key]['keep']]}", flush=True)
    summary = {key: {m: {"step_cpu_ms_median": statistics.median(c["step_cpu_ms"] for c in runs),
                         "peak_rss_mib": [round(c["peak_rss_mib"], 1) for c in runs],
                         "step_cpu_ms": [round(c["step_cpu_ms"], 1) for c in runs]} for m, runs in v.items()}
               for key, v in cases.items()}
    for v in summary.values():
        v["speedup_keep_over_default"] = v["default"]["step_cpu_ms_median"] / v["keep"]["step_cpu_ms_median"]
    write_json(args.out, {
        "benchmark": "allocator", "what": __doc__.splitlines()[0],
        "command": "python benchmarks/allocator.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "batches": batches, "time_steps": 8, "steps": args.steps, "repeats": args.repeats, "cases": summary,
        "machine": machine_info(torch_threads=1), "date": now()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
