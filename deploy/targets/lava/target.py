"""The Lava target object: ``export`` writes a plan, ``load`` opens one as a runner (see the package docstring).

``export`` compiles the graph (:func:`~.compile.compile_graph`) and writes ``lava_network.h5``
(:mod:`.plan_io`) plus ``lava_export.json`` (the plan's report); ``load`` reads the file back into a
:class:`~.runner.LavaRunner`. Options: :class:`~.options.LavaOptions` (precision, fixed-point scale
rule, weight bits, input scaling, tiling, samples per run, spike records).
"""

from __future__ import annotations

import json
from pathlib import Path

import nir

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.targets.base import Target
from neuromoco.deploy.targets.lava.compile import compile_graph
from neuromoco.deploy.targets.lava.options import LavaOptions
from neuromoco.deploy.targets.lava.plan import LavaPlan
from neuromoco.deploy.targets.lava.plan_io import load_plan, save_plan
from neuromoco.deploy.targets.lava.runner import LavaRunner
from neuromoco.deploy.targets.options import RunContext
from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json

NETWORK_NAME = "lava_network.h5"
REPORT_NAME = "lava_export.json"


class LavaTarget(Target):
    name = "lava"
    Options = LavaOptions

    def compile(self, graph: nir.NIRGraph, card: ModelCard, options: LavaOptions | None = None,
                **values: object) -> LavaPlan:
        """The in-memory plan for ``graph`` (what :meth:`export` writes)."""
        opts, _ = self.resolve(options, None, dict(values))
        return compile_graph(graph, card.dt, precision=opts.precision or "float",
                             input_shape=list(card.input_shape) if card.input_shape else None,
                             input_scale=opts.input_scale, input_max=opts.input_max,
                             per_neuron_scale=opts.scale == "neuron", weight_bits=opts.weight_bits,
                             sign_split=opts.sign_split)

    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: LavaOptions,
              context: RunContext) -> Path:
        """Write ``lava_network.h5`` and ``lava_export.json`` under ``out_dir``; return the network file."""
        plan = self.compile(graph, card, options)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = save_plan(plan, out_dir / NETWORK_NAME)
        atomic_write_json(out_dir / REPORT_NAME, {"network": NETWORK_NAME, **plan.report})
        return path

    def open(self, artefact: Path, options: LavaOptions, context: RunContext) -> LavaRunner:
        if artefact.is_dir():
            artefact = artefact / NETWORK_NAME
        plan = load_plan(artefact)
        if options.precision not in (None, plan.precision):
            raise UserError(f"{artefact} holds a {plan.precision}-point network, not {options.precision}; run it "
                            f"with --target lava-{plan.precision}, or export again with --precision "
                            f"{options.precision}")
        return LavaRunner(plan, tile=options.tile, samples_per_run=options.samples_per_run,
                          record_spikes=options.record_spikes)

    def summary(self, artefact: Path) -> list[str]:
        """The layers, delays, processes and (fixed point) weight errors of an exported network."""
        report = Path(artefact).parent / REPORT_NAME
        if not report.exists():
            return []
        rep = json.loads(report.read_text())
        kind = "floating" if rep["precision"] == "float" else "fixed"
        lines = [f"{kind} point, {len(rep['layers'])} neuron layers, depth {rep['depth']} steps"]
        for lay in rep["layers"]:
            line = (f"{lay['name']:<16} {lay['type']:<8} {lay['neurons']:>7} neurons  delay {lay['delay']}  "
                    f"{lay['process']}")
            q = lay.get("quantization")
            if q:
                errs = [c.get("rel_weight_error", 0.0) for c in q["connections"].values()]
                line += f"  weight error {max(errs or [0.0]):.2%}"
                if "vth_mantissa" in q:
                    line += f"  vth {q['vth_mantissa'][1]}"
            if lay.get("process_reason") and lay["process"] != "LIFReset":
                line += f"  ({lay['process_reason']})"
            if _added_delays(lay):
                line += f"  {_added_delays(lay)}"
            lines.append(line)
            lines += [f"{'':<16} not exact: {note}" for note in (q or {}).get("notes", [])]  # what no scale maps
        if _added_delays(rep.get("readout", {})):
            lines.append(f"{'(readout)':<16} {_added_delays(rep['readout'])}")
        lines.append("quantization and process details: lava_export.json" if rep["precision"] == "fixed"
                     else "details: lava_export.json")
        return lines


def _added_delays(entry: dict) -> str:
    """``added delay: lif1 +2`` for the connections of a report entry padded by a synaptic delay (a skip
    connection's short path, a ``DelaySparse``), or ``""``."""
    late = [f"{c['source']} +{c['added_delay']}" for c in entry.get("connections", []) if c.get("added_delay")]
    return f"added delay: {', '.join(dict.fromkeys(late))}" if late else ""


TARGET = LavaTarget()
