"""Every command answers --help, and deploy/ never imports train/ (the .nir file is the contract)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.cli import COMMANDS as DEPLOY_COMMANDS
from train.cli import COMMANDS as TRAIN_COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_deploy_never_imports_train():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*.py") if "train" in _imports(p)]
    assert offenders == []


@pytest.mark.parametrize("tool,command", [("train", c) for c in TRAIN_COMMANDS]
                         + [("deploy", c) for c in DEPLOY_COMMANDS])
def test_every_command_has_help(tool: str, command: str):
    proc = subprocess.run(check=False, args=[sys.executable, "-m", f"{tool}.cli", command, "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and len(proc.stdout.splitlines()) >= 3


@pytest.mark.parametrize("tool", ["train", "deploy"])
def test_top_level_help_lists_commands(tool: str):
    proc = subprocess.run(check=False, args=[sys.executable, "-m", f"{tool}.cli", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    table = TRAIN_COMMANDS if tool == "train" else DEPLOY_COMMANDS
    assert proc.returncode == 0 and all(name in proc.stdout for name in table)
