"""A small argparse front-end whose subcommands are imported only when they run.

Each subcommand is a module (or, written ``module:NAME``, an object in a module) exposing
``add_arguments(parser)`` and ``run(args) -> int``; the table maps the command name to ``(where, one-line
help)``. ``--help`` stays fast (no torch import)
and adding a command touches one line. Errors that a user caused (:class:`UserError`) are printed as
one clear line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from neuromoco.errors import UserError


def add_no_progress(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress``: the flag of every command that draws progress bars (``args.no_progress``)."""
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_command(where: str) -> Any:
    """The module ``where`` names, or the object ``NAME`` in it for ``module:NAME``."""
    module, _, name = where.partition(":")
    found = importlib.import_module(module)
    return getattr(found, name) if name else found


def build_parser(prog: str, description: str, commands: Mapping[str, tuple[str, str]],
                 argv: Sequence[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the command that runs pays for its imports
            load_command(module).add_arguments(p)
    return parser, chosen


def run_cli(prog: str, description: str, commands: Mapping[str, tuple[str, str]],
            argv: Sequence[str] | None = None, interrupted: str = "interrupted") -> int:
    """Parse ``argv``, run the chosen command; a :class:`UserError` is one line (exit 2), Ctrl-C prints
    ``interrupted`` (what the program keeps of the interrupted work; exit 130)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser(prog, description, commands, argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    command = load_command(commands[args.command][0])
    try:
        return int(command.run(args) or 0)
    except UserError as err:
        print(f"{prog} {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: {interrupted}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
