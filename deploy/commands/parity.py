"""`deploy parity MODEL.nir --targets lava-float,lava-fixed,onnx,onnx-int8 --dataset NAME --out DIR`

Runs the same samples through the reference executor and every named target, compares them (accuracy,
prediction agreement, per-layer spike counts, per-neuron firing-rate cosine, first divergence) and writes
``parity.json`` and ``report.md`` with plots to ``--out``. Exit status: 0 when every target is within its
tolerances, 1 when one is not or fails to build or run (each printed), 2 for a usage error.

The reference runs in float64 for the Lava targets (Lava's floating-point simulation computes in
float64) and in float32 for the others (ONNX and the training code compute in float32), unless
``--reference-dtype`` says otherwise; each target's entry states the dtype it was compared with.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from neuromoco.deploy.commands.common import (
    add_sample_arguments,
    add_shared_arguments,
    batches,
    describe_error,
    load_model,
    parse_option_items,
    progress_bar,
    run_context,
    target_options,
)
from neuromoco.deploy.parity import (
    EXACT_TARGETS,
    ParityAccumulator,
    Tolerances,
    check,
    parse_names,
    sample_size_note,
)
from neuromoco.errors import UserError

DEFAULT_TARGETS = "lava-float,lava-fixed,onnx,onnx-int8"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--targets", default=DEFAULT_TARGETS,
                   help=f"comma-separated targets to compare with the reference (default {DEFAULT_TARGETS})")
    add_sample_arguments(p, batch_size=32)
    p.add_argument("--device", default="cpu", help="device of the reference executor (default cpu)")
    p.add_argument("--out", required=True, help="folder for parity.json, report.md and the plots")
    p.add_argument("--reference-dtype", choices=["auto", "float32", "float64"], default="auto",
                   help="dtype of the reference run: auto = float64 for lava targets, float32 otherwise")
    t = p.add_argument_group("tolerances (a target outside them makes the command exit 1)")
    d = Tolerances()
    t.add_argument("--min-agreement", type=float, default=d.min_agreement,
                   help=f"minimum prediction agreement with the reference (default {d.min_agreement})")
    t.add_argument("--max-count-rel-diff", type=float, default=d.max_count_rel_diff,
                   help="maximum relative difference of any layer's total spike count "
                        f"(default {d.max_count_rel_diff})")
    t.add_argument("--min-rate-cosine", type=float, default=d.min_rate_cosine,
                   help=f"minimum cosine similarity of per-neuron firing rates (default {d.min_rate_cosine})")
    t.add_argument("--max-accuracy-drop", type=float, default=None,
                   help="maximum accuracy loss against the reference, as a fraction (default: not checked)")
    t.add_argument("--exact-targets", default=",".join(EXACT_TARGETS),
                   help="targets held to equality instead of the tolerances (default "
                        f"{','.join(EXACT_TARGETS)}; 'none' for no such target)")
    p.add_argument("--worst", type=int, default=5, help="how many most-diverging samples to locate (default 5)")
    add_shared_arguments(p)


# ------------------------------------------------------------------------------------------ the command
def reference_dtype(target: str, choice: str) -> str:
    """The reference's dtype for a target: float64 against Lava (its float simulation is float64)."""
    if choice != "auto":
        return choice
    return "float64" if target.startswith("lava") else "float32"


def run(args: argparse.Namespace) -> int:
    from neuromoco.deploy.graph import spiking_nodes
    from neuromoco.deploy.report import write_parity_report
    from neuromoco.io import atomic_write_json

    names, values, tol = _selection(args)
    graph, card, frames, labels = load_model(args)
    layers = spiking_nodes(graph)
    out = Path(args.out)
    entries, runners, refs = _build(names, values, graph, card, args)
    accs, seconds = _compare(runners, refs, entries, frames, labels, layers, args)
    extras = _judge(accs, seconds, entries, tol)
    summary = {
        "model": str(args.model), "dataset": args.dataset or card.dataset.get("name", ""), "split": args.split,
        "samples": len(frames), "time_steps": int(card.time_steps), "layers": layers,
        "tolerances": tol.as_dict(), "targets": entries,
        "passed": all(e["status"] == "ok" for e in entries.values()),
    }
    atomic_write_json(out / "parity.json", summary)
    report = write_parity_report(out, summary, extras)
    _print_entries(entries)
    print(f"wrote {out / 'parity.json'} and {report}")
    if not summary["passed"]:
        bad = [n for n, e in entries.items() if e["status"] != "ok"]
        print(f"deploy parity: {len(bad)} target(s) outside tolerance or failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _selection(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, str]], Tolerances]:
    """The target names, their ``-o`` values (spike records on) and the tolerances; typos fail before any work."""
    from neuromoco.deploy.targets import TARGETS, options_class, with_options

    names = parse_names(args.targets)
    if not names:
        raise UserError("--targets names no target")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise UserError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    exact = tuple(parse_names(args.exact_targets)) if args.exact_targets.strip().lower() != "none" else ()
    tol = Tolerances(args.min_agreement, args.max_count_rel_diff, args.min_rate_cosine, args.max_accuracy_drop,
                     exact)
    values = {n: {**v, "record_spikes": "true"} for n, v in parse_option_items(args.option, names).items()}
    for n in names:
        try:
            cls = options_class(n)
        except ImportError:  # a target that cannot even be imported is reported when it is built
            continue
        with_options(n, cls.parse(TARGETS[n].preset, target=n), values[n])
    return names, values, tol


def _build(names: list[str], values: dict[str, dict[str, str]], graph: Any, card: Any,
           args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """One entry and runner per target (a target that cannot build is an ``error`` entry) and the references."""
    context = run_context(args)
    entries: dict[str, dict[str, Any]] = {}
    runners: dict[str, Any] = {}
    for name in names:
        entries[name] = {"status": "ok", "reference_dtype": reference_dtype(name, args.reference_dtype),
                         "violations": []}
        try:
            target, options = target_options(name, values[name])
            entries[name]["options"] = options.as_dict()
            runners[name] = target.runner(graph, card, options, context)
        except Exception as err:  # noqa: BLE001 - a target that cannot build is reported, not a traceback
            entries[name].update(status="error", error=f"could not build: {describe_error(err)}")
    refs = {}
    for d in sorted({entries[n]["reference_dtype"] for n in runners}):
        ref, ref_options = target_options("reference", {"dtype": d, "device": args.device, "record_spikes": "true"})
        refs[d] = ref.runner(graph, card, ref_options, context)
    return entries, runners, refs


def _compare(runners: dict[str, Any], refs: dict[str, Any], entries: dict[str, dict[str, Any]], frames: Any,
             labels: Any, layers: list[str], args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float]]:
    """Every batch through the references and each target, accumulated; a target failing mid-way is dropped."""
    accs = {n: ParityAccumulator(layers, args.worst) for n in runners}
    seconds = {n: 0.0 for n in runners}
    bar = progress_bar(len(frames), "parity", not args.no_progress)
    for fr, lab in batches(frames, labels, args.batch_size):
        ref_results = {d: r.run(fr) for d, r in refs.items()}
        for name in list(runners):
            try:
                t0 = time.perf_counter()
                result = runners[name].run(fr)
                seconds[name] += time.perf_counter() - t0
                accs[name].update(ref_results[entries[name]["reference_dtype"]], result, lab)
            except Exception as err:  # noqa: BLE001 - a failing target is reported, not a traceback
                entries[name].update(status="error", error=f"failed while running: {describe_error(err)}")
                del runners[name]
        if bar is not None:
            bar.update(len(lab))
    if bar is not None:
        bar.close()
    return accs, seconds


def _judge(accs: dict[str, Any], seconds: dict[str, float], entries: dict[str, dict[str, Any]],
           tol: Tolerances) -> dict[str, dict[str, Any]]:
    """Metrics and tolerance verdicts into each entry; the per-target plot data for the report."""
    extras: dict[str, dict[str, Any]] = {}
    for name, acc in accs.items():
        if entries[name]["status"] == "error":
            continue
        metrics = acc.result()
        metrics["target_seconds"] = seconds[name]
        limits = tol.for_target(name)
        entries[name].update(metrics=metrics, tolerances=limits.as_dict(), violations=check(metrics, limits),
                             sample_size_note=sample_size_note(metrics, limits))
        if entries[name]["violations"]:
            entries[name]["status"] = "fail"
        extras[name] = {"rates": acc.rates(),
                        "raster": None if acc.raster.index < 0 else (acc.raster.index, acc.raster.reference,
                                                                      acc.raster.target)}
    return extras


def _print_entries(entries: dict[str, dict[str, Any]]) -> None:
    for name, e in entries.items():
        if e["status"] == "error":
            print(f"{name}: ERROR {e['error']}")
            continue
        m = e["metrics"]
        acc_text = (f"accuracy {m['accuracy_target']:.4f} (reference {m['accuracy_reference']:.4f}), "
                    if "accuracy_target" in m else "")
        lo, hi = m["agreement_ci95"]
        print(f"{name}: {e['status'].upper()} {acc_text}agreement {m['agreement']:.4f} (95% {lo:.4f}-{hi:.4f}), "
              f"max layer count diff {m['max_count_rel_diff']:.4f}, rate cosine {m['rate_cosine']:.6f}")
        for v in e["violations"]:
            print(f"  outside tolerance: {v}")
        if e.get("sample_size_note"):
            print(f"  note: {e['sample_size_note']}")
