"""The :class:`~neuromoco.deploy.targets.TargetSpec` of ``trace:FILE``: the facts of the target that made the run.

A trace is a recording of some target's run, so ``deploy parity`` judges it as it would judge that target: a
trace of ``lava-fixed`` is held to equality with ``reference-fixed`` (its bit-exact emulator), a trace of
``onnx-int8`` to the tolerances. One change: a producer that is ``exact`` without an emulator (``reference``,
``onnx``) gets the reference as its emulator, so its trace is held to equality with the reference at its dtype
(``--exact-targets``'s default list is fixed before any trace is named). A trace that does not say which
target made it (one written by another tool, from a chip) is judged with the tolerances; ``--exact-targets
trace:FILE`` holds it to equality.

A trace of a known target also says so (``recorded``: the producer and its options): ``deploy parity`` then uses a
trace of a slow target's emulator (``reference-fixed`` for ``lava-fixed``) in the emulator's place.
"""

from __future__ import annotations

import functools
from pathlib import Path

from neuromoco.deploy.targets import REFERENCE, TARGETS, TargetSpec
from neuromoco.errors import UserError

_MODULE = "neuromoco.deploy.targets.trace"
_OPTIONS = "neuromoco.deploy.targets.trace.options:TraceOptions"


def trace_spec(file: str) -> TargetSpec:
    """The spec of ``trace:FILE`` (the file's info is read once per version of the file)."""
    p = Path(file)
    if not p.is_file():
        raise UserError(f"trace file not found: {file} (a trace target is trace:FILE, e.g. trace:run/trace.nir)")
    st = p.stat()
    return _spec(file, str(p.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _spec(file: str, resolved: str, mtime_ns: int, size: int) -> TargetSpec:
    from neuromoco.deploy.traces import read_info

    info = read_info(resolved)
    base = TARGETS.get(info.target) if info.target else None  # .get: a trace of a trace has no known producer
    if base is None or info.target is None:
        made_by = f"made by {info.target}" if info.target else "its producer unknown"
        return TargetSpec(_MODULE, _OPTIONS, {"file": file}, f"a recorded run ({made_by}): judged with the tolerances")
    dtype = info.options.get("dtype")
    return TargetSpec(_MODULE, _OPTIONS, {"file": file}, f"a recorded run of {info.target}",
                      precision=base.precision, precision_when=base.precision_when, exact=base.exact,
                      reference_dtype=dtype if dtype in ("float32", "float64") else base.reference_dtype,
                      emulator=base.emulator or (REFERENCE if base.exact else None),
                      recorded=(info.target, dict(info.options)))
