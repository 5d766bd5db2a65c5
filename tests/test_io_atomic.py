"""neuromoco.io's atomic writes: whole or absent, with the user's umask, nothing left behind on failure; the
two-step form (a temporary file filled over time, then published) that streamed writers use."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from neuromoco.io import atomic_write, publish, temporary_beside


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def test_atomic_write_publishes_with_the_umask_and_leaves_nothing_on_failure(tmp_path, umask_027):
    target = tmp_path / "sub" / "report.txt"
    atomic_write(target, lambda tmp: Path(tmp).write_text("whole"))
    assert target.read_text() == "whole" and _mode(target) == umask_027

    def half(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(target, half)
    assert target.read_text() == "whole"  # the old file stands
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.txt"]  # no temporary left


def test_a_temporary_file_beside_the_target_then_published(tmp_path, umask_027):
    target = tmp_path / "new" / "trace.nir"
    tmp = temporary_beside(target)
    assert tmp.parent == target.parent and tmp.name.startswith(".trace.nir.") and tmp.name.endswith(".tmp")
    assert tmp.is_file() and tmp.stat().st_size == 0 and not target.exists()
    tmp.write_bytes(b"data")
    assert publish(tmp, target) == target
    assert target.read_bytes() == b"data" and _mode(target) == umask_027 and not tmp.exists()
