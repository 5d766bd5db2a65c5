"""What ``deploy export``, ``run``, ``parity`` and ``profile`` share: flags, the model card, options, runners.

Every one of these commands takes the same flags for the same things (:func:`add_shared_arguments`:
``--card``, ``--dt``, ``--dataset``, ``--root``, ``--calibration``, ``-o KEY=VALUE``, ``--no-progress``),
resolves the model card one way (:func:`resolve_card`), parses target options against the target's own
options class (:func:`target_options`) and builds runners one way (:func:`build_runner`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.cli import add_no_progress
from neuromoco.errors import UserError

# ------------------------------------------------------------------------------------------- flags


def add_shared_arguments(p: argparse.ArgumentParser, *, targets: list[str] | None = None) -> None:
    """The flags every deploy command that runs or builds a target takes, with one meaning each."""
    from neuromoco.deploy.targets import options_help

    g = p.add_argument_group("model and data")
    g.add_argument("--card", help="model card JSON (default: X.card.json or model_card.json beside the graph)")
    g.add_argument("--dt", type=float, help="Euler step in seconds, overriding the model card's (or giving it, "
                                            "with a frames .npz and no card)")
    g.add_argument("--dataset", help="dataset name, or a frames .npz file (default: the model card's dataset)")
    g.add_argument("--root", help="dataset root folder")
    g.add_argument("--calibration", metavar="FILE.npz",
                   help="frames that quantizing targets (onnx-int8) calibrate on (default: the dataset's train split)")
    t = p.add_argument_group("target options")
    t.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a target option, repeatable; TARGET:KEY=VALUE sets it for one target only "
                        "(listed below)")
    add_no_progress(p)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = options_help(targets)


class AtLeastOne(argparse.Action):
    """Stores an ``int`` flag's value; one below 1 is a usage error naming the flag (before any work)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values < 1:
            parser.error(f"{option_string or self.dest} must be >= 1, got {values}")
        setattr(namespace, self.dest, values)


#: the splits every dataset has (``all``: the whole set, where a dataset's recipe is one set)
SPLITS = ("train", "test", "all")


def split_list(text: str) -> str:
    """``--split``'s value checked: known split names joined with commas (an argparse ``type``)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SPLITS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: splits are {', '.join(SPLITS)} (several joined with commas)")
    return ",".join(names)


def add_sample_arguments(p: argparse.ArgumentParser, *, batch_size: int,
                         limit_help: str = "use only the first N samples") -> None:
    """Which samples a command runs: split, limit (``limit_help``: what it bounds in this command), batch size."""
    p.add_argument("--split", default="test", type=split_list,
                   help="dataset split, or several joined with commas (default test; e.g. train,test)")
    p.add_argument("--limit", type=int, action=AtLeastOne, help=limit_help)
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help=f"samples per runner call (default {batch_size}; for Lava one batch is one Lava run)")


# ------------------------------------------------------------------------------------- model card

def resolve_card(model: Path, card: str | None = None, dt: float | None = None, dataset: str | None = None):
    """The model card of ``model`` (a ``.nir`` file or an exported folder), with ``--dt`` applied.

    Looked up in this order: ``--card``; ``model_card.json`` in an exported folder; ``X.card.json`` or
    ``model_card.json`` beside the graph; else, for a frames ``.npz`` dataset and ``--dt``, a card made
    from the frames' shape.
    """
    from neuromoco.deploy.card import CARD_NAME, ModelCard
    from neuromoco.deploy.datasets import load_npz_frames

    if card:
        path = Path(card)
    else:
        path = model / CARD_NAME if model.is_dir() else ModelCard.beside(model)
    if card or path.exists():
        c = ModelCard.load(path)
        if dt is not None:
            c.dt = float(dt)
        return c
    if dataset and dataset.endswith(".npz") and dt:
        frames, _ = load_npz_frames(dataset, 1)
        return ModelCard(input_shape=list(frames.shape[2:]), time_steps=int(frames.shape[1]), dt=float(dt),
                         source=f"the frames file {dataset} (no model card)")
    raise UserError(f"no model card for {model} (looked for {path}); pass --card, or a frames .npz with "
                    "--dataset and the time step with --dt")


# ---------------------------------------------------------------------------------------- options

def parse_option_items(items: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """``-o KEY=VALUE`` / ``-o TARGET:KEY=VALUE`` strings as ``{target: {key: value}}`` for ``names``.

    A plain key goes to every target in ``names`` whose options declare it; a key no named target
    declares, or a ``TARGET:`` prefix naming none of ``names``, is an error naming the valid keys.
    """
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"option {item!r} is not KEY=VALUE")
        scope, colon, key = key.rpartition(":") if ":" in key else ("", "", key)
        if colon:
            if scope not in out:
                raise UserError(f"option {item!r} names target {scope!r}, which this command does not run "
                                f"({', '.join(names)})")
            chosen = [scope]
        else:
            chosen = [n for n in names if key in _declared(n)]
        if not chosen:
            valid = {n: ", ".join(_declared(n)) for n in names}
            raise UserError(f"unknown option {key!r}; valid: " + "; ".join(f"{n}: {v}" for n, v in valid.items()))
        for n in chosen:
            out[n][key] = value
    return out


def card_option_items(card: Any, names: list[str]) -> dict[str, dict[str, str]]:
    """The target options the model card asks for, as ``{target: {key: value}}`` for ``names``.

    A model trained with ``train finetune --qat loihi`` records the Lava options its weight grid was trained
    for (:meth:`~neuromoco.deploy.card.ModelCard.qat_deploy_options`, e.g. ``scale=layer``); deploying with
    other ones would quantize onto a different grid. They apply to every target in ``names`` that declares the
    key; ``-o`` overrides them.
    """
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    for key, value in (card.qat_deploy_options() or {}).items():
        for n in names:
            if key in _declared(n):
                out[n][key] = value
    return out


def with_card_options(card: Any, values: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """``values`` (per target) over the model card's options; says once which card options apply."""
    from_card = card_option_items(card, list(values))
    applied = sorted({f"{k}={v}" for n, opts in from_card.items() for k, v in opts.items() if k not in values[n]})
    if applied:
        print(f"options from the model card (the model was trained for them with --qat): {' '.join(applied)}")
    return {n: {**from_card[n], **v} for n, v in values.items()}


def _declared(name: str) -> list[str]:
    """The option keys target ``name`` declares (none when the target cannot be imported: it fails later)."""
    from neuromoco.deploy.targets import options_class

    try:
        return list(options_class(name).fields())
    except ImportError:
        return []


def target_options(name: str, values: dict[str, Any]) -> tuple[Any, Any]:
    """The target ``name`` and its options: the name's preset, then ``values`` (checked)."""
    from neuromoco.deploy.targets import get_target, with_options

    target, preset = get_target(name)
    return target, with_options(name, preset, values)


def run_context(args: argparse.Namespace, *, progress: bool = False):
    """The :class:`RunContext` the flags describe (the calibration frames are read here)."""
    from neuromoco.deploy.datasets import load_npz_frames
    from neuromoco.deploy.targets.options import RunContext

    calibration = None
    if getattr(args, "calibration", None):
        calibration, _ = load_npz_frames(args.calibration)
    return RunContext(dataset=args.dataset, root=args.root, calibration=calibration, progress=progress)


def build_runner(target: Any, options: Any, context: Any, model: Path, card: Any, graph: Any = None) -> Any:
    """A runner of ``target`` for ``model``: an exported folder is opened as it is, a graph is built."""
    if model.is_dir():
        return target.load(model, options, context)
    if graph is None:
        from neuromoco.deploy.graph import load_graph

        graph = load_graph(model, input_shape=card.input_shape, shape_source=card.source)
    return target.runner(graph, card, options, context)


def describe_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------------- samples

def load_samples(card: Any, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[N, T, *input_shape]`` and labels of the split the flags name (never empty)."""
    from neuromoco.deploy.datasets import load_frames

    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not splits:
        raise UserError("--split names no split")
    if len(splits) > 1 and args.dataset and args.dataset.endswith(".npz"):
        raise UserError(f"--split {args.split}: a frames .npz file has no splits; it is used whole")
    parts = [load_frames(card, args.dataset, s, args.root, args.limit) for s in splits]
    frames = parts[0][0] if len(parts) == 1 else np.concatenate([f for f, _ in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([lab for _, lab in parts])
    if args.limit is not None:
        frames, labels = frames[:args.limit], labels[:args.limit]
    if len(frames) == 0:
        raise UserError("the dataset split holds no samples")
    return frames, labels


def load_model(args: argparse.Namespace) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The checked graph, its model card, and the frames ``[N, T, *input_shape]`` with labels the flags name."""
    from neuromoco.deploy.graph import load_graph

    model = Path(args.model)
    if not model.exists():
        raise UserError(f"NIR file not found: {model}")
    card = resolve_card(model, args.card, args.dt, args.dataset)
    graph = load_graph(model, input_shape=card.input_shape, shape_source=card.source)
    frames, labels = load_samples(card, args)
    return graph, card, frames, labels


def batches(frames: np.ndarray, labels: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(frames [T, B, ...], labels [B])`` batches of ``frames [N, T, ...]``."""
    for i in range(0, len(frames), size):
        yield np.ascontiguousarray(np.swapaxes(frames[i:i + size], 0, 1)), labels[i:i + size]


def progress_bar(total: int, desc: str, enabled: bool = True, targets: list[str] | None = None):
    """A tqdm bar on stderr, or None when disabled.

    The ``before_progress`` hook of each of ``targets`` (the targets the command runs) runs first: Lava's
    runtime sets the multiprocessing start method at import, which fails once tqdm's first bar has fixed it.
    """
    if not enabled:
        return None
    from tqdm import tqdm

    from neuromoco.deploy.targets import prepare_progress

    prepare_progress(targets or [])
    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, leave=False, disable=None)


# ------------------------------------------------------------------------------- shorthand flags

def add_target_flags(p: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--int8``: shorthands for ``-o precision=...`` (Lava) and ``-o quantize=int8`` (ONNX)."""
    p.add_argument("--precision", choices=["float", "fixed"],
                   help="Lava: floating point or Loihi 2 fixed point (= -o precision=...)")
    p.add_argument("--int8", action="store_true", help="ONNX: the int8 (QDQ) model (= -o quantize=int8)")


def flag_options(args: argparse.Namespace) -> dict[str, str]:
    """The option values the shorthand flags ask for, checked against the target they apply to."""
    values: dict[str, str] = {}
    if getattr(args, "precision", None):
        values["precision"] = args.precision
    if getattr(args, "int8", False):
        values["quantize"] = "int8"
    for flag, key in (("--precision", "precision"), ("--int8", "quantize")):
        if key in values and key not in _declared(args.target):
            raise UserError(f"{flag} applies to the {' or '.join(_families_declaring(key))} target only")
    return values


def _families_declaring(key: str) -> list[str]:
    """For each options class that declares ``key``, the first target name using it (e.g. ``lava``)."""
    from neuromoco.deploy.targets import TARGETS

    first: dict[str, str] = {}
    for name, s in TARGETS.items():
        first.setdefault(s.options, name)
    return [name for name in first.values() if key in _declared(name)]
