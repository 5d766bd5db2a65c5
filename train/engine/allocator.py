"""Keep freed memory in a CPU training process (glibc's ``mallopt``), so each step's large tensors reuse it.

By default glibc serves an allocation above its mmap threshold (128 KiB, rising to at most 32 MiB as such blocks are
freed) with a fresh ``mmap`` and returns it to the system when freed, and trims the heap's free top. A training step
allocates and frees the same large activations and gradients every time, so a step can pay the kernel's page faults
(a zeroed page per 4 KiB) again and again. Fixing the mmap threshold at 32 MiB and the trim threshold out of reach
keeps that memory in the heap, where the next step finds it. Measured in fresh processes
(``python benchmarks/allocator.py``, one thread, T=8; benchmarks/README.md has the table): cnn3-34 and
sew-resnet8-34 train markedly faster, at a process peak RSS a few percent above the default allocator's; the
process does not give the memory back until it ends.

Applied once per process by the training runtime on CPU (:func:`~neuromoco.train.engine.runtime.make_runtime`);
``NEUROMOCO_KEEP_FREED_MEMORY=0`` leaves the allocator as it is. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
#: 32 MiB: glibc's own dynamic ceiling (and the highest value older versions accept). glibc 2.36 takes 1 GiB too,
#: which made cnn3-34 at batch 128 faster still (450-560 ms per step against 710-770 ms with 32 MiB, separate runs)
#: but raised its process peak RSS to 1.3-1.4 GB against about 1.2 GB (a fragmented heap); 32 MiB keeps the peak
#: within about 8 % of the default allocator's (benchmarks/allocator.py).
MMAP_THRESHOLDS = (32 << 20,)
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
    threshold = next((t for t in MMAP_THRESHOLDS if mallopt(M_MMAP_THRESHOLD, t) == 1), None)
    if threshold is not None and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _state = f"glibc, freed memory kept for reuse (mmap threshold {threshold >> 20} MiB, no trim)"
    else:
        _state = "system default (mallopt refused)"
    return _state
