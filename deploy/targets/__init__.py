"""Deployment targets: one module each, behind one small interface. Adding a target touches this table.

A target turns a checked NIR graph (plus its model card) into an artefact on disk (``export``) and runs
that artefact over batches of frames ``[T, B, C, H, W]`` (``load(...).run``), returning a
:class:`neuromoco.deploy.result.RunResult` with the same per-layer spike counts as the reference executor.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import nir
import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.result import RunResult


class Runner(Protocol):
    def run(self, frames: np.ndarray) -> RunResult:
        """Frames ``[T, B, C, H, W]`` (float) -> outputs and spike counts, state reset per sample."""


class Target(Protocol):
    name: str

    def export(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, **options: Any) -> Path:
        """Write the artefact for ``graph`` under ``out_dir``; raise ``UserError`` naming a node it cannot map."""

    def load(self, artefact: Path, **options: Any) -> Runner:
        """Open an artefact written by :meth:`export`."""

    def runner(self, graph: nir.NIRGraph, card: ModelCard, **options: Any) -> Runner:
        """Build a runner straight from the graph (export to a temporary place and load)."""


@dataclass(frozen=True)
class TargetSpec:
    """A named target configuration, as used by ``deploy parity --targets``."""

    module: str  # module exposing TARGET: Target
    options: dict[str, Any] = field(default_factory=dict)


# name -> implementation and options. "lava-float" and "lava" are the same thing.
TARGETS: dict[str, TargetSpec] = {
    "reference": TargetSpec("neuromoco.deploy.targets.reference"),
    "lava": TargetSpec("neuromoco.deploy.targets.lava", {"precision": "float"}),
    "lava-float": TargetSpec("neuromoco.deploy.targets.lava", {"precision": "float"}),
    "lava-fixed": TargetSpec("neuromoco.deploy.targets.lava", {"precision": "fixed"}),
    "onnx": TargetSpec("neuromoco.deploy.targets.onnx", {"quantize": None}),
    "onnx-int8": TargetSpec("neuromoco.deploy.targets.onnx", {"quantize": "int8"}),
}


def get_target(name: str) -> tuple[Target, dict[str, Any]]:
    """The target object and its default options for a name from :data:`TARGETS`."""
    from neuromoco.errors import UserError

    if name not in TARGETS:
        raise UserError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    spec = TARGETS[name]
    return importlib.import_module(spec.module).TARGET, dict(spec.options)
