"""The one interface every deployment target implements.

A target turns a checked NIR graph (plus its model card) into an artefact on disk (:meth:`Target.export`),
opens such an artefact as a runner (:meth:`Target.load`), or builds a runner straight from the graph
(:meth:`Target.runner`). A runner's ``run(frames [T, B, *input_shape])`` returns a
:class:`~neuromoco.deploy.result.RunResult` with the same per-layer spike counts as the reference.

Each public method takes the target's typed options (its :attr:`Target.Options` dataclass, or keyword
values checked against it: an unknown key is an error naming the valid ones) and a :class:`RunContext`.
A target implements the three hooks :meth:`write`, :meth:`open` and, when it can do better than exporting
to a temporary folder, :meth:`build`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Protocol

import nir
import numpy as np

from neuromoco.deploy.card import CARD_NAME, ModelCard
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.options import RunContext, TargetOptions, split_values


class Runner(Protocol):
    def run(self, frames: np.ndarray) -> RunResult:
        """Frames ``[T, B, *input_shape]`` (float) -> outputs and spike counts, state reset per sample."""


class Target:
    """Base of every target: option resolution here, the target's work in the hooks."""

    name: ClassVar[str]
    Options: ClassVar[type[TargetOptions]] = TargetOptions

    # ------------------------------------------------------------------ public API
    def resolve(self, options: TargetOptions | None = None, context: RunContext | None = None,
                values: dict[str, Any] | None = None) -> tuple[Any, RunContext]:
        """Options and context from an options object, a context and keyword ``values`` (checked)."""
        opts = options if options is not None else self.Options()
        if not isinstance(opts, self.Options):
            raise TypeError(f"{self.name} takes {self.Options.__name__}, not {type(opts).__name__}")
        ctx = context if context is not None else RunContext()
        if values:
            o, c = split_values(self.Options, values, self.name)
            opts = opts.updated(o, target=self.name)
            if c:
                ctx = RunContext(**{**ctx.__dict__, **c})
        return opts, ctx

    def export(self, graph: nir.NIRGraph, card: ModelCard, out_dir: str | Path,
               options: TargetOptions | None = None, context: RunContext | None = None, **values: Any) -> Path:
        """Write the artefact for ``graph`` under ``out_dir`` and return its path."""
        opts, ctx = self.resolve(options, context, values)
        return self.write(graph, card, Path(out_dir), opts, ctx)

    def load(self, artefact: str | Path, options: TargetOptions | None = None, context: RunContext | None = None,
             **values: Any) -> Runner:
        """Open an artefact written by :meth:`export` (its file, or the folder it is in)."""
        opts, ctx = self.resolve(options, context, values)
        return self.open(Path(artefact), opts, ctx)

    def runner(self, graph: nir.NIRGraph, card: ModelCard, options: TargetOptions | None = None,
               context: RunContext | None = None, **values: Any) -> Runner:
        """A runner built straight from the graph."""
        opts, ctx = self.resolve(options, context, values)
        return self.build(graph, card, opts, ctx)

    def summary(self, artefact: Path) -> list[str]:
        """Lines ``deploy export`` prints about a written artefact (default: none)."""
        return []

    # ------------------------------------------------------------------ hooks
    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: Any, context: RunContext) -> Path:
        raise NotImplementedError

    def open(self, artefact: Path, options: Any, context: RunContext) -> Runner:
        raise NotImplementedError

    def build(self, graph: nir.NIRGraph, card: ModelCard, options: Any, context: RunContext) -> Runner:
        """Default: export to a temporary folder with the card beside the artefact, as ``deploy export`` leaves it,
        and open it (the folder is gone once the runner is open)."""
        with tempfile.TemporaryDirectory(prefix=f"neuromoco-{self.name}-") as tmp:
            card.save(Path(tmp) / CARD_NAME)
            return self.open(self.write(graph, card, Path(tmp), options, context), options, context)


def time_steps_beside(artefact: Path) -> int | None:
    """T of the model card beside an artefact (``deploy export`` copies it there), None where there is none: what
    a runner opened from a file checks its frames' time axis against (:func:`~neuromoco.deploy.graph.shapes.
    check_time_axis`)."""
    path = ModelCard.beside(artefact)
    return ModelCard.load(path).time_steps if path.is_file() else None
