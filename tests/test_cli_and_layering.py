"""Every command answers --help, and deploy/ never imports train/ (the .nir file is the contract)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from neuromoco.deploy.cli import COMMANDS as DEPLOY_COMMANDS
from neuromoco.train.cli import COMMANDS as TRAIN_COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imports_train(path: Path) -> bool:
    return any(n == "neuromoco.train" or n.startswith(("neuromoco.train.", "train.")) or n == "train"
               for n in _imports(path))


def test_deploy_never_imports_train():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "deploy").rglob("*.py") if _imports_train(p)]
    assert offenders == []


def test_layering_check_sees_a_train_import(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from neuromoco.train.models import registry\n")
    assert _imports_train(bad)
    (tmp_path / "ok.py").write_text("from neuromoco.deploy.graph import load_graph\nimport neuromoco.io\n")
    assert not _imports_train(tmp_path / "ok.py")


def test_no_module_imports_the_old_top_level_names():
    """Everything imports through neuromoco.*: a user's own train.py or deploy.py cannot shadow us."""
    offenders = []
    for folder in ("neuromoco", "train", "deploy", "tests", "hardware_tests", "benchmarks", "nir_models"):
        for p in (ROOT / folder).rglob("*.py"):
            old = [n for n in _imports(p) if n.split(".")[0] in ("train", "deploy")]
            if old:
                offenders.append(f"{p.relative_to(ROOT)}: {', '.join(sorted(old))}")
    assert offenders == []


@pytest.mark.parametrize("tool,command", [("train", c) for c in TRAIN_COMMANDS]
                         + [("deploy", c) for c in DEPLOY_COMMANDS])
def test_every_command_has_help(tool: str, command: str):
    proc = subprocess.run(check=False, args=[sys.executable, "-m", f"neuromoco.{tool}.cli", command, "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and len(proc.stdout.splitlines()) >= 3


@pytest.mark.parametrize("tool", ["train", "deploy"])
def test_top_level_help_lists_commands(tool: str):
    proc = subprocess.run(check=False, args=[sys.executable, "-m", f"neuromoco.{tool}.cli", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    table = TRAIN_COMMANDS if tool == "train" else DEPLOY_COMMANDS
    assert proc.returncode == 0 and all(name in proc.stdout for name in table)
