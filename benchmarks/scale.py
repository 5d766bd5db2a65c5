"""The 128x128 backbones through every deploy target: export time, memory, plan size, samples/s, agreement.

For ``cnn5-128`` and ``sew-resnet18-128`` (the paper's SEW-ResNet-18 layout, 11.2M parameters) at 2x128x128,
T = 16, the script drives the real command lines and measures each step in its own process:

* ``deploy export --target lava --precision fixed`` and ``--precision float``: wall time, peak memory, the
  plan's size on disk (every file ``deploy export`` wrote);
* ``deploy run --target T --dataset frames.npz`` for ``reference``, ``reference-fixed`` and ``onnx`` on
  ``--samples`` samples (``--repeats`` interleaved rounds: samples/s is the median, memory the largest peak;
  the shared machine's load moves during a run), and for ``lava-float`` and ``lava-fixed`` on ``--lava-samples``
  (one: Lava's Python simulator is slow) from the exported plan folders, with a time limit (``--lava-timeout``);
  plus the float reference in float64 on the Lava samples (Lava's floating point computes in float64);
* agreement from the ``predictions.npz`` files ``deploy run`` writes (outputs and per-layer spike counts at
  every step): ``reference-fixed`` against ``lava-fixed`` on the Lava samples (equal or not, the largest
  difference of a layer's count at a step), ``lava-float`` against the float64 and float32 references,
  ``reference-fixed`` against the float reference (predicted class; the weights are untrained, so that
  figure says little about quantization loss);
* the issue's acceptance targets for ``sew-resnet18-128``, each with its measured value and pass / fail.

Samples/s is ``deploy run``'s own figure (its ``summary.json``: the runner's time over the samples, without
the build and the data loading); ``wall_s`` is the whole process. Memory: each step's process tree is
sampled every ``--sample-interval`` seconds (the sum of the processes' proportional set sizes, PSS, so
memory Lava's forked processes share is counted once; and the plain sum of their RSS) and its
``ru_maxrss`` (``os.wait4``: the largest single process) is recorded; the acceptance checks use the
larger of PSS peak and ``ru_maxrss``. A step whose tree passes ``--max-gb`` (or that leaves the machine
less than ``--min-free-gb`` available) is killed, as is one running past its time limit; the JSON records
that instead of a figure.

Models: ``build_classifier(name, [2, 128, 128], 10)`` with ``torch.manual_seed(--seed)`` (untrained), whose
BatchNorm statistics are set by one pass over ``--bn-samples`` of the frames in training mode (cumulative
averages): with PyTorch's initial statistics (mean 0, variance 1) both untrained nets are silent beyond
their first layer on these frames, which would make the spike comparisons empty. Exported with
``neuromoco.train.export.export_model`` (``to_nir`` + ``nir.write`` + the model card).

Data: the project's DVS simulator (``neuromoco.train.data.simulator.simulate``, N-MNIST-style saccades) on
a 128x128 sensor with scikit-learn's 8x8 digits magnified to 96x96 pixels, framed into T equal time bins of
integer event counts per polarity (``neuromoco.train.data.framing.frame_events``); written to a frames
``.npz`` that every ``deploy run`` reads.

Writes ``benchmarks/results/scale.json`` (after every step, so an interrupted run keeps what it measured),
with the issue's figures from before the change under ``before`` (quoted, not re-measured).

    python benchmarks/scale.py                            # defaults: both models, 32 samples, Lava 1 sample
    python benchmarks/scale.py --no-lava                  # everything but the Lava runs
    python benchmarks/scale.py --models cnn5-128 --samples 4 --out /tmp/scale.json   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, describe_path, machine_info, now, write_json

OUT = RESULTS / "scale.json"
MODELS = ("cnn5-128", "sew-resnet18-128")
INPUT_SHAPE = [2, 128, 128]
NUM_CLASSES = 10
MANY = ("reference", "reference-fixed", "onnx")  # run on --samples samples
LAVA = ("lava-float", "lava-fixed")  # run on --lava-samples samples, from the exported plan
#: the ``deploy`` command beside this Python (the virtualenv's), else the same entry point through ``-m``
DEPLOY = ([str(Path(sys.executable).with_name("deploy"))] if Path(sys.executable).with_name("deploy").exists()
          else [sys.executable, "-m", "neuromoco.deploy.cli"])
GIB = 1024.0  # MiB per GiB

#: the issue's figures from before convolutions stayed kernels (quoted, not re-measured here)
BEFORE = {
    "source": "the issue, measured on this machine before convolutions stayed shared kernels; quoted here, "
              "not re-measured",
    "model": "sew-resnet18-128, trained 1 epoch, T = 8, 26 real samples",
    "deploy run --target reference": {"wall_s": 6.6, "peak_gb": 1.1, "samples_per_s": 9.5},
    "deploy run --target onnx": {"wall_s": 11.4, "peak_gb": 1.1},
    "deploy export --target lava --precision fixed": {"wall_s": 485, "peak_gb": 20.7, "plan_size_gb": 1.7},
    "deploy run --target reference-fixed": {"outcome": "killed at 24 GB after 476 s"},
    "deploy run --target lava-fixed / lava-float": {"outcome": "not attempted"},
}


# ------------------------------------------------------------------------------------------ measuring

def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                kids += [int(v) for v in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/PID/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """``(PSS, RSS)`` of one process in KiB (0, 0 when it is gone)."""
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return pss, rss


def available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024.0
    return float("inf")


def measure(cmd: list[str], log: Path, timeout_s: float, a: argparse.Namespace, env: dict | None = None) -> dict:
    """Run ``cmd`` in its own process group; wall, CPU, peak memory of its process tree; kill it past the
    time limit, past ``--max-gb`` or when the machine runs short of memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    shown = " ".join(describe_path(Path(c)) if c.startswith(str(ROOT)) else c for c in cmd)
    print(f"  $ {shown}", file=sys.stderr, flush=True)
    cap_kib = a.max_gb * GIB * 1024
    peak_pss = peak_rss = most = 0
    outcome = "ok"
    load = round(os.getloadavg()[0], 2)
    with log.open("w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            pids = tree(proc.pid)
            mem = [memory_kib(p) for p in pids]
            pss, rss = sum(m[0] for m in mem), sum(m[1] for m in mem)
            peak_pss, peak_rss, most = max(peak_pss, pss), max(peak_rss, rss), max(most, len(pids))
            elapsed = time.perf_counter() - t0
            why = None
            if elapsed > timeout_s:
                why = f"killed after the time limit of {timeout_s:.0f} s"
            elif pss > cap_kib:
                why = f"killed at {pss / 1024 / GIB:.1f} GiB (PSS), above the cap --max-gb {a.max_gb:g}"
            elif available_mib() < a.min_free_gb * GIB:
                why = (f"killed with {pss / 1024 / GIB:.1f} GiB (PSS) when the machine had less than "
                       f"--min-free-gb {a.min_free_gb:g} GiB available")
            if why:
                outcome = why
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group this step's process leads
                except ProcessLookupError:
                    pass
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(a.sample_interval)
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if outcome == "ok" and rc != 0:
        outcome = f"failed with exit status {rc}"
    res = {"command": shown, "outcome": outcome, "wall_s": round(wall, 2),
           "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
           "peak_pss_mib": round(peak_pss / 1024, 1), "peak_rss_sum_mib": round(peak_rss / 1024, 1),
           "ru_maxrss_mib": round(usage.ru_maxrss / 1024, 1), "processes_at_most": most,
           "load_average_1min_at_start": load,
           "log": describe_path(log)}
    if outcome != "ok":
        res["log_tail"] = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-8:]
    print(f"    {outcome}: {wall:.1f} s, peak PSS {peak_pss / 1024:.0f} MiB, ru_maxrss {usage.ru_maxrss / 1024:.0f} "
          f"MiB", file=sys.stderr, flush=True)
    return res


def code_state() -> dict:
    """The commit and the uncommitted files under deploy/ and train/ (the code the figures belong to)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                                  check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": git("status", "--short", "--", "deploy", "train").splitlines()}


def peak_gb(step: dict) -> float:
    """The larger of the sampled PSS peak of the tree and the largest single process's ``ru_maxrss``, in GB
    (10^9 bytes, the stricter reading of the targets' GB)."""
    return max(step["peak_pss_mib"], step["ru_maxrss_mib"]) * 2**20 / 1e9


def folder_size(path: Path) -> dict:
    files = {describe_path(p): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    return {"bytes": sum(files.values()), "mib": round(sum(files.values()) / 2**20, 2), "files": files}


# ------------------------------------------------------------------------- preparation (its own process)

def prepare(a: argparse.Namespace) -> int:
    """Frames and the models' NIR graphs + cards under ``--work`` (run as ``scale.py --prepare``)."""
    import numpy as np
    import torch

    from neuromoco.train.data.digits128 import simulate_digits
    from neuromoco.train.data.framing import frame_events
    from neuromoco.train.export import export_model
    from neuromoco.train.export.from_checkpoint import model_dt
    from neuromoco.train.models.base import count_parameters
    from neuromoco.train.models.registry import build_classifier

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    n = max(a.samples, a.lava_samples, a.bn_samples)
    t0 = time.perf_counter()
    events, labels, cfg = simulate_digits(n, sensor=INPUT_SHAPE[1], digit_size=a.digit_size)
    sensor = (INPUT_SHAPE[2], INPUT_SHAPE[1], INPUT_SHAPE[0])
    frames = np.stack([frame_events(ev, sensor, a.time_steps) for ev in events]).astype(np.float32)
    np.savez(work / "frames.npz", frames=frames, labels=labels)
    info: dict = {"data": {
        "file": describe_path(work / "frames.npz"), "samples": n, "shape": list(frames.shape),
        "source": "neuromoco.train.data.simulator.simulate (N-MNIST-style saccades) on a 128x128 sensor: "
                  f"scikit-learn's 8x8 digits magnified to {a.digit_size:g}x{a.digit_size:g} pixels, the "
                  "simulator's other defaults (flush_below=FLUSH_BELOW), framed by frame_events into T equal "
                  "time bins of integer event counts per polarity; labels: the digits",
        "simulator_config": cfg.as_dict(), "events_per_sample_mean": float(np.mean([len(e) for e in events])),
        "event_counts_per_pixel_and_step_mean": float(frames.mean()), "largest_count": float(frames.max()),
        "seconds": round(time.perf_counter() - t0, 2)}, "models": {}}
    xb = torch.from_numpy(frames[:a.bn_samples]).transpose(0, 1)  # [T, B, C, H, W]
    for name in a.models:
        torch.manual_seed(a.seed)
        model = build_classifier(name, INPUT_SHAPE, NUM_CLASSES)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if a.bn_samples:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the passes below
            model.train()
            with torch.no_grad():
                for i in range(0, xb.shape[1], 2):
                    model(xb[:, i:i + 2])
        model.eval()
        dt = model_dt(model)
        path = export_model(
            model.deploy_modules(), work / name, input_shape=INPUT_SHAPE, time_steps=a.time_steps, dt=dt,
            dataset={"name": "simulated-digits-128", "kind": "frames file", "file": "frames.npz",
                     "sensor_size": [INPUT_SHAPE[2], INPUT_SHAPE[1], INPUT_SHAPE[0]], "time_steps": a.time_steps,
                     "split": "test"},
            class_names=[str(i) for i in range(NUM_CLASSES)], accuracy={}, model_name=name)
        info["models"][name] = {"nir": describe_path(path), "nir_mib": round(path.stat().st_size / 2**20, 2),
                                "params": count_parameters(model), "batchnorm_layers": len(norms), "dt": dt}
    (work / "prepare.json").write_text(json.dumps(info, indent=1))
    return 0


# ------------------------------------------------------------------------------------------ agreement

def load_run(path: Path) -> dict | None:
    import numpy as np

    f = path / "predictions.npz"
    if not f.exists():
        return None
    with np.load(f) as z:
        return {k: z[k] for k in z.files}


def compare(a: dict, b: dict, n: int) -> dict:
    """Outputs, predictions and per-layer spike counts ``[T, N]`` of two runs on their first ``n`` samples."""
    import numpy as np

    layers = sorted(k for k in a if k.startswith("spike_counts/") and k in b)
    diff = {k.split("/", 1)[1]: int(np.abs(a[k][:, :n] - b[k][:, :n]).max()) for k in layers}
    total = {k.split("/", 1)[1]: [int(a[k][:, :n].sum()), int(b[k][:, :n].sum())] for k in layers}
    out_diff = float(np.abs(a["output"][:, :n] - b["output"][:, :n]).max())
    return {"samples": n, "predictions_equal": int(np.sum(a["predictions"][:n] == b["predictions"][:n])),
            "spike_counts_equal_every_layer_and_step": all(v == 0 for v in diff.values()),
            "max_layer_count_difference": max(diff.values()) if diff else None,
            "layers_compared": len(layers),
            "layers_differing": sorted(k for k, v in diff.items() if v),
            "output_max_abs_difference": out_diff, "outputs_equal": out_diff == 0.0,
            "spikes_total_a_b": total}


def agreement(mdir: Path, n_many: int, n_lava: int) -> dict:
    runs = {t: load_run(mdir / f"run_{t}") for t in (*MANY, *LAVA, "reference-float64")}
    res: dict = {"compared": "what deploy run writes: the output node at every step, predictions, and every "
                             "spiking layer's spike count at every step ([T, N]); the full 0/1 spike records "
                             "are not written by deploy run"}
    pairs = [("reference-fixed_vs_lava-fixed", "reference-fixed", "lava-fixed", n_lava),
             ("lava-float_vs_reference-float64", "lava-float", "reference-float64", n_lava),
             ("lava-float_vs_reference", "lava-float", "reference", n_lava),
             ("reference-fixed_vs_reference", "reference-fixed", "reference", n_many),
             ("onnx_vs_reference", "onnx", "reference", n_many)]
    for key, x, y, n in pairs:
        if runs[x] is None or runs[y] is None:
            res[key] = {"measured": False, "missing": [t for t in (x, y) if runs[t] is None]}
            continue
        res[key] = compare(runs[x], runs[y], min(n, runs[x]["output"].shape[1], runs[y]["output"].shape[1]))
    res["reference-fixed_vs_reference"]["note"] = (
        "untrained weights (BatchNorm statistics from the frames): the predicted classes of an untrained net sit "
        "close together, so this agreement says little about the fixed-point plan's loss on a trained model")
    return res


# ------------------------------------------------------------------------------------------ the steps

def export_step(model: str, precision: str, mdir: Path, a: argparse.Namespace) -> dict:
    out = mdir / f"export_lava_{precision}"
    shutil.rmtree(out, ignore_errors=True)
    step = measure([*DEPLOY, "export", str(mdir / "model.nir"), "--target", "lava", "--precision", precision,
                    "--out", str(out), "--no-progress"], mdir / f"export_lava_{precision}.log", a.step_timeout, a)
    if step["outcome"] == "ok":
        step["plan_size"] = folder_size(out)
        report = out / "lava_export.json"
        if report.exists():
            step["plan"] = plan_digest(json.loads(report.read_text()))
    return step


def plan_digest(rep: dict) -> dict:
    """A few figures of the plan's report (``lava_export.json``): layers, neurons, connections by process, and
    synapses as the report counts them (a kernel connection: the synapses of its expanded matrix)."""
    conns = [c for lay in rep.get("layers", []) for c in lay.get("connections", [])]
    conns += rep.get("readout", {}).get("connections", [])
    kinds: dict[str, int] = {}
    for c in conns:
        kinds[c.get("process", "?")] = kinds.get(c.get("process", "?"), 0) + 1
    return {"depth": rep.get("depth"), "layers": len(rep.get("layers", [])),
            "neurons": sum(lay.get("neurons", 0) for lay in rep.get("layers", [])),
            "connections_by_process": kinds,
            "synapses_expanded": sum(c.get("synapses", 0) for c in conns),
            "max_rel_weight_error": rep.get("max_rel_weight_error")}


def run_step(model: str, target: str, mdir: Path, a: argparse.Namespace) -> dict:
    out = mdir / f"run_{target}"
    shutil.rmtree(out, ignore_errors=True)
    lava = target in LAVA
    options: list[str] = []
    src = mdir / "model.nir"
    if lava:
        exported = mdir / f"export_lava_{target.split('-')[1]}"
        if (exported / "lava_network.h5").exists():
            src = exported
        n, timeout = a.lava_samples, a.lava_timeout
    elif target == "reference-float64":
        target, options, n, timeout = "reference", ["-o", "dtype=float64"], a.lava_samples, a.step_timeout
    else:
        n, timeout = a.samples, a.step_timeout
    step = measure([*DEPLOY, "run", str(src), "--target", target, *options,
                    "--dataset", str(Path(a.work) / "frames.npz"),
                    "--limit", str(n), "--batch-size", str(a.batch_size), "--out", str(out), "--no-progress"],
                   out.with_suffix(".log"), timeout, a)
    summary = out / "summary.json"
    if step["outcome"] == "ok" and summary.exists():
        s = json.loads(summary.read_text())
        step.update(samples=s["samples"], time_steps=s["time_steps"], samples_per_s=round(s["samples_per_s"], 4),
                    run_s=round(s["run_seconds"], 3), build_s=round(s["build_seconds"], 3),
                    spikes_per_sample=s["spikes_per_sample"], from_export=src.is_dir())
    return step


def combine(steps: list[dict]) -> dict:
    """Repeated runs of one target: the median run's figures, every run's samples/s and the largest peaks."""
    ok = [s for s in steps if s["outcome"] == "ok" and "samples_per_s" in s]
    if not ok:
        return steps[-1]
    ok.sort(key=lambda s: s["samples_per_s"])
    out = dict(ok[(len(ok) - 1) // 2])  # the median run (the lower middle one for an even count)
    out.update(repeats=len(steps), samples_per_s_each=[s.get("samples_per_s", s["outcome"]) for s in steps],
               wall_s_each=[s["wall_s"] for s in steps],
               load_average_1min_at_start_each=[s["load_average_1min_at_start"] for s in steps])
    for key in ("peak_pss_mib", "peak_rss_sum_mib", "ru_maxrss_mib"):
        out[key] = max(s[key] for s in steps)
    if len(ok) < len(steps):
        out["outcome_each"] = [s["outcome"] for s in steps]
    return out


# ------------------------------------------------------------------------------------------ targets

def acceptance(res: dict) -> list[dict]:
    """The issue's acceptance targets for sew-resnet18-128 at T = 16, each with its measured value."""
    m = res["models"].get("sew-resnet18-128")
    checks: list[dict] = []

    def add(name: str, limit: str, measured, ok, note: str = "") -> None:
        checks.append({"target": name, "limit": limit, "measured": measured,
                       "pass": ok, **({"note": note} if note else {})})

    if m is None:
        return checks
    ex = m.get("export", {}).get("fixed")
    if ex:
        done = ex["outcome"] == "ok"
        add("export (lava, fixed) time", "< 60 s", ex["wall_s"] if done else ex["outcome"], done and ex["wall_s"] < 60)
        add("export (lava, fixed) peak memory", "< 3 GB", round(peak_gb(ex), 2) if done else ex["outcome"],
            done and peak_gb(ex) < 3)
    runs = m.get("run", {})
    rf, ref = runs.get("reference-fixed"), runs.get("reference")
    if rf:
        done = rf["outcome"] == "ok"
        add("reference-fixed peak memory", "<= 8 GB", round(peak_gb(rf), 2) if done else rf["outcome"],
            done and peak_gb(rf) <= 8)
        if ref and ref["outcome"] == "ok" and done:
            ratio = rf["samples_per_s"] / ref["samples_per_s"]
            each = [round(x / y, 3)
                    for x, y in zip(rf.get("samples_per_s_each", []), ref.get("samples_per_s_each", []), strict=False)
                    if isinstance(x, float) and isinstance(y, float)]
            add("reference-fixed samples/s against the float reference (same run)", ">= 0.5",
                round(ratio, 3), ratio >= 0.5,
                f"medians of {rf.get('repeats', 1)} interleaved runs: {rf['samples_per_s']} vs "
                f"{ref['samples_per_s']} samples/s; ratio in each round {each}")
    agree = m.get("agreement", {})
    lf = runs.get("lava-fixed")
    if lf:
        done, out = lf["outcome"] == "ok", lf["outcome"]
        late = "time limit" in out and lf["wall_s"] >= 900
        add("lava-fixed, one sample: peak memory", "<= 16 GB", round(peak_gb(lf), 2) if done else out,
            peak_gb(lf) <= 16 if done else (False if "cap" in out and peak_gb(lf) > 16 else None),
            "" if done else "not measured to the end: see the step's outcome")
        add("lava-fixed, one sample: time", "<= 15 min (900 s), the whole deploy run process",
            lf["wall_s"] if done else out, lf["wall_s"] <= 900 if done else (False if late else None))
        c = agree.get("reference-fixed_vs_lava-fixed", {})
        eq = bool(c["spike_counts_equal_every_layer_and_step"] and c["outputs_equal"]) if c.get("samples") else None
        add("lava-fixed spike for spike equal to reference-fixed", "equal (every layer's count at every step, "
            "and the outputs)", c if c.get("samples") else "not measured", eq)
    lfl = runs.get("lava-float")
    if lfl:
        c = agree.get("lava-float_vs_reference-float64", {})
        eq = (bool(c["spike_counts_equal_every_layer_and_step"] and c["predictions_equal"] == c["samples"])
              if c.get("samples") else None)
        add("lava-float equal to the float reference (float64) on the Lava sample",
            "same prediction and spike counts", c if c.get("samples") else lfl["outcome"], eq)
    return checks


# ------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--time-steps", type=int, default=16)
    p.add_argument("--samples", type=int, default=32, help="samples for reference, reference-fixed and onnx")
    p.add_argument("--batch-size", type=int, default=64,
                   help="deploy run --batch-size (its default: the 32 samples in one batch)")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of reference, reference-fixed and onnx, interleaved; samples/s is the median")
    p.add_argument("--lava-samples", type=int, default=1, help="samples for lava-float and lava-fixed")
    p.add_argument("--lava-timeout", type=float, default=900.0, help="seconds one Lava run may take")
    p.add_argument("--step-timeout", type=float, default=1800.0, help="seconds any other step may take")
    p.add_argument("--no-lava", action="store_true", help="skip the Lava runs (exports still run)")
    p.add_argument("--max-gb", type=float, default=8.0,
                   help="kill a step whose process tree holds more (GiB, PSS); 8 keeps a shared 24 GB machine safe")
    p.add_argument("--min-free-gb", type=float, default=3.0,
                   help="kill a step when the machine has less memory available than this (GiB)")
    p.add_argument("--sample-interval", type=float, default=0.25, help="seconds between memory samples")
    p.add_argument("--bn-samples", type=int, default=8,
                   help="frames whose statistics the untrained models' BatchNorm takes (0: PyTorch's initial ones)")
    p.add_argument("--digit-size", type=float, default=96.0, help="the digits' side on the 128x128 sensor, pixels")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed of the untrained models")
    p.add_argument("--work", default=str(ROOT / "runs" / "bench_scale"), help="folder for graphs, plans and runs")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # the preparation process
    a = p.parse_args(argv)
    if a.prepare:
        return prepare(a)
    work = Path(a.work)
    load_before = os.getloadavg()
    t_all = time.perf_counter()
    res: dict = {
        "benchmark": "scale", "input_shape": INPUT_SHAPE, "time_steps": a.time_steps,
        "settings": {k: getattr(a, k) for k in ("models", "samples", "batch_size", "repeats", "lava_samples",
                                                 "lava_timeout", "step_timeout", "no_lava", "max_gb", "min_free_gb",
                                                 "bn_samples", "digit_size", "seed", "sample_interval")},
        "weights": f"untrained: build_classifier(name, {INPUT_SHAPE}, {NUM_CLASSES}) "
                   f"after torch.manual_seed({a.seed}); "
                   f"BatchNorm statistics from one training-mode pass over the first {a.bn_samples} frames "
                   "(cumulative averages), then folded by the export",
        "memory": "peak_pss_mib: sampled peak of the step's process tree, the sum of proportional set sizes; "
                  "peak_rss_sum_mib: the same for RSS (counts memory shared by forked processes once per process); "
                  "ru_maxrss_mib: os.wait4's ru_maxrss, the largest single process; the targets use "
                  "max(peak_pss, ru_maxrss) in GB of 10^9 bytes",
        "samples_per_s": "deploy run's summary.json: samples over the runner's time (no build, no data loading); "
                         "reference, reference-fixed and onnx: the median run of --repeats interleaved runs "
                         "(the slower middle one for an even count), whose other figures are given with it",
        "code": code_state(), "models": {}, "before": BEFORE,
    }

    def save() -> None:
        res["targets"] = acceptance(res)
        res.update(total_wall_s=round(time.perf_counter() - t_all, 1), date=now())
        res["machine"] = machine_info(loadavg_before=[round(v, 2) for v in load_before], torch_threads="torch default",
                                      note="shared machine: other jobs ran alongside; figures are what this run got")
        write_json(a.out, res)

    print("prepare: frames and graphs", file=sys.stderr)
    passed = [f"--{k.replace('_', '-')}={getattr(a, k)}" for k in
              ("time_steps", "samples", "lava_samples", "bn_samples", "digit_size", "seed", "work")]
    prep = measure([sys.executable, str(Path(__file__).resolve()), "--prepare", *passed, "--models", *a.models],
                   work / "prepare.log", a.step_timeout, a)
    if prep["outcome"] != "ok":
        res["prepare"] = prep
        save()
        raise SystemExit(f"preparation failed: {prep['outcome']}; see {prep['log']}")
    info = json.loads((work / "prepare.json").read_text())
    res["data"] = info["data"]
    res["prepare"] = prep
    for name in a.models:
        print(f"{name}:", file=sys.stderr)
        mdir = work / name
        m = res["models"][name] = {**info["models"][name], "export": {}, "run": {}}
        for precision in ("fixed", "float"):
            m["export"][precision] = export_step(name, precision, mdir, a)
            save()
        rounds: dict[str, list[dict]] = {t: [] for t in MANY}
        for _ in range(a.repeats):  # the batched targets in interleaved rounds: the load moves during a run
            for target in MANY:
                rounds[target].append(run_step(name, target, mdir, a))
                m["run"][target] = combine(rounds[target])
                m["agreement"] = agreement(mdir, a.samples, a.lava_samples)
                save()
        for target in () if a.no_lava else ("reference-float64", *LAVA):
            m["run"][target] = run_step(name, target, mdir, a)
            m["agreement"] = agreement(mdir, a.samples, a.lava_samples)
            save()
    save()
    print(json.dumps(res["targets"], indent=1, default=str))
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
