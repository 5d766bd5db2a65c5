"""Keep freed memory in a CPU training process (glibc's ``mallopt``), so each step's large tensors reuse it.

By default glibc serves an allocation above its mmap threshold (128 KiB, rising to at most 32 MiB as such blocks are
freed) with a fresh ``mmap`` and returns it to the system when freed, and trims the heap's free top. A training step
allocates and frees the same large activations and gradients every time, so a step can pay the kernel's page faults
(a zeroed page per 4 KiB) again and again: measured in a fresh process training sew-resnet8-34 (T=8, batch 32, one
thread), 163 ms per step against 130 ms with this setting (benchmarks/README.md). Raising the mmap threshold to its
ceiling (32 MiB) and the trim threshold out of reach keeps that memory in the heap, where the next step finds it.
The same tensors are live at the same time, so the peak moves little (cnn3-34's process peak RSS: 0.91-0.98 GB with
it, 0.90-0.97 GB without, measured alike), but the process does not give the memory back until it ends.

Applied once per process by the training runtime on CPU (:func:`~neuromoco.train.engine.runtime.make_runtime`);
``NEUROMOCO_KEEP_FREED_MEMORY=0`` leaves the allocator as it is. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for it on 64-bit systems (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**31 - 1  # an int: never trim while training
ENV = "NEUROMOCO_KEEP_FREED_MEMORY"

_state: str | None = None


def keep_freed_memory() -> str:
    """Set glibc's thresholds once (see the module docstring); returns what the allocator does now, in words."""
    global _state
    if _state is not None:
        return _state
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        _state = f"system default ({ENV}=0)"
        return _state
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _state = "system default (no glibc mallopt)"
        return _state
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _state = "glibc, freed memory kept for reuse (mmap threshold 32 MiB, no trim)"
    else:
        _state = "system default (mallopt refused)"
    return _state
