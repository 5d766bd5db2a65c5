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
import contextlib
import inspect
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.parity import EXACT_TARGETS, ParityAccumulator, Tolerances, check, parse_names
from neuromoco.errors import UserError

DEFAULT_TARGETS = "lava-float,lava-fixed,onnx,onnx-int8"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--targets", default=DEFAULT_TARGETS,
                   help=f"comma-separated targets to compare with the reference (default {DEFAULT_TARGETS})")
    add_data_arguments(p)
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


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``parity`` and ``profile``: the model card, the samples, the device."""
    p.add_argument("--card", help="model card JSON (default: beside the .nir file)")
    p.add_argument("--dataset", help="dataset name, or a frames .npz file (default: the model card's dataset)")
    p.add_argument("--split", default="test", help="dataset split (default test)")
    p.add_argument("--root", help="dataset root folder")
    p.add_argument("--limit", type=int, help="use only the first N samples")
    p.add_argument("--batch-size", type=int, default=32, help="samples per batch (default 32)")
    p.add_argument("--dt", type=float,
                   help="Euler step in seconds for a graph without a model card (with a frames .npz)")
    p.add_argument("--device", default="cpu", help="device of the reference executor (default cpu)")
    p.add_argument("--calibration", metavar="FILE.npz",
                   help="frames that quantizing targets (onnx-int8) calibrate on (default: the dataset's "
                        "train split; for a frames .npz dataset, that file)")


# ------------------------------------------------------------------------------------------ shared helpers
def load_model(args: argparse.Namespace) -> tuple[Any, ModelCard, np.ndarray, np.ndarray]:
    """The checked graph, its model card, and frames ``[N, T, C, H, W]`` with labels, as the options say."""
    from neuromoco.deploy.datasets import load_frames, load_npz_frames
    from neuromoco.deploy.graph import load_graph

    model = Path(args.model)
    if not model.exists():
        raise UserError(f"NIR file not found: {model}")
    card_path = Path(args.card) if args.card else ModelCard.beside(model)
    if card_path.exists() or args.card:
        card = ModelCard.load(card_path)
    elif args.dataset and args.dataset.endswith(".npz") and args.dt:
        frames, _ = load_npz_frames(args.dataset, 1)
        card = ModelCard(input_shape=list(frames.shape[2:]), time_steps=int(frames.shape[1]), dt=args.dt)
    else:
        raise UserError(f"no model card for {model} (looked for {card_path}); pass --card, or a frames .npz "
                        "with --dataset and the time step with --dt")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    graph = load_graph(model, input_shape=card.input_shape)
    frames, labels = load_frames(card, args.dataset, args.split, args.root, args.limit)
    if len(frames) == 0:
        raise UserError("the dataset split holds no samples")
    return graph, card, frames, labels


def batches(frames: np.ndarray, labels: np.ndarray, size: int):
    """``(frames [T, B, C, H, W], labels [B])`` batches of ``frames [N, T, C, H, W]``."""
    for i in range(0, len(frames), size):
        yield np.ascontiguousarray(np.swapaxes(frames[i:i + size], 0, 1)), labels[i:i + size]


def build_runner(name: str, graph: Any, card: ModelCard, **extra: Any) -> Any:
    """The runner of target ``name`` with its default options, asking for per-neuron spike records.

    Options a runner does not declare are passed only when it takes ``**options`` (every target here
    does, and ignores what it does not use): ``record_spikes`` / ``spike_tensors`` ask for the full 0/1
    spike record, ``dataset`` / ``root`` / ``calibration`` tell a quantizing target where its
    calibration samples come from.
    """
    from neuromoco.deploy.targets import get_target

    target, options = get_target(name)
    params = inspect.signature(target.runner).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    wanted = {"record_spikes": True, "spike_tensors": True, **extra}
    for key, value in wanted.items():
        if value is not None and (takes_any or key in params):
            options.setdefault(key, value)
    return target.runner(graph, card, **options)


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """What every target is told about the data: the dataset (for calibration) and calibration frames."""
    from neuromoco.deploy.datasets import load_npz_frames

    opts: dict[str, Any] = {"dataset": args.dataset, "root": args.root}
    if getattr(args, "calibration", None):
        opts["calibration"], _ = load_npz_frames(args.calibration)
    return opts


def describe_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def reference_dtype(target: str, choice: str) -> str:
    if choice != "auto":
        return choice
    return "float64" if target.startswith("lava") else "float32"


def progress(total: int, desc: str):
    _settle_lava_start_method()
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, disable=None)
    except ImportError:  # pragma: no cover
        return None


def _settle_lava_start_method() -> None:
    """Import Lava's runtime (if it is installed) before a progress bar exists.

    Lava's ``message_infrastructure.multiprocessing`` calls ``multiprocessing.set_start_method('fork')``
    when first imported, which raises once anything has fixed the start method; tqdm's first bar does
    (it creates a multiprocessing lock). Importing Lava first keeps both working.
    """
    import importlib.util

    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return
    if importlib.util.find_spec("lava") is None:
        return
    from neuromoco.deploy.lava_compat import import_lava

    with contextlib.suppress(Exception):  # Lava unusable: its targets report their own error when built
        import_lava("lava.magma.runtime.message_infrastructure.multiprocessing")


# ------------------------------------------------------------------------------------------ the command
def run(args: argparse.Namespace) -> int:
    from neuromoco.deploy.graph import spiking_nodes
    from neuromoco.deploy.report import write_parity_report
    from neuromoco.deploy.targets import TARGETS
    from neuromoco.io import atomic_write_json

    names = parse_names(args.targets)
    if not names:
        raise UserError("--targets names no target")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise UserError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    exact = tuple(parse_names(args.exact_targets)) if args.exact_targets.strip().lower() != "none" else ()
    tol = Tolerances(args.min_agreement, args.max_count_rel_diff, args.min_rate_cosine, args.max_accuracy_drop,
                     exact)
    graph, card, frames, labels = load_model(args)
    layers = spiking_nodes(graph)
    out = Path(args.out)

    topts = target_options(args)
    entries: dict[str, dict[str, Any]] = {}
    runners: dict[str, Any] = {}
    for name in names:
        dtype = reference_dtype(name, args.reference_dtype)
        entries[name] = {"status": "ok", "reference_dtype": dtype, "violations": []}
        try:
            runners[name] = build_runner(name, graph, card, **topts)
        except Exception as err:  # noqa: BLE001 - a target that cannot build is reported, not a traceback
            entries[name].update(status="error", error=f"could not build: {describe_error(err)}")
    dtypes = sorted({entries[n]["reference_dtype"] for n in runners})
    refs = {d: build_runner("reference", graph, card, dtype=d, device=args.device) for d in dtypes}
    accs = {n: ParityAccumulator(layers, args.worst) for n in runners}
    seconds = {n: 0.0 for n in runners}

    bar = progress(len(frames), "parity")
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

    extras: dict[str, dict[str, Any]] = {}
    for name, acc in accs.items():
        if entries[name]["status"] == "error":
            continue
        metrics = acc.result()
        metrics["target_seconds"] = seconds[name]
        limits = tol.for_target(name)
        entries[name].update(metrics=metrics, tolerances=limits.as_dict(), violations=check(metrics, limits))
        if entries[name]["violations"]:
            entries[name]["status"] = "fail"
        extras[name] = {"rates": acc.rates(),
                        "raster": None if acc.raster.index < 0 else (acc.raster.index, acc.raster.reference,
                                                                      acc.raster.target)}
    summary = {
        "model": str(args.model), "dataset": args.dataset or card.dataset.get("name", ""), "split": args.split,
        "samples": len(frames), "time_steps": int(card.time_steps), "layers": layers,
        "tolerances": tol.as_dict(), "targets": entries,
        "passed": all(e["status"] == "ok" for e in entries.values()),
    }
    atomic_write_json(out / "parity.json", summary)
    report = write_parity_report(out, summary, extras)

    for name, e in entries.items():
        if e["status"] == "error":
            print(f"{name}: ERROR {e['error']}")
            continue
        m = e["metrics"]
        acc_text = (f"accuracy {m['accuracy_target']:.4f} (reference {m['accuracy_reference']:.4f}), "
                    if "accuracy_target" in m else "")
        print(f"{name}: {e['status'].upper()} {acc_text}agreement {m['agreement']:.4f}, "
              f"max layer count diff {m['max_count_rel_diff']:.4f}, rate cosine {m['rate_cosine']:.6f}")
        for v in e["violations"]:
            print(f"  outside tolerance: {v}")
    print(f"wrote {out / 'parity.json'} and {report}")
    if not summary["passed"]:
        bad = [n for n, e in entries.items() if e["status"] != "ok"]
        print(f"deploy parity: {len(bad)} target(s) outside tolerance or failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0
