"""The ``reference-fixed`` target object: the Lava target's plan file, run by :mod:`.executor`.

``export`` writes exactly what ``deploy export --target lava-fixed`` writes (``lava_network.h5`` and
``lava_export.json``, :func:`~neuromoco.deploy.loihi.plan_io.write_plan_folder`), so a folder exported by either
target runs on both. ``load`` reads such a plan (it must be fixed point); ``runner`` compiles the graph with the
Loihi plan's :func:`~neuromoco.deploy.loihi.compile.compile_card` and runs it without a file. Lava itself is
not imported: the plan is all this target needs.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.loihi.compile import compile_card
from neuromoco.deploy.loihi.plan import LavaPlan
from neuromoco.deploy.loihi.plan_io import (
    NETWORK_NAME,
    REPORT_NAME,
    load_plan,
    plan_summary,
    write_plan_folder,
)
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.base import Target, time_steps_beside
from neuromoco.deploy.targets.options import RunContext
from neuromoco.deploy.targets.reference_fixed.options import ReferenceFixedOptions
from neuromoco.errors import UserError


class ReferenceFixedRunner:
    """Runs frames ``[T, B, *input_shape]`` through a fixed-point plan in PyTorch (state reset per sample)."""

    def __init__(self, plan: LavaPlan, options: ReferenceFixedOptions, time_steps: int | None = None) -> None:
        from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

        self.plan = plan
        self.executor = FixedPointExecutor(plan, device=options.device, record_spikes=options.record_spikes,
                                           batch_size=options.batch_size, threads=options.threads,
                                           time_steps=time_steps, record_voltages=options.record_voltages)

    @property
    def last_run(self) -> dict:
        return self.executor.last_run

    def run(self, frames: np.ndarray) -> RunResult:
        return self.executor.run(frames)


class ReferenceFixedTarget(Target):
    name = "reference-fixed"
    Options = ReferenceFixedOptions

    def compile(self, graph: nir.NIRGraph, card: ModelCard, options: ReferenceFixedOptions | None = None,
                **values: object) -> LavaPlan:
        """The fixed-point plan for ``graph`` (the one ``lava-fixed`` compiles with the same options)."""
        opts, _ = self.resolve(options, None, dict(values))
        return compile_card(graph, card, precision="fixed", scale=opts.scale, weight_bits=opts.weight_bits,
                            sign_split=opts.sign_split, min_weight_exp=opts.min_weight_exp,
                            input_scale=opts.input_scale, input_max=opts.input_max)

    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: ReferenceFixedOptions,
              context: RunContext) -> Path:
        """``lava_network.h5`` and ``lava_export.json``, as the Lava target writes them in fixed point."""
        return write_plan_folder(self.compile(graph, card, options), out_dir)

    def open(self, artefact: Path, options: ReferenceFixedOptions, context: RunContext) -> ReferenceFixedRunner:
        if artefact.is_dir():
            artefact = artefact / NETWORK_NAME
        plan = load_plan(artefact)
        if plan.precision != "fixed":
            raise UserError(f"{artefact} holds a {plan.precision}-point Lava network; reference-fixed runs "
                            "fixed-point plans (export with --target reference-fixed or lava-fixed)")
        return ReferenceFixedRunner(plan, options, time_steps_beside(artefact))

    def build(self, graph: nir.NIRGraph, card: ModelCard, options: ReferenceFixedOptions,
              context: RunContext) -> ReferenceFixedRunner:
        return ReferenceFixedRunner(self.compile(graph, card, options), options, card.time_steps)

    def summary(self, artefact: Path) -> list[str]:
        return plan_summary(Path(artefact).parent / REPORT_NAME)


TARGET = ReferenceFixedTarget()
