"""The Lava target object: ``export`` writes a plan, ``load`` opens one as a runner (see the package docstring).

``export`` compiles the graph (:func:`~.compile.compile_graph`) and writes ``lava_network.h5``
(:mod:`neuromoco.deploy.loihi.plan_io`) plus ``lava_export.json`` (the plan's report); ``load`` reads the file back
into a :class:`~.runner.LavaRunner`. Options: :class:`~.options.LavaOptions` (precision, fixed-point scale
rule, weight bits, input scaling, tiling, samples per run, spike records).
"""

from __future__ import annotations

from pathlib import Path

import nir

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
from neuromoco.deploy.targets.base import Target, time_steps_beside
from neuromoco.deploy.targets.lava.options import LavaOptions
from neuromoco.deploy.targets.lava.runner import LavaRunner
from neuromoco.deploy.targets.options import RunContext
from neuromoco.errors import UserError

__all__ = ["NETWORK_NAME", "TARGET", "LavaTarget"]


class LavaTarget(Target):
    name = "lava"
    Options = LavaOptions

    def compile(self, graph: nir.NIRGraph, card: ModelCard, options: LavaOptions | None = None,
                **values: object) -> LavaPlan:
        """The in-memory plan for ``graph`` (what :meth:`export` writes)."""
        opts, _ = self.resolve(options, None, dict(values))
        return compile_card(graph, card, precision=opts.precision or "float", scale=opts.scale,
                            weight_bits=opts.weight_bits, sign_split=opts.sign_split,
                            min_weight_exp=opts.min_weight_exp, input_scale=opts.input_scale,
                            input_max=opts.input_max)

    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: LavaOptions,
              context: RunContext) -> Path:
        """Write ``lava_network.h5`` and ``lava_export.json`` under ``out_dir``; return the network file."""
        return write_plan_folder(self.compile(graph, card, options), out_dir)

    def open(self, artefact: Path, options: LavaOptions, context: RunContext) -> LavaRunner:
        if artefact.is_dir():
            artefact = artefact / NETWORK_NAME
        plan = load_plan(artefact)
        if options.precision not in (None, plan.precision):
            raise UserError(f"{artefact} holds a {plan.precision}-point network, not {options.precision}; run it "
                            f"with --target lava-{plan.precision}, or export again with --precision "
                            f"{options.precision}")
        return LavaRunner(plan, tile=options.tile, samples_per_run=options.samples_per_run,
                          record_spikes=options.record_spikes, time_steps=time_steps_beside(artefact))

    def summary(self, artefact: Path) -> list[str]:
        """The layers, delays, processes and (fixed point) weight errors of an exported network."""
        return plan_summary(Path(artefact).parent / REPORT_NAME)


TARGET = LavaTarget()
