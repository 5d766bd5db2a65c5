"""`deploy parity MODEL.nir --targets lava-float,lava-fixed,onnx,onnx-int8 --dataset NAME --out DIR`

Runs the same samples through the reference executor and every named target, compares them (accuracy,
prediction agreement, per-layer spike counts, per-neuron firing-rate cosine, first divergence) and writes
``parity.json`` and ``report.md`` with plots to ``--out``. Each comparison gets a verdict (:func:`~neuromoco.deploy.
parity.verdict`): OK, FAIL, or INCONCLUSIVE when its only broken limit is the agreement tolerance and its samples
are too few to decide it. Exit status: 0 when no target fails (INCONCLUSIVE too, unless ``--strict``), 1 when one
is outside its tolerances or fails to build or run (each printed), 2 for a usage error.

The reference runs in float64 for the Lava targets (Lava's floating-point simulation computes in
float64) and in float32 for the others (ONNX and the training code compute in float32), unless
``--reference-dtype`` says otherwise; each target's entry states the dtype it was compared with.

A slow target with a bit-exact emulator in PyTorch is judged as separate questions: *deployment
exactness*, the target against its emulator on the first ``--exactness-samples`` samples (held to equality:
any difference is a deployment bug), and, for a quantized one, *quantization loss*, the emulator against
the float reference on every sample (``--split train,test`` for both splits), at PyTorch speed:
``lava-fixed`` against ``reference-fixed`` (and ``reference-fixed`` against the reference), ``lava-float``
against the float64 reference. ``--exactness-samples 0`` compares such a target with the float reference
instead. ``--limit N`` bounds only those slow targets' subset: the reference, the emulators and every target
without an emulator (ONNX) run the whole split. A comparison the user did not ask for by name (an emulator's
quantization loss, the default ``--targets``) is labelled ``added`` with the reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
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
    with_card_options,
)
from neuromoco.deploy.parity import (
    ParityAccumulator,
    Tolerances,
    check,
    parse_names,
    sample_size_note,
    verdict,
)
from neuromoco.deploy.targets import REFERENCE, TARGETS, exact_targets, parity_defaults, spec
from neuromoco.errors import UserError


def emulated_targets() -> list[str]:
    """The named targets judged on a subset against a bit-exact emulator (the slow ones: simulators)."""
    return [n for n, s in TARGETS.items() if s.emulator]


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults, exact = ",".join(parity_defaults()), ",".join(exact_targets())
    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--targets", default=None,
                   help=f"comma-separated targets to compare with the reference (default {defaults})")
    add_sample_arguments(p, batch_size=32, limit_help=(
        "run the slow targets (those with a bit-exact emulator: " + ", ".join(emulated_targets()) + ") on at "
        "most the first N samples; the reference, the emulators (their quantization check) and every other "
        "target always run the whole split"))
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
    t.add_argument("--exact-targets", default=exact,
                   help=f"targets held to equality instead of the tolerances (default {exact}; 'none' for no "
                        "such target)")
    p.add_argument("--worst", type=int, default=5, help="how many most-diverging samples to locate (default 5)")
    p.add_argument("--exactness-samples", type=int, default=64,
                   help="samples on which a slow target must equal its bit-exact emulator (default 64, at most "
                        "--limit; 0: compare it with the float reference instead, on --limit samples or all)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 for an INCONCLUSIVE target too (too few samples to decide its agreement tolerance)")
    add_shared_arguments(p)


# ------------------------------------------------------------------------------------------ the command

@dataclass(frozen=True)
class Comparison:
    """One entry of the report: ``target``'s results against ``baseline``'s on the first ``limit`` samples."""

    target: str
    baseline: str  # "reference:<dtype>" or another target's name
    role: str  # "parity", "deployment exactness" or "quantization loss"
    limit: int | None = None  # None: every sample
    added: str | None = None  # why it is compared when the user did not name it; None when named

    @property
    def exact(self) -> bool:
        return self.role == "deployment exactness"


def reference_dtype(target: str, choice: str) -> str:
    """The reference's dtype for a target: its spec's (float64 against Lava, whose float simulation is float64)."""
    if choice != "auto":
        return choice
    return spec(target).reference_dtype


def emulator_of(target: str) -> str | None:
    """The baseline a slow target with a bit-exact emulator is judged against (``reference:<dtype>`` or a name).

    Such a target is judged against the emulator on a subset (deployment exactness) and, where the emulator
    is not the float reference itself, the emulator against the float reference on every sample (quantization
    loss).
    """
    s = spec(target)
    if s.emulator == REFERENCE:
        return f"{REFERENCE}:{s.reference_dtype}"
    return s.emulator


def plan_comparisons(names: list[str], args: argparse.Namespace, added: str | None = None) -> dict[str, Comparison]:
    """The report's entries for the named targets, split in two for fixed-point targets with an emulator.

    A target with an emulator (a slow one) runs on at most ``--limit`` samples (and ``--exactness-samples`` when
    judged against the emulator); everything else runs the whole split. ``added``: why ``names`` are compared
    when the user did not name them (the default ``--targets``); an emulator brought in by its target says so.
    """
    out: dict[str, Comparison] = {}
    for name in names:
        emulator = emulator_of(name)
        if emulator and args.exactness_samples > 0:
            subset = min(args.exactness_samples, args.limit or args.exactness_samples)
            out[name] = Comparison(name, emulator, "deployment exactness", subset, added)
            if not emulator.startswith("reference:"):
                why = added if emulator in names else f"the bit-exact emulator of {name}, its quantization check"
                out[emulator] = Comparison(emulator, f"reference:{reference_dtype(emulator, args.reference_dtype)}",
                                           "quantization loss", None, out[emulator].added if emulator in out else why)
        elif name not in out:
            out[name] = Comparison(name, f"reference:{reference_dtype(name, args.reference_dtype)}", "parity",
                                   args.limit if emulator else None, added)
    return out


def run(args: argparse.Namespace) -> int:
    from neuromoco.deploy.graph import spiking_nodes
    from neuromoco.deploy.report import write_parity_report
    from neuromoco.io import atomic_write_json

    names, values, tol = _selection(args)
    comparisons = plan_comparisons(names, args, None if args.targets is not None else "the default --targets")
    # the whole split: --limit bounds only the slow targets' subset (Comparison.limit)
    graph, card, frames, labels = load_model(argparse.Namespace(**{**vars(args), "limit": None}))
    values = with_card_options(card, values)
    layers = spiking_nodes(graph)
    out = Path(args.out)
    entries, runners = _build(comparisons, values, graph, card, args)
    accs, seconds = _compare(comparisons, runners, entries, frames, labels, layers, args)
    extras = _judge(comparisons, accs, seconds, entries, tol)
    by_status = {s: [n for n, e in entries.items() if e["status"] == s] for s in ("fail", "error", "inconclusive")}
    overall = ("FAIL" if by_status["fail"] or by_status["error"]
               else "INCONCLUSIVE" if by_status["inconclusive"] else "OK")
    summary = {
        "model": str(args.model), "dataset": args.dataset or card.dataset.get("name", ""), "split": args.split,
        "samples": len(frames), "limit": args.limit, "time_steps": int(card.time_steps), "layers": layers,
        "tolerances": tol.as_dict(), "targets": entries, "verdict": overall, "strict": bool(args.strict),
        "passed": overall == "OK" or (overall == "INCONCLUSIVE" and not args.strict),
    }
    atomic_write_json(out / "parity.json", summary)
    report = write_parity_report(out, summary, extras)
    _print_entries(entries)
    print(f"wrote {out / 'parity.json'} and {report}")
    bad = by_status["fail"] + by_status["error"]
    if bad:
        print(f"deploy parity: {len(bad)} target(s) outside tolerance or failed: {', '.join(bad)}", file=sys.stderr)
    if by_status["inconclusive"]:
        print(f"deploy parity: {len(by_status['inconclusive'])} target(s) INCONCLUSIVE (too few samples to decide the "
              f"agreement tolerance): {', '.join(by_status['inconclusive'])}"
              + ("; --strict counts them as failures" if args.strict else "; run more samples to decide "
                 "(--strict: exit 1 for them)"), file=sys.stderr)
    return 0 if summary["passed"] else 1


def _selection(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, str]], Tolerances]:
    """The target names, their ``-o`` values (spike records on) and the tolerances; typos fail before any work."""
    from neuromoco.deploy.targets import TARGETS, options_class, with_options

    names = parse_names(args.targets if args.targets is not None else ",".join(parity_defaults()))
    if not names:
        raise UserError("--targets names no target")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise UserError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if args.exactness_samples < 0:
        raise UserError("--exactness-samples must be >= 0")
    exact = tuple(parse_names(args.exact_targets)) if args.exact_targets.strip().lower() != "none" else ()
    tol = Tolerances(args.min_agreement, args.max_count_rel_diff, args.min_rate_cosine, args.max_accuracy_drop,
                     exact)
    emulators = [emulator_of(n) for n in names]
    every = list(dict.fromkeys([*names, *(e for e in emulators if e and not e.startswith("reference:"))]))
    values = {n: {**v, "record_spikes": "true"} for n, v in parse_option_items(args.option, every).items()}
    for n in every:
        try:
            cls = options_class(n)
        except ImportError:  # a target that cannot even be imported is reported when it is built
            continue
        with_options(n, cls.parse(TARGETS[n].preset, target=n), values[n])
    return names, values, tol


def _build(comparisons: dict[str, Comparison], values: dict[str, dict[str, str]], graph: Any, card: Any,
           args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """One entry per comparison and one runner per target or reference dtype they need.

    A target that cannot build makes an ``error`` entry of every comparison that needs it.
    """
    context = run_context(args)
    entries: dict[str, dict[str, Any]] = {}
    runners: dict[str, Any] = {}
    options_of: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for name, c in comparisons.items():
        for who in (c.target, c.baseline):
            if who in runners or who in failures:
                continue
            try:
                if who.startswith("reference:"):
                    ref, opts = target_options(REFERENCE, {"dtype": who.split(":", 1)[1], "device": args.device,
                                                           "record_spikes": "true"})
                    runners[who] = ref.runner(graph, card, opts, context)
                else:
                    target, options = target_options(who, values.get(who, {"record_spikes": "true"}))
                    runners[who] = target.runner(graph, card, options, context)
                    options_of[who] = options.as_dict()
            except Exception as err:  # noqa: BLE001 - a target that cannot build is reported, not a traceback
                failures[who] = f"could not build: {describe_error(err)}"
        entry: dict[str, Any] = {
            "status": "ok", "verdict": "OK", "role": c.role, "added": c.added,
            "compared_with": c.baseline.replace("reference:", "reference, "),
            "reference_dtype": c.baseline.split(":", 1)[1] if c.baseline.startswith("reference:") else None,
            "sample_limit": c.limit, "options": options_of.get(c.target), "violations": []}
        broken = [failures[w] for w in (c.target, c.baseline) if w in failures]
        if broken:
            entry.update(status="error", verdict="ERROR", error=broken[0] if c.target in failures else
                         f"its baseline {c.baseline} {failures[c.baseline]}")
        entries[name] = entry
    return entries, runners


def _compare(comparisons: dict[str, Comparison], runners: dict[str, Any], entries: dict[str, dict[str, Any]],
             frames: Any, labels: Any, layers: list[str],
             args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float]]:
    """Every batch through the runners its comparisons still need, accumulated; a failing runner is dropped."""
    live = {n: c for n, c in comparisons.items() if entries[n]["status"] == "ok"}
    accs = {n: ParityAccumulator(layers, args.worst) for n in live}
    seconds = {n: 0.0 for n in live}
    seen = 0
    bar = progress_bar(len(frames), "parity", not args.no_progress,
                       [w for c in comparisons.values() for w in (c.target, c.baseline)])
    for fr, lab in batches(frames, labels, args.batch_size):
        wanted = {n: c for n, c in live.items() if c.limit is None or seen < c.limit}
        keep = {n: (c.limit - seen if c.limit is not None else len(lab)) for n, c in wanted.items()}
        results: dict[str, Any] = {}
        times: dict[str, float] = {}
        for who in dict.fromkeys([w for c in wanted.values() for w in (c.baseline, c.target)]):
            if who not in runners:
                continue
            n_take = max(keep[n] for n, c in wanted.items() if who in (c.baseline, c.target))
            try:
                t0 = time.perf_counter()
                results[who] = runners[who].run(fr[:, :n_take] if n_take < fr.shape[1] else fr)
                times[who] = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001 - a failing target is reported, not a traceback
                del runners[who]
                for n, c in list(live.items()):
                    if who in (c.target, c.baseline):
                        entries[n].update(status="error", verdict="ERROR",
                                          error=f"{who} failed while running: {describe_error(err)}")
                        del live[n]
        for n, c in wanted.items():
            if n not in live or c.target not in results or c.baseline not in results:
                continue
            k = min(keep[n], len(lab))
            accs[n].update(_head(results[c.baseline], k), _head(results[c.target], k), lab[:k])
            seconds[n] += times.get(c.target, 0.0)
        seen += len(lab)
        if bar is not None:
            bar.update(len(lab))
    if bar is not None:
        bar.close()
    return accs, seconds


def _head(result: Any, k: int) -> Any:
    """The first ``k`` samples of a run result (a runner may have run more for another comparison)."""
    if result.output.shape[1] == k:
        return result
    from neuromoco.deploy.result import RunResult

    return RunResult(output=result.output[:, :k], spike_counts={n: v[:, :k] for n, v in result.spike_counts.items()},
                     spikes={n: v[:, :k] for n, v in result.spikes.items()})


def _judge(comparisons: dict[str, Comparison], accs: dict[str, Any], seconds: dict[str, float],
           entries: dict[str, dict[str, Any]], tol: Tolerances) -> dict[str, dict[str, Any]]:
    """Metrics and tolerance verdicts into each entry; the per-target plot data for the report."""
    extras: dict[str, dict[str, Any]] = {}
    for name, acc in accs.items():
        if entries[name]["status"] == "error" or acc.n == 0:
            continue
        metrics = acc.result()
        metrics["target_seconds"] = seconds[name]
        limits = tol.equality() if comparisons[name].exact else tol.for_target(name)
        status = verdict(metrics, limits)
        entries[name].update(metrics=metrics, tolerances=limits.as_dict(), violations=check(metrics, limits),
                             sample_size_note=sample_size_note(metrics, limits), status=status,
                             verdict=status.upper(), held_to_equality=limits.min_agreement >= 1.0)
        extras[name] = {"rates": acc.rates(),
                        "raster": None if acc.raster.index < 0 else (acc.raster.index, acc.raster.reference,
                                                                      acc.raster.target)}
    return extras


def _print_entries(entries: dict[str, dict[str, Any]]) -> None:
    for name, e in entries.items():
        added = f"(added: {e['added']}) " if e.get("added") else ""
        if e["status"] == "error":
            print(f"{name}: ERROR {added}{e['error']}")
            continue
        m = e["metrics"]
        role = (f"[{m['samples']} samples] " if e["role"] == "parity"
                else f"[{e['role']} vs {e['compared_with']}, {m['samples']} samples] ")
        acc_text = (f"accuracy {m['accuracy_target']:.4f} (reference {m['accuracy_reference']:.4f}), "
                    if "accuracy_target" in m else "")
        lo, hi = m["agreement_ci95"]
        print(f"{name}: {e['verdict']} {added}{role}{acc_text}agreement {m['agreement']:.4f} "
              f"(95% {lo:.4f}-{hi:.4f}), max layer count diff {m['max_count_rel_diff']:.4f}, "
              f"rate cosine {m['rate_cosine']:.6f}")
        what = "too few samples to decide" if e["status"] == "inconclusive" else "outside tolerance"
        for v in e["violations"]:
            print(f"  {what}: {v}")
        if e.get("sample_size_note"):
            print(f"  note: {e['sample_size_note']}")
        for d in m.get("degenerate", []):
            print(f"  DEGENERATE: {d}")
