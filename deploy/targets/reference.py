"""The reference target: the PyTorch reference executor behind the common :class:`~neuromoco.deploy.targets.Target` API.

``export`` writes a checked copy of the graph (``model.nir``) and its model card; ``load`` / ``runner``
give a runner whose ``run(frames)`` is :meth:`neuromoco.deploy.reference.ReferenceExecutor.run`. Options:
``device`` ("cpu", "cuda", ...), ``dtype`` ("float32" or "float64"), ``record_spikes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from neuromoco.deploy.card import CARD_NAME, ModelCard
from neuromoco.deploy.graph import check_graph, load_graph
from neuromoco.deploy.reference import ReferenceExecutor
from neuromoco.deploy.result import RunResult
from neuromoco.errors import UserError
from neuromoco.io import atomic_write

_DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
           torch.float64: torch.float64}


class ReferenceRunner:
    """Runs frames ``[T, B, C, H, W]`` through the reference executor (state reset per sample)."""

    def __init__(self, graph: nir.NIRGraph, card: ModelCard, device: str = "cpu", dtype: Any = "float32",
                 record_spikes: bool = False, **_: Any) -> None:
        if dtype not in _DTYPES:
            raise UserError(f"reference dtype must be float32 or float64, not {dtype!r}")
        self.card = card
        self.executor = ReferenceExecutor(graph, card.dt, device=device, dtype=_DTYPES[dtype],
                                          record_spikes=record_spikes, input_shape=card.input_shape)

    def run(self, frames: np.ndarray) -> RunResult:
        return self.executor.run(frames)


class ReferenceTarget:
    name = "reference"

    def export(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, **options: Any) -> Path:
        check_graph(graph, input_shape=card.input_shape)
        out_dir = Path(out_dir)
        path = atomic_write(out_dir / "model.nir", lambda tmp: nir.write(tmp, graph))
        card.save(out_dir / CARD_NAME)
        return path

    def load(self, artefact: Path, **options: Any) -> ReferenceRunner:
        artefact = Path(artefact)
        if artefact.is_dir():
            artefact = artefact / "model.nir"
        card = ModelCard.load(ModelCard.beside(artefact))
        return ReferenceRunner(load_graph(artefact, input_shape=card.input_shape), card, **options)

    def runner(self, graph: nir.NIRGraph, card: ModelCard, **options: Any) -> ReferenceRunner:
        return ReferenceRunner(graph, card, **options)


TARGET = ReferenceTarget()
