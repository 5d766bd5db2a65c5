"""The CPU training runtime keeps freed memory for reuse (glibc mallopt), unless NEUROMOCO_KEEP_FREED_MEMORY=0."""

from __future__ import annotations

import sys

import pytest

from neuromoco.train.engine import allocator
from neuromoco.train.engine.runtime import make_runtime


def test_cpu_runtime_states_what_the_allocator_does(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.keep_freed_memory() == f"system default ({allocator.ENV}=0)"
    monkeypatch.setattr(allocator, "_state", None)  # it is set once per process: start again
    monkeypatch.delenv(allocator.ENV)
    state = allocator.keep_freed_memory()
    if sys.platform.startswith("linux"):
        assert state.startswith("glibc, freed memory kept for reuse")
    assert make_runtime("cpu", "off").describe()["allocator"] == state
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.keep_freed_memory() == state  # once set, the same for the whole process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_the_thresholds_reach_glibc(monkeypatch) -> None:
    """The state names the threshold glibc took (the first of MMAP_THRESHOLDS it accepts) and mallopt answers 1."""
    import ctypes
    import ctypes.util

    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.delenv(allocator.ENV, raising=False)
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    taken = next(t for t in allocator.MMAP_THRESHOLDS if libc.mallopt(allocator.M_MMAP_THRESHOLD, t) == 1)
    assert f"mmap threshold {taken >> 20} MiB" in allocator.keep_freed_memory()
    assert libc.mallopt(allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD) == 1
