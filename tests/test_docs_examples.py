"""The documentation's examples do not rot.

* Every ``train ...`` / ``deploy ...`` command in a fenced ``sh`` block of README.md and docs/*.md (also through
  ``torchrun ... -m neuromoco.train.cli``) is parsed by the real argparse parser of that command, without running it: an
  unknown command, an unknown or abbreviated option, or a missing required argument fails, naming file and line.
* Blocks fenced as ``sh test`` are run with bash (``set -euo pipefail``) in a temporary folder holding a copy of
  ``nir_models/``, with the project's console scripts on ``PATH`` and the data folder shared with the other
  tests (``<pytest basetemp>/neuromoco-data``): every command must exit 0, and the failure names the command and
  its exit status. A fence may add arguments for the test run, visibly: ``sh test train+="--epochs 1"`` appends
  ``--epochs 1`` to every ``train`` command of the block whose subcommand takes all those options (``train
  pretrain``, ``train finetune`` ..., not ``train data``), so a training block runs as written, only shorter;
  the document says so beside the block.
* Blocks fenced as ``python test`` are a walk-through: those of one document run in order, in one namespace, with
  the venv's Python in an empty temporary folder outside the repository (the same data folder as above); a failing
  block's traceback names the document and its line.
* Every relative link in those files points to an existing file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGS = ("train", "deploy")
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^`]*)$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string, e.g. "sh" or "sh test"
    lines: tuple[tuple[int, str], ...]  # (1-based line number, text)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def runs(self) -> bool:
        return self.info.split()[:2] == ["sh", "test"]

    @property
    def runs_python(self) -> bool:
        return self.info.split()[:2] == ["python", "test"]

    @property
    def appended(self) -> dict[str, list[str]]:
        """``PROG+="ARGS"`` words of a runnable block's fence: ARGS appended to the PROG commands that take them."""
        out: dict[str, list[str]] = {}
        for word in shlex.split(self.info)[2:] if self.runs else []:
            prog, sep, args = word.partition("+=")
            assert sep and prog in PROGS, f"{self.where}: fence word {word!r} is not PROG+=\"ARGS\" ({PROGS})"
            out[prog] = shlex.split(args)
        return out


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (CommonMark fences: a closing fence as long as the opening)."""
    blocks: list[Block] = []
    open_fence: tuple[str, int, str] | None = None
    body: list[tuple[int, str]] = []
    for no, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(text)
        if open_fence is None:
            if m:
                open_fence, body = (m.group(1), no, m.group(2).strip()), []
            continue
        fence, start, info = open_fence
        if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
            blocks.append(Block(path, start, info, tuple(body)))
            open_fence = None
        else:
            body.append((no, text))
    assert open_fence is None, f"{path.relative_to(ROOT)}:{open_fence[1]}: unclosed code fence"
    return blocks


def outside_fences(path: Path) -> list[tuple[int, str]]:
    inside: set[int] = set()
    for b in fenced_blocks(path):
        inside.update(range(b.line, (b.lines[-1][0] if b.lines else b.line) + 2))
    return [(no, t) for no, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if no not in inside]


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """Shell lines of a block with continuations joined and here-document bodies left out."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    heredoc_end: str | None = None
    for no, text in block.lines:
        if heredoc_end is not None:
            if text.strip() == heredoc_end:
                heredoc_end = None
            continue
        start, prefix = pending if pending else (no, "")
        joined = prefix + text
        if joined.rstrip().endswith("\\") and not joined.lstrip().startswith("#"):
            pending = (start, joined.rstrip()[:-1] + " ")
            continue
        pending = None
        out.append((start, joined))
        m = HEREDOC.search(joined)
        if m:
            heredoc_end = m.group(2)
    if pending:
        out.append(pending)
    return out


def tokens(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line: split at ``&&``, ``|``, ``;`` ..., redirections removed."""
    out: list[list[str]] = [[]]
    toks = tokens(line)
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok in SEPARATORS:
            out.append([])
        elif tok and set(tok) <= set("<>&|") and ("<" in tok or ">" in tok):
            i += 1  # a redirection and its target
        else:
            out[-1].append(tok)
        i += 1
    return [s for s in out if s]


def invocation(words: list[str]) -> tuple[str, list[str]] | None:
    """``(prog, argv)`` when a simple command runs ``train`` / ``deploy`` (directly, or via
    ``-m neuromoco.train.cli``)."""
    while words and (ASSIGNMENT.match(words[0]) or words[0] in ("time", "env", "exec")):
        words = words[1:]
    if not words:
        return None
    head = os.path.basename(words[0])
    if head in PROGS:
        return head, words[1:]
    for i, w in enumerate(words[:-1]):
        if w == "-m" and words[i + 1] in ("neuromoco.train.cli", "neuromoco.deploy.cli"):
            return words[i + 1].split(".")[1], words[i + 2:]
    if head == "torchrun" and "--no-python" in words:
        rest = words[words.index("--no-python") + 1:]
        for i, w in enumerate(rest):
            if w in PROGS:
                return w, rest[i + 1:]
    return None


def collect_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in DOC_FILES:
        for block in fenced_blocks(path):
            if block.language not in ("sh", "bash", "shell", "console"):
                continue
            for no, line in logical_lines(block):
                for words in segments(line):
                    inv = invocation(words)
                    if inv is not None:
                        found.append((f"{path.relative_to(ROOT)}:{no}", inv[0], inv[1]))
    return found


def parse_error(prog: str, argv: list[str]) -> str | None:
    """Why ``prog argv`` does not parse (argparse's message), or None when it does. Nothing is executed."""
    from neuromoco.cli import build_parser
    from neuromoco.deploy.cli import COMMANDS as DEPLOY_COMMANDS
    from neuromoco.train.cli import COMMANDS as TRAIN_COMMANDS

    commands = TRAIN_COMMANDS if prog == "train" else DEPLOY_COMMANDS
    parser, _ = build_parser(prog, prog, commands, argv)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code in (0, None):  # --help
                return None
            lines = err.getvalue().strip().splitlines()
            return lines[-1] if lines else f"exit {exc.code}"
    if args.command is None:
        return "no command given"
    sub = next(a for a in parser._subparsers._group_actions).choices[args.command]
    known = {s for a in sub._actions for s in a.option_strings}
    for word in argv:
        if word == "--":
            break
        if word.startswith("--") and word.split("=", 1)[0] not in known:
            return f"{word.split('=', 1)[0]} is not an option of {prog} {args.command} (abbreviations are not allowed)"
    return None


COMMANDS = collect_commands()
RUN_BLOCKS = [b for path in DOC_FILES for b in fenced_blocks(path) if b.runs]
PYTHON_DOCS = {path: blocks for path in DOC_FILES if (blocks := [b for b in fenced_blocks(path) if b.runs_python])}


def subcommands_taking(prog: str, args: list[str]) -> list[str]:
    """The subcommands of ``prog`` whose parser knows every option in ``args``."""
    from neuromoco.cli import build_parser
    from neuromoco.deploy.cli import COMMANDS as DEPLOY_COMMANDS
    from neuromoco.train.cli import COMMANDS as TRAIN_COMMANDS

    commands = TRAIN_COMMANDS if prog == "train" else DEPLOY_COMMANDS
    wanted = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    out = []
    for name in commands:
        parser, _ = build_parser(prog, prog, commands, [name])
        sub = next(a for a in parser._subparsers._group_actions).choices[name]
        if wanted <= {s for a in sub._actions for s in a.option_strings}:
            out.append(name)
    return out


def wrap_programs(block: Block, real_bin: Path, wrap_bin: Path) -> None:
    """Scripts in ``wrap_bin`` that run ``real_bin``'s programs with the block's appended arguments."""
    wrap_bin.mkdir()
    for prog, args in block.appended.items():
        subs = subcommands_taking(prog, args)
        assert subs, f"{block.where}: no {prog} subcommand takes {shlex.join(args)}"
        real = shlex.quote(str(real_bin / prog))
        script = wrap_bin / prog
        script.write_text(f'#!/usr/bin/env bash\ncase "${{1:-}}" in\n  {"|".join(subs)}) exec {real} "$@" '
                          f'{shlex.join(args)} ;;\nesac\nexec {real} "$@"\n')
        script.chmod(0o755)


def test_examples_are_found():
    """The collector sees the documented commands (a broken collector must not pass vacuously)."""
    progs = {prog for _, prog, _ in COMMANDS}
    assert progs == set(PROGS), progs
    assert len(COMMANDS) >= 40, f"only {len(COMMANDS)} commands found in the docs"
    assert any(where.startswith("README.md") for where, _, _ in COMMANDS)
    assert len(RUN_BLOCKS) >= 4, "the docs should run a few examples (```sh test blocks)"
    subcommands = {(prog, next((a for a in argv if not a.startswith("-")), "")) for _, prog, argv in COMMANDS}
    for sub in ("data", "models", "pretrain", "finetune", "linear", "supervised", "eval", "export"):
        assert ("train", sub) in subcommands, f"no documented example of train {sub}"
    for sub in ("inspect", "export", "run", "parity", "profile"):
        assert ("deploy", sub) in subcommands, f"no documented example of deploy {sub}"


def test_the_quickstart_pipeline_runs():
    """The quickstart's training run, parity and profile are a runnable block, shortened only by its fence."""
    quick = [b for b in RUN_BLOCKS if b.path.name == "quickstart.md"]
    text = [" ".join(line.split()) for b in quick for _, line in logical_lines(b)]
    for command in ("train pretrain", "train finetune", "deploy parity runs/ft/model.nir", "deploy profile"):
        assert any(line.startswith(command) for line in text), f"quickstart.md runs no `{command}`"
    training = next(b for b in quick if any(" ".join(line.split()).startswith("train pretrain")
                                            for _, line in logical_lines(b)))
    assert "--epochs" in training.appended.get("train", []), "the training block is not shortened by its fence"
    assert set(subcommands_taking("train", ["--epochs"])) >= {"pretrain", "finetune"}
    assert "data" not in subcommands_taking("train", ["--epochs"])


def test_checker_rejects_bad_commands():
    assert parse_error("deploy", ["run", "m.nir", "--target", "onnx", "--out", "o"]) is None
    assert parse_error("deploy", ["run", "m.nir", "--target", "onnx", "--out", "o", "--bogus"])
    assert parse_error("deploy", ["run", "m.nir", "--target", "onnx"])  # --out is required
    assert parse_error("deploy", ["run", "m.nir", "--targ", "onnx", "--out", "o"])  # abbreviation
    assert parse_error("train", ["finetune", "--out", "o"])  # --pretrained is required
    assert parse_error("train", ["pretrian", "--out", "o"])
    assert parse_error("train", []) == "no command given"
    assert invocation(tokens("NEUROMOCO_DATA=/x torchrun --nproc_per_node 2 "
                             "-m neuromoco.train.cli pretrain --out r")) == ("train", ["pretrain", "--out", "r"])
    assert [w[0] for w in segments("deploy inspect a.nir --json > x.json && train models | head")] == \
        ["deploy", "train", "head"]


@pytest.mark.parametrize("where,prog,argv", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_parses(where, prog, argv):
    err = parse_error(prog, argv)
    assert err is None, f"{where}: `{prog} {shlex.join(argv)}` does not parse: {err}"


def test_relative_links_resolve():
    broken = []
    for path in DOC_FILES:
        for no, text in outside_fences(path):
            for target in LINK.findall(text):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue
                file = target.split("#", 1)[0]
                if file and not (path.parent / file).exists():
                    broken.append(f"{path.relative_to(ROOT)}:{no}: {target}")
    assert not broken, "broken relative links:\n" + "\n".join(broken)


@pytest.fixture(scope="session")
def shared_data_root(tmp_path_factory) -> Path:
    """The data folder the data tests use too (the embedded dataset is generated once per session)."""
    root = tmp_path_factory.getbasetemp() / "neuromoco-data"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_block(block: Block, folder: Path, data_root: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run a ``sh test`` block with bash in ``folder`` (with a copy of ``nir_models/``); its result and seconds."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "train").exists() and (bin_dir / "deploy").exists(), \
        f"the train/deploy console scripts are not installed beside {sys.executable} (pip install -e .)"
    shutil.copytree(ROOT / "nir_models", folder / "nir_models")
    path = [str(bin_dir)]
    if block.appended:
        wrap_programs(block, bin_dir, folder / ".wrapped-bin")
        path.insert(0, str(folder / ".wrapped-bin"))
    env = {k: v for k, v in os.environ.items() if k not in ("NEUROMOCO_DOWNLOAD", "PYTHONPATH")}
    env.update(PATH=os.pathsep.join([*path, env.get("PATH", "")]), NEUROMOCO_DATA=str(data_root),
               MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    # the command that stops the block, with its exit status and the document's line
    where = f"{block.path.relative_to(ROOT)}:$((LINENO + {block.lines[0][0] - 2 if block.lines else 0}))"
    trap = f"""trap 'echo "docs test: exit $? from {where}: $BASH_COMMAND" >&2' ERR"""
    script = "\n".join([trap, *(text for _, text in block.lines)])
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=False, cwd=folder, env=env,
                          capture_output=True, text=True, timeout=580)
    return proc, time.perf_counter() - t0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.where for b in RUN_BLOCKS])
def test_runnable_example(block, tmp_path, shared_data_root):
    proc, seconds = run_block(block, tmp_path, shared_data_root)
    script = "\n".join(text for _, text in block.lines)
    assert proc.returncode == 0, (
        f"{block.where}: the example exited {proc.returncode} after {seconds:.1f} s\n--- script\n{script}\n"
        f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}")


def test_a_block_runs_shortened_and_names_its_failing_command(tmp_path, shared_data_root):
    """The fence's arguments reach the subcommands that take them only; a failing line is named with its status."""
    lines = ((11, 'grep -q -- "--limit 3" "$(command -v deploy)"'), (12, "deploy parity --help > /dev/null"),
             (13, "bash -c 'exit 3'"), (14, "echo not reached"))
    block = Block(ROOT / "docs" / "quickstart.md", 10, 'sh test deploy+="--limit 3"', lines)
    assert block.appended == {"deploy": ["--limit", "3"]}
    assert {"parity", "profile", "run"} <= set(subcommands_taking("deploy", ["--limit"]))
    assert "inspect" not in subcommands_taking("deploy", ["--limit"])
    proc, _ = run_block(block, tmp_path, shared_data_root)
    assert proc.returncode == 3 and "not reached" not in proc.stdout
    assert "docs test: exit 3 from docs/quickstart.md:13: bash -c 'exit 3'" in proc.stderr, proc.stderr


# the walk-through's runner: each block compiled at its own lines of the document, so a traceback points there
PYTHON_DRIVER = """
import json, sys
doc, blocks = sys.argv[1], json.loads(open(sys.argv[2]).read())
namespace = {"__name__": "__main__"}
for first, text in blocks:
    print(f"--- {doc}:{first}", flush=True)
    exec(compile("\\n" * (first - 1) + text, doc, "exec"), namespace)
"""


def run_python_walkthrough(blocks: list[Block], folder: Path, data_root: Path) -> tuple[subprocess.CompletedProcess,
                                                                                       float]:
    """Run ``python test`` blocks in order in one namespace, in the empty ``folder``; the result and seconds."""
    import json

    driver = folder.parent / f"{folder.name}-driver"
    driver.mkdir()
    (driver / "run.py").write_text(PYTHON_DRIVER)
    (driver / "blocks.json").write_text(json.dumps([(b.lines[0][0], "\n".join(t for _, t in b.lines))
                                                    for b in blocks if b.lines]))
    env = {k: v for k, v in os.environ.items() if k not in ("NEUROMOCO_DOWNLOAD", "PYTHONPATH")}
    env.update(NEUROMOCO_DATA=str(data_root), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    where = str(blocks[0].path.relative_to(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(driver / "run.py"), where, str(driver / "blocks.json")], check=False,
                          cwd=folder, env=env, capture_output=True, text=True, timeout=580)
    return proc, time.perf_counter() - t0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", list(PYTHON_DOCS), ids=[str(p.relative_to(ROOT)) for p in PYTHON_DOCS])
def test_python_walkthrough(path, tmp_path, shared_data_root):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert not folder.resolve().is_relative_to(ROOT)
    proc, seconds = run_python_walkthrough(PYTHON_DOCS[path], folder, shared_data_root)
    assert proc.returncode == 0, (
        f"{path.relative_to(ROOT)}: the walk-through failed after {seconds:.1f} s\n--- stdout (tail)\n"
        f"{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}")


def test_a_python_walkthrough_shares_one_namespace_and_names_the_failing_line(tmp_path, shared_data_root):
    blocks = [Block(ROOT / "docs" / "api.md", 4, "python test", ((5, "x = 41"),)),
              Block(ROOT / "docs" / "api.md", 8, "python test", ((9, "x += 1"), (10, "assert x == 41, x")))]
    (tmp_path / "empty").mkdir()
    proc, _ = run_python_walkthrough(blocks, tmp_path / "empty", shared_data_root)
    assert proc.returncode == 1 and 'File "docs/api.md", line 10' in proc.stderr and "AssertionError: 42" in \
        proc.stderr, proc.stderr
