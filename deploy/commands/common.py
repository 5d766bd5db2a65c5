"""What ``deploy export``, ``run``, ``parity`` and ``profile`` share: flags, the model card, options, runners.

Every one of these commands takes the same flags for the same things (:func:`add_shared_arguments`:
``--card``, ``--dt``, ``--dataset``, ``--root``, ``--calibration``, ``-o KEY=VALUE``, ``--no-progress``),
resolves the model card one way (:func:`resolve_card`), parses target options against the target's own
options class (:func:`target_options`); the jobs themselves are :mod:`neuromoco.deploy.api`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.cli import add_no_progress
from neuromoco.deploy.api.model import resolve_card
from neuromoco.deploy.api.options import (
    card_option_items,
    declared,
    parse_option_items,
    target_options,
    with_card_options,
)
from neuromoco.deploy.api.samples import SPLITS, batches, progress_bar
from neuromoco.errors import UserError

__all__ = [  # what the commands import from here (the API's plumbing re-exported for them and for tests)
    "AtLeastOne", "add_sample_arguments", "add_shared_arguments", "add_target_flags", "batches", "card_option_items",
    "flag_options", "load_model", "load_samples", "parse_option_items", "progress_bar", "resolve_card",
    "run_context", "split_list", "target_options", "with_card_options",
]

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


# ------------------------------------------------------------------------- model, options, samples
# The jobs' own plumbing lives in neuromoco.deploy.api; these are the flags' views of it.

def run_context(args: argparse.Namespace, *, progress: bool = False) -> Any:
    """The :class:`RunContext` the flags describe (the calibration frames are read here)."""
    from neuromoco.deploy.api.context import run_context as context

    return context(args.dataset, args.root, getattr(args, "calibration", None), progress)


def load_samples(card: Any, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[N, T, *input_shape]`` and labels of the split the flags name (never empty)."""
    from neuromoco.deploy.api.samples import load_samples as load

    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    return load(card, args.dataset, args.split, args.root, args.limit)


def load_model(args: argparse.Namespace) -> tuple[Any, np.ndarray, np.ndarray]:
    """The checked model (graph and card) and the frames ``[N, T, *input_shape]`` with labels the flags name."""
    from neuromoco.deploy.api.model import Model

    model = Path(args.model)
    if not model.exists():
        raise UserError(f"NIR file not found: {model}")
    m = Model.load(model, args.card, dt=args.dt, dataset=args.dataset)
    frames, labels = load_samples(m.card, args)
    return m, frames, labels


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
        if key in values and key not in declared(args.target):
            raise UserError(f"{flag} applies to the {' or '.join(_families_declaring(key))} target only")
    return values


def _families_declaring(key: str) -> list[str]:
    """For each options class that declares ``key``, the first target name using it (e.g. ``lava``)."""
    from neuromoco.deploy.targets import TARGETS

    first: dict[str, str] = {}
    for name, s in TARGETS.items():
        first.setdefault(s.options, name)
    return [name for name in first.values() if key in declared(name)]
