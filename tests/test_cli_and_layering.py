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
    proc = subprocess.run(check=False, args=[sys.executable, "-m", f"neuromoco.{tool}.cli", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    table = TRAIN_COMMANDS if tool == "train" else DEPLOY_COMMANDS
    assert proc.returncode == 0 and all(name in proc.stdout for name in table)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("train", "deploy"):
        parts = ["neuromoco", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _module_level_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported when ``path`` is imported (module-level statements, not inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in out if n in known}


def test_no_import_cycles():
    files = [p for folder in ("neuromoco", "train", "deploy") for p in (ROOT / folder).rglob("*.py")]
    known = {_module_name(p) for p in files}
    graph = {_module_name(p): _module_level_imports(p, known) for p in files}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("prog", ["train", "deploy"])
def test_ctrl_c_says_what_each_program_keeps(prog, monkeypatch, capsys):
    """Ctrl-C exits 130 with one line; only `train` speaks of checkpoints (deploy writes none)."""
    import importlib

    import neuromoco.cli

    cli = importlib.import_module(f"neuromoco.{prog}.cli")
    command = "models" if prog == "train" else "inspect"

    class Interrupting:
        @staticmethod
        def add_arguments(p):
            p.add_argument("rest", nargs="*")

        @staticmethod
        def run(args):
            raise KeyboardInterrupt

    monkeypatch.setattr(neuromoco.cli, "load_command", lambda module: Interrupting)
    assert cli.main([command]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog} {command}: interrupted") and "\n" not in err
    assert ("--resume" in err) == (prog == "train") and ("half-written" in err) == (prog == "deploy")
