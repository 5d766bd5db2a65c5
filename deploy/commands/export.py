"""`deploy export MODEL.nir --target lava|onnx [--precision float|fixed] [--int8] --out DIR`

Loads and checks the graph, then hands it to the target (:func:`neuromoco.deploy.targets.get_target`),
which writes its artefact under ``--out``; the model card is copied beside it so ``deploy run DIR`` finds
both. Target options not covered by a flag go as ``-o KEY=VALUE`` (repeatable; each target's options
are listed by ``--help``, and an unknown key is an error).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuromoco.deploy.commands.common import (
    add_shared_arguments,
    add_target_flags,
    flag_options,
    parse_option_items,
    resolve_card,
    run_context,
)
from neuromoco.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from neuromoco.deploy.targets import TARGETS

    p.add_argument("model", help="the .nir graph (its model card is model_card.json beside it, or --card)")
    p.add_argument("--target", required=True, help=", ".join(TARGETS))
    p.add_argument("--out", required=True, help="folder for the artefact")
    add_target_flags(p)
    add_shared_arguments(p)


def run(args: argparse.Namespace) -> int:
    """``deploy export``: :func:`neuromoco.deploy.api.artefact.export_artefact` with the flags; prints the result."""
    from neuromoco.deploy.api.artefact import export_artefact
    from neuromoco.deploy.api.model import Model

    path = Path(args.model)
    if not path.exists():
        raise UserError(f"NIR file not found: {path}")
    model = Model.load(path, resolve_card(path, args.card, args.dt, args.dataset))
    values = {**flag_options(args), **parse_option_items(args.option, [args.target])[args.target]}
    artefact, target = export_artefact(model, args.target, args.out, values,
                                       run_context(args, progress=not args.no_progress), echo=print)
    print(f"{args.target}: wrote {artefact}")
    for line in target.summary(artefact):
        print(f"  {line}")
    return 0
