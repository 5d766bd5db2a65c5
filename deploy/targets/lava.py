"""Lava target: a NIR graph as a Lava network on Lava's Loihi 2 simulator, floating point or fixed point.

``export`` compiles the graph into a plan (:mod:`neuromoco.deploy.targets.lava_plan`: neuron layers, one composed
connection per source, delays, Loihi 2 fixed-point formats) and writes it as ``lava_network.h5`` plus
``lava_export.json`` (layers, processes, delays and, in fixed point, the quantization error per layer).
``load`` reads the file back; its runner (:mod:`neuromoco.deploy.targets.lava_run`) builds the Lava processes and
runs batches of frames with ``Loihi2SimCfg(select_tag="floating_pt" | "fixed_pt")``.

Why not lava-dl's netx: a netx network description pairs every synapse block with a neuron and carries
slayer's fixed-point conventions. The project's graphs have linear chains with no neuron between them
(``conv -> avgpool -> LIF``, ``LIF -> sumpool -> conv``), an ``Affine`` readout with no neuron, NIR's
per-neuron parameters and ``v_reset``, recurrent layers, and must match the reference bit for bit in
floating point. So the network is built from Lava's own processes (``RingBuffer`` for graded input,
``Sparse`` / ``Dense`` connections, ``LIFReset`` neurons where they fit) plus one small neuron process
of our own (:mod:`neuromoco.deploy.targets.lava_procs`) where Lava's ``LIF`` lacks a feature.

Options (keywords, as ``deploy export/run`` and ``deploy parity`` pass them):

* ``precision``: ``"float"`` (default) or ``"fixed"``;
* ``input_scale`` (fixed point; default 1): graded input payload ``round(x * input_scale)``;
* ``input_max`` (fixed point; default 15): the largest input value the per-layer scales must not
  overflow on;
* ``scale`` (fixed point): ``"neuron"`` (default: one scale per neuron, absorbed by its threshold, so
  every weight row uses the full 8-bit mantissa, like per-channel int8 quantization) or ``"layer"``
  (one scale and one threshold per layer: Lava's own ``LIFReset`` runs such layers);
* ``weight_bits`` (fixed point): 8 (default, Loihi's synapse) or 16 (every weight split over two 8-bit
  synapses, coarse and residual: twice the synaptic operations, for graphs too sensitive to 8 bits);
* ``tile`` (default ``"auto"``, alias ``lava_tile``): samples side by side in one run; ``samples_per_run``:
  samples per Lava run (default: each ``run`` call is one Lava run); ``record_spikes``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import nir

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.targets.lava_plan import LavaPlan, compile_graph, load_plan, save_plan
from neuromoco.deploy.targets.lava_run import LavaRunner
from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json

NETWORK_NAME = "lava_network.h5"
REPORT_NAME = "lava_export.json"


def _precision(p: Any) -> str:
    if p in (None, "", "float", "floating", "floating_pt", "float64"):
        return "float"
    if p in ("fixed", "fixed_pt", "int", "loihi2"):
        return "fixed"
    raise UserError(f"unknown Lava precision {p!r}; use float or fixed")


def _run_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.get("tile") is not None or options.get("lava_tile") is not None:
        out["tile"] = options.get("tile") or options.get("lava_tile")
    for k in ("samples_per_run", "record_spikes"):
        if options.get(k) is not None:
            out[k] = options[k]
    if options.get("spike_tensors") and "record_spikes" not in out:
        out["record_spikes"] = True
    return out


class LavaTarget:
    name = "lava"

    def compile(self, graph: nir.NIRGraph, card: ModelCard, *, precision: Any = "float",
                input_scale: float = 1.0, input_max: float = 15.0, scale: str = "neuron",
                weight_bits: int = 8, **_: Any) -> LavaPlan:
        """The in-memory plan for ``graph`` (what :meth:`export` writes)."""
        if scale not in ("neuron", "layer"):
            raise UserError(f"Lava fixed-point scale must be 'neuron' or 'layer', not {scale!r}")
        return compile_graph(graph, card.dt, precision=_precision(precision),
                             input_shape=list(card.input_shape) if card.input_shape else None,
                             input_scale=float(input_scale or 1.0), input_max=float(input_max or 15.0),
                             per_neuron_scale=scale == "neuron", weight_bits=int(weight_bits))

    def export(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, **options: Any) -> Path:
        """Write ``lava_network.h5`` and ``lava_export.json`` under ``out_dir``; return the network file."""
        plan = self.compile(graph, card, **options)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = save_plan(plan, out_dir / NETWORK_NAME)
        atomic_write_json(out_dir / REPORT_NAME, {"network": NETWORK_NAME, **plan.report})
        return path

    def load(self, artefact: Path, **options: Any) -> LavaRunner:
        artefact = Path(artefact)
        if artefact.is_dir():
            artefact = artefact / NETWORK_NAME
        plan = load_plan(artefact)
        want = options.get("precision")
        if want is not None and _precision(want) != plan.precision:
            raise UserError(f"{artefact} holds a {plan.precision}-point network, not {_precision(want)}; "
                            f"run it with --target lava-{plan.precision}, or export again with --precision {_precision(want)}")
        return LavaRunner(plan, **_run_options(options))

    def runner(self, graph: nir.NIRGraph, card: ModelCard, **options: Any) -> LavaRunner:
        """Compile in memory (and round-trip through the file format) and return a runner."""
        with tempfile.TemporaryDirectory(prefix="neuromoco-lava-export-") as tmp:
            path = self.export(graph, card, Path(tmp), **options)
            return self.load(path, **options)


TARGET = LavaTarget()
