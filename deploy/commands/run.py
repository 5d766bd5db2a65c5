"""`deploy run MODEL.nir --target NAME --dataset NAME|FILE.npz [--split test] [--limit N] --out DIR`

Runs a graph on a target over a dataset split in batches (a progress bar per batch) and writes to
``--out``: ``predictions.npz`` (outputs ``[T, N, n_out]``, predictions, labels and per-layer spike counts
``spike_counts/<node> [T, N]``, see :meth:`neuromoco.deploy.result.RunResult.save`) and ``summary.json``
(accuracy, samples, time, per-layer spike totals). ``MODEL`` may also be a folder written by
``deploy export`` (its artefact and model card are used as they are).

Each batch is one call of the target's runner; for Lava one batch is one Lava run (samples side by side
and one after another, state reset between samples), so a larger ``--batch-size`` starts fewer runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.commands.export import add_option_argument, load_card, target_options
from neuromoco.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .nir graph, or a folder written by `deploy export`")
    p.add_argument("--target", required=True, help="reference, lava, lava-float, lava-fixed, onnx, onnx-int8")
    p.add_argument("--dataset", help="dataset name, or a frames .npz file (default: the model card's dataset)")
    p.add_argument("--split", default="test", help="dataset split (default test)")
    p.add_argument("--root", help="dataset root folder")
    p.add_argument("--limit", type=int, help="use only the first N samples")
    p.add_argument("--batch-size", type=int, default=64, help="samples per runner call (default 64)")
    p.add_argument("--out", required=True, help="folder for predictions.npz and summary.json")
    p.add_argument("--card", help="model card JSON (default: beside the .nir file)")
    p.add_argument("--dt", type=float, help="Euler step in seconds, overriding the model card's "
                                            "(or giving it, with a frames .npz and no card)")
    p.add_argument("--precision", choices=["float", "fixed"], help="Lava: floating or fixed point")
    p.add_argument("--int8", action="store_true", help="ONNX: run the int8 model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option_argument(p)


def _card(args: argparse.Namespace, model: Path):
    from neuromoco.deploy.card import CARD_NAME, ModelCard
    from neuromoco.deploy.datasets import load_npz_frames

    if args.card:
        card_path = Path(args.card)
    else:
        card_path = model / CARD_NAME if model.is_dir() else ModelCard.beside(model)
    if card_path.exists() or args.card:
        return load_card(model, str(card_path), args.dt)
    if args.dataset and args.dataset.endswith(".npz") and args.dt:
        frames, _ = load_npz_frames(args.dataset, 1)
        return ModelCard(input_shape=list(frames.shape[2:]), time_steps=int(frames.shape[1]), dt=args.dt)
    raise UserError(f"no model card for {model} (looked for {card_path}); pass --card, or a frames .npz with "
                    "--dataset and the time step with --dt")


def build_runner(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The runner for ``args`` (from a .nir graph or an exported folder), its card and its options."""
    from neuromoco.deploy.graph import load_graph

    model = Path(args.model)
    if not model.exists():
        raise UserError(f"model not found: {model}")
    card = _card(args, model)
    target, options = target_options(args)
    if model.is_dir():
        return target.load(model, **options), card, options
    graph = load_graph(model, input_shape=card.input_shape)
    return target.runner(graph, card, **options), card, options


def run(args: argparse.Namespace) -> int:
    from neuromoco.deploy.datasets import load_frames
    from neuromoco.deploy.result import RunResult
    from neuromoco.io import atomic_write_json

    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    t_build = time.perf_counter()
    runner, card, options = build_runner(args)
    t_build = time.perf_counter() - t_build
    frames, labels = load_frames(card, args.dataset, args.split, args.root, args.limit)
    if len(frames) == 0:
        raise UserError("the dataset split holds no samples")
    parts: list[RunResult] = []
    t0 = time.perf_counter()
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(frames), unit="sample", desc=f"{args.target}", leave=False)
    for i in range(0, len(frames), args.batch_size):
        batch = np.ascontiguousarray(np.swapaxes(frames[i:i + args.batch_size], 0, 1))  # [T, B, C, H, W]
        parts.append(runner.run(batch))
        if bar is not None:
            bar.update(batch.shape[1])
            done = sum(p.output.shape[1] for p in parts)
            bar.set_postfix(acc=f"{np.mean(np.concatenate([p.predictions for p in parts]) == labels[:done]):.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    result = RunResult.concatenate(parts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.save(str(out / "predictions.npz"), labels=labels)
    acc = float(np.mean(result.predictions == labels))
    T = int(frames.shape[1])
    summary = {
        "model": str(args.model), "target": args.target,
        "options": {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool, type(None)))},
        "dataset": args.dataset or card.dataset.get("name"), "split": args.split, "samples": len(labels),
        "time_steps": T, "accuracy": acc, "build_seconds": t_build, "run_seconds": seconds,
        "samples_per_s": len(labels) / seconds if seconds > 0 else None,
        "spikes_per_sample": {k: float(v.sum() / len(labels)) for k, v in result.spike_counts.items()},
        "card_accuracy": card.accuracy or None,
    }
    atomic_write_json(out / "summary.json", summary)
    print(f"{args.target}: {len(labels)} samples, accuracy {acc:.4f}, {summary['samples_per_s']:.1f} samples/s; "
          f"wrote {out / 'predictions.npz'} and {out / 'summary.json'}")
    return 0
