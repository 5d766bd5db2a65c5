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

``--targets trace:FILE`` compares a recorded run (``deploy run --trace``, or a chip's) like a target; a trace of
a slow target's emulator stands in for the emulator, which then does not run. ``--trace nir|npz`` writes every run
of the job as a trace in ``OUT/traces/``, streamed batch by batch (``--trace-voltages``: with membrane voltages).
See docs/reports.md, "Traces".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuromoco.deploy.api.comparison import TRACE_FORMATS, ParitySettings, Selection, emulated_targets
from neuromoco.deploy.commands.common import (
    add_sample_arguments,
    add_shared_arguments,
    load_model,
    parse_option_items,
    run_context,
)
from neuromoco.deploy.parity import Tolerances, parse_names
from neuromoco.deploy.targets import exact_targets, parity_defaults


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults, exact = ",".join(parity_defaults()), ",".join(exact_targets())
    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--targets", default=None,
                   help=f"comma-separated targets to compare with the reference (default {defaults}); "
                        "trace:FILE is a recorded run (a trace of a slow target's emulator replaces its run)")
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
    p.add_argument("--trace", choices=list(TRACE_FORMATS),
                   help="also write each compared run (every target, emulator and the reference) as a trace, "
                        "OUT/traces/<run>.nir (NIR graph data) or .npz, streamed batch by batch; "
                        "`deploy parity --targets trace:FILE` replays one")
    p.add_argument("--trace-voltages", action="store_true",
                   help="with --trace: the traces hold membrane voltages too, where the target has record_voltages "
                        "(the reference, reference-fixed); 4 or 8 bytes a neuron and step, several times the spikes")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 for an INCONCLUSIVE target too (too few samples to decide its agreement tolerance)")
    add_shared_arguments(p)


# ------------------------------------------------------------------------------------------ the command

def run(args: argparse.Namespace) -> int:
    """``deploy parity``: the API's parity job (:class:`~neuromoco.deploy.api.comparison.Selection`) with the flags;
    writes parity.json and report.md, prints the table and what failed."""
    names, values, tol = _selection(args)
    selection = Selection.make(names, values, tol, args.exactness_samples,
                               None if args.targets is not None else "the default --targets")
    out = Path(args.out)
    settings = ParitySettings(limit=args.limit, exactness_samples=args.exactness_samples,
                              reference_dtype=args.reference_dtype, device=args.device, worst=args.worst,
                              batch_size=args.batch_size, strict=bool(args.strict), progress=not args.no_progress,
                              trace=args.trace, trace_dir=str(out / "traces") if args.trace else None,
                              trace_voltages=bool(args.trace_voltages))
    # the whole split: --limit bounds only the slow targets' subset (Comparison.limit)
    model, frames, labels = load_model(argparse.Namespace(**{**vars(args), "limit": None}))
    report = selection.run(model, frames, labels, settings, run_context(args), echo=print,
                           dataset=args.dataset or model.card.dataset.get("name", ""), split=args.split)
    report.data.update(model=str(args.model))
    if model.graph is not None:  # its picture, which report.md embeds
        from neuromoco.deploy.graph.draw import draw_graph

        draw_graph(model.graph, out / "graph.png", model.card.input_shape, title=Path(args.model).name)
    written = report.write(out)
    print(report.table())
    traces = report.data.get("traces", {})
    print(f"wrote {out / 'parity.json'} and {written}" + (f"; traces {', '.join(traces.values())}" if traces else ""))
    bad = report.by_status("fail") + report.by_status("error")
    if bad:
        print(f"deploy parity: {len(bad)} target(s) outside tolerance or failed: {', '.join(bad)}", file=sys.stderr)
    inconclusive = report.by_status("inconclusive")
    if inconclusive:
        print(f"deploy parity: {len(inconclusive)} target(s) INCONCLUSIVE (too few samples to decide the "
              f"agreement tolerance): {', '.join(inconclusive)}"
              + ("; --strict counts them as failures" if args.strict else "; run more samples to decide "
                 "(--strict: exit 1 for them)"), file=sys.stderr)
    return 0 if report.passed else 1


def _selection(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, str]], Tolerances]:
    """The target names, their ``-o`` values and the tolerances the flags give; typos fail before any work."""
    names = parse_names(args.targets if args.targets is not None else ",".join(parity_defaults()))
    every = Selection.involved(names)
    exact = tuple(parse_names(args.exact_targets)) if args.exact_targets.strip().lower() != "none" else ()
    tol = Tolerances(args.min_agreement, args.max_count_rel_diff, args.min_rate_cosine, args.max_accuracy_drop,
                     exact)
    return names, parse_option_items(args.option, every), tol
