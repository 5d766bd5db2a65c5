"""`deploy export MODEL.nir --target lava|onnx [--precision float|fixed] [--int8] --out DIR`

Loads and checks the graph, then hands it to the target (:func:`neuromoco.deploy.targets.get_target`), which writes
its artefact under ``--out``; the model card is copied beside it so ``deploy run DIR`` finds both.
Target options not covered by a flag go as ``-o KEY=VALUE`` (repeatable; values are parsed as JSON
when they can be, e.g. ``-o input_scale=2 -o opset=17``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from neuromoco.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--target", required=True,
                   help="lava, lava-float, lava-fixed, onnx or onnx-int8 (see neuromoco.deploy.targets.TARGETS)")
    p.add_argument("--out", required=True, help="folder for the artefact")
    p.add_argument("--card", help="model card JSON (default: beside the .nir file)")
    p.add_argument("--dt", type=float, help="Euler step in seconds, overriding the model card's")
    p.add_argument("--precision", choices=["float", "fixed"],
                   help="Lava: floating point or Loihi 2 fixed point (default: as the target name says)")
    p.add_argument("--int8", action="store_true", help="ONNX: also write the int8 (QDQ) model")
    p.add_argument("--dataset", help="dataset name or frames .npz, for targets that calibrate (onnx --int8)")
    p.add_argument("--root", help="dataset root folder")
    add_option_argument(p)


def add_option_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra target option, repeatable (e.g. -o tile=32 for lava, -o opset=17 for onnx)")


def parse_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"option {item!r} is not KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def target_options(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The target object and the keyword options the flags ask for."""
    from neuromoco.deploy.targets import get_target

    target, options = get_target(args.target)
    if getattr(args, "precision", None):
        if not args.target.startswith("lava"):
            raise UserError("--precision applies to the lava target only")
        options["precision"] = args.precision
    if getattr(args, "int8", False):
        if not args.target.startswith("onnx"):
            raise UserError("--int8 applies to the onnx target only")
        options["quantize"] = "int8"
    for key in ("dataset", "root"):
        if getattr(args, key, None):
            options[key] = getattr(args, key)
    options.update(parse_options(getattr(args, "option", []) or []))
    return target, options


def load_card(model: Path, card: str | None, dt: float | None):
    from neuromoco.deploy.card import ModelCard

    card_path = Path(card) if card else ModelCard.beside(model)
    if not card_path.exists() and not card:
        raise UserError(f"no model card for {model} (looked for {card_path}); pass --card")
    c = ModelCard.load(card_path)
    if dt is not None:
        c.dt = float(dt)
    return c


def run(args: argparse.Namespace) -> int:
    from neuromoco.deploy.card import CARD_NAME
    from neuromoco.deploy.graph import load_graph

    model = Path(args.model)
    card = load_card(model, args.card, args.dt)
    graph = load_graph(model, input_shape=card.input_shape)
    target, options = target_options(args)
    out = Path(args.out)
    artefact = target.export(graph, card, out, **options)
    card.save(out / CARD_NAME)
    print(f"{args.target}: wrote {artefact}")
    report = Path(artefact).parent / "lava_export.json"
    if args.target.startswith("lava") and report.exists():
        _print_lava_summary(json.loads(report.read_text()))
    return 0


def _print_lava_summary(rep: dict[str, Any]) -> None:
    print(f"  {rep['precision']} point, {len(rep['layers'])} neuron layers, depth {rep['depth']} steps")
    for lay in rep["layers"]:
        line = (f"  {lay['name']:<16} {lay['type']:<8} {lay['neurons']:>7} neurons  delay {lay['delay']}  "
                f"{lay['process']}")
        q = lay.get("quantization")
        if q:
            errs = [c.get("rel_weight_error", 0.0) for c in q["connections"].values()]
            line += f"  weight error {max(errs or [0.0]):.2%}"
            if "vth_mantissa" in q:
                line += f"  vth {q['vth_mantissa'][1]}"
        print(line)
    print("  quantization and process details: lava_export.json" if rep["precision"] == "fixed"
          else "  details: lava_export.json")
