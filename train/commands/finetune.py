"""`train finetune`: the pre-trained encoder and a new linear readout, all trained on labels.

Options and outputs: :mod:`neuromoco.train.commands.downstream`.
"""

from __future__ import annotations

import argparse

from neuromoco.train.commands import downstream
from neuromoco.train.engine.modes import MODES

MODE = MODES["finetune"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    downstream.add_arguments(p, MODE)


def run(args: argparse.Namespace) -> int:
    return downstream.run(args, MODE)
