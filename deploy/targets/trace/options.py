"""Options of the ``trace:FILE`` target (the file comes with the name; ``record_spikes`` changes nothing)."""

from __future__ import annotations

from dataclasses import dataclass

from neuromoco.deploy.targets.options import TargetOptions, option


@dataclass(frozen=True)
class TraceOptions(TargetOptions):
    """A recorded run replayed: the trace file (``trace:FILE`` sets it)."""

    file: str = option("", "the trace file: NIR graph data (.nir/.h5) or the project's .npz (set by trace:FILE)")
