"""The downstream commands come from one table of modes: each command's options follow its row."""

from __future__ import annotations

import argparse

import pytest

from neuromoco.cli import load_command
from neuromoco.train.cli import COMMANDS
from neuromoco.train.engine.modes import MODES


def _parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"train {name}")
    load_command(COMMANDS[name][0]).add_arguments(p)
    return p


@pytest.mark.parametrize("name", list(MODES))
def test_each_mode_is_a_command_whose_options_follow_its_row(name):
    mode = MODES[name]
    command = load_command(COMMANDS[name][0])
    assert command.mode is mode
    p = _parser(name)
    options = {s for a in p._actions for s in a.option_strings}
    assert ("--pretrained" in options) == mode.pretrained and ("--model" in options) == mode.takes_model
    argv = ["--out", "o"] + (["--pretrained", "p.pt"] if mode.pretrained else [])
    args = p.parse_args(argv)
    assert (args.epochs, args.lr) == (mode.epochs, mode.lr)
    if mode.pretrained:
        with pytest.raises(SystemExit):
            p.parse_args(["--out", "o"])  # --pretrained is required
    else:
        assert args.model == "cnn3-34"


def test_the_table():
    assert {n: (m.pretrained, m.frozen) for n, m in MODES.items()} == {
        "finetune": (True, False), "linear": (True, True), "supervised": (False, False)}
