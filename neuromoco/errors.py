"""The one exception a user sees as a message rather than a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (missing file, bad graph, bad option): printed as one line, exit 2.

    Raised anywhere in the library; the command-line front-end (:func:`neuromoco.cli.run_cli`) turns it
    into ``PROG COMMAND: error: MESSAGE``.
    """
