"""`deploy examples [NAME ...] [--copy DIR | --path]`: the NIR graphs that ship with the package.

They are the package data of ``neuromoco.examples`` (``nir_models/`` in a source checkout), so an installed
wheel has them: one line each (input shape, time steps, nodes, where the graph comes from), ``--copy DIR``
writes graphs and cards to a folder of the user's (``deploy inspect DIR/X.nir`` then runs on them) and
``--path`` prints the installed folder.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

from neuromoco.errors import UserError

PACKAGE = "neuromoco.examples"


@dataclass(frozen=True)
class Example:
    """One shipped graph: its files and the facts its line shows."""

    name: str
    graph: Path
    card: Path
    input_shape: list[int]
    time_steps: int
    nodes: int
    origin: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="only these graphs (default: every one)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--copy", type=Path, metavar="DIR",
                      help="copy the graphs and their model cards (X.nir, X.card.json) into DIR (created)")
    what.add_argument("--path", action="store_true", help="print the folder the installed graphs are in, only")


def folder() -> Path:
    """Where the shipped graphs are: the installed ``neuromoco.examples`` package."""
    from importlib.resources import files

    try:
        where = Path(str(files(PACKAGE)))
    except ModuleNotFoundError:
        raise UserError(f"{PACKAGE} is not installed (an editable install made before it existed: reinstall with "
                        "`pip install -e .` or `make install`)") from None
    if not where.is_dir():
        raise UserError(f"{PACKAGE} is not a folder on disk ({where}); install the wheel unzipped (pip does)")
    return where


def _origin(card: dict) -> str:
    """Which tool wrote the graph, from its card (a fixture names the tool it imitates)."""
    extra = card.get("extra") or {}
    writer = extra.get("written_like")
    if writer:
        how = _WRITERS.get(writer, f"written as {writer} writes it")
        return f"{how} (hand-built, random weights)"
    if extra.get("exporter"):
        data = (card.get("dataset") or {}).get("name", "")
        acc = (card.get("accuracy") or {}).get("test")
        trained = f", trained on {data}" + ("" if acc is None else f", test accuracy {acc:.3f}")
        return f"{extra['exporter']}{trained if data else ''}"
    return "unknown tool"


#: how a fixture's ``written_like`` reads in the listing, where the writer's name alone would mislead
_WRITERS = {"nir": "written with NIR's own API", "neuromoco": "written by this project's exporter"}


def examples(names: list[str] | None = None) -> list[Example]:
    """The shipped graphs (those in ``names`` only, when given), sorted by name."""
    import json

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph

    where = folder()
    found = {p.name[: -len(".nir")]: p for p in sorted(where.glob("*.nir"))}
    unknown = [n for n in names or [] if n not in found]
    if unknown:
        raise UserError(f"no shipped graph named {', '.join(unknown)}; shipped: {', '.join(found)}")
    out = []
    for name, graph in found.items():
        if names and name not in names:
            continue
        card_path = ModelCard.beside(graph)
        card = ModelCard.load(card_path)
        n = len(load_graph(graph, input_shape=card.input_shape).nodes)
        out.append(Example(name, graph, card_path, list(card.input_shape), card.time_steps, n,
                           _origin(json.loads(card_path.read_text()))))
    return out


def run(args: argparse.Namespace) -> int:
    if args.path:
        print(folder())
        return 0
    found = examples(args.names)
    if not found:
        raise UserError(f"no .nir graph in {folder()}: the installation lacks its package data")
    if args.copy is not None:
        args.copy.mkdir(parents=True, exist_ok=True)
        for e in found:
            for src in (e.graph, e.card):
                shutil.copyfile(src, args.copy / src.name)
        print(f"copied {len(found)} graph(s) with their model cards to {args.copy}; e.g. "
              f"`deploy inspect {args.copy / found[0].graph.name}`")
        return 0
    print(f"{len(found)} example graph(s) shipped in {folder()}:")
    w = max(len(e.name) for e in found)
    for e in found:
        print(f"  {e.name:<{w}}  input {e.input_shape!s:<15} x {e.time_steps:>3} steps, {e.nodes:>2} nodes, "
              f"{e.origin}")
    print("copy them out with `deploy examples [NAME ...] --copy DIR`, then e.g. `deploy inspect DIR/NAME.nir`")
    return 0
