"""The ``trace:FILE`` target: a recorded run (``deploy run --trace``, or a chip's run in NIR graph data) replayed.

A trace is one more target to ``deploy parity``: its runner returns the recorded results for the samples it is
asked for (found by their frames' keys, or in recorded order), so the same agreement, per-layer counts, rate
cosine and first divergence are reported as for a target the project runs. The name carries the file, so the
registry builds its spec from the file (:func:`.spec.trace_spec`): the facts of the target that produced the run.

* :mod:`.options`: its options (the file; imported alone for ``--help``);
* :mod:`.spec`: the :class:`~neuromoco.deploy.targets.TargetSpec` of ``trace:FILE``;
* :mod:`.target`: the target object (``TARGET``) and its replaying runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuromoco.lazy import lazy_attributes

if TYPE_CHECKING:
    from neuromoco.deploy.targets.trace.target import TARGET, TraceTarget

__all__ = ["TARGET", "TraceTarget"]


#: ``TARGET`` and ``TraceTarget`` from :mod:`.target`, imported on first access
__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, f"{__name__}.target"))
