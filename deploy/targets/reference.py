"""The reference target: the PyTorch reference executor behind the common target interface.

``export`` writes a checked copy of the graph (``model.nir``) and its model card; ``load`` / ``runner``
give a runner whose ``run(frames)`` is :meth:`neuromoco.deploy.reference_executor.ReferenceExecutor.run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nir
import numpy as np

from neuromoco.deploy.card import CARD_NAME, ModelCard
from neuromoco.deploy.graph import check_graph, load_graph
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.base import Target
from neuromoco.deploy.targets.options import RunContext, TargetOptions, option
from neuromoco.io import atomic_write


@dataclass(frozen=True)
class ReferenceOptions(TargetOptions):
    """Options of the reference executor."""

    device: str = option("cpu", "torch device: cpu, cuda, cuda:N")
    dtype: Literal["float32", "float64"] = option("float32", "compute dtype (float64 to compare with Lava float)")
    record_voltages: bool = option(False, "also return each neuron's membrane voltage per step, after the step's "
                                          "reset (in the graph's units; traces write it as NIR's v)")


class ReferenceRunner:
    """Runs frames ``[T, B, C, H, W]`` through the reference executor (state reset per sample)."""

    def __init__(self, graph: nir.NIRGraph, card: ModelCard, options: ReferenceOptions) -> None:
        import torch

        from neuromoco.deploy.reference_executor import ReferenceExecutor

        self.card = card
        dtype = torch.float64 if options.dtype == "float64" else torch.float32
        self.executor = ReferenceExecutor(graph, card.dt, device=options.device, dtype=dtype,
                                          record_spikes=options.record_spikes, input_shape=card.input_shape,
                                          time_steps=card.time_steps, record_voltages=options.record_voltages)

    def run(self, frames: np.ndarray) -> RunResult:
        return self.executor.run(frames)


class ReferenceTarget(Target):
    name = "reference"
    Options = ReferenceOptions

    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: ReferenceOptions,
              context: RunContext) -> Path:
        check_graph(graph, input_shape=card.input_shape)
        path = atomic_write(out_dir / "model.nir", lambda tmp: nir.write(tmp, graph))
        card.save(out_dir / CARD_NAME)
        return path

    def open(self, artefact: Path, options: ReferenceOptions, context: RunContext) -> ReferenceRunner:
        if artefact.is_dir():
            artefact = artefact / "model.nir"
        card = ModelCard.load(ModelCard.beside(artefact))
        return ReferenceRunner(load_graph(artefact, input_shape=card.input_shape), card, options)

    def build(self, graph: nir.NIRGraph, card: ModelCard, options: ReferenceOptions,
              context: RunContext) -> ReferenceRunner:
        return ReferenceRunner(graph, card, options)


TARGET = ReferenceTarget()
