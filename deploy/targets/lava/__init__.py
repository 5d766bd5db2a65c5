"""Lava target: a NIR graph as a Lava network on Lava's Loihi 2 simulator, floating point or fixed point.

``export`` compiles the graph into a plan (neuron layers, one composed connection per source, delays,
Loihi 2 fixed-point formats) and writes it as ``lava_network.h5`` plus ``lava_export.json`` (layers,
processes, delays and, in fixed point, the quantization error per layer). ``load`` reads the file back;
its runner builds the Lava processes and runs batches of frames with
``Loihi2SimCfg(select_tag="floating_pt" | "fixed_pt")``.

Why not lava-dl's netx: a netx network description pairs every synapse block with a neuron and carries
slayer's fixed-point conventions. The project's graphs have linear chains with no neuron between them
(``conv -> avgpool -> LIF``, ``LIF -> sumpool -> conv``), an ``Affine`` readout with no neuron, NIR's
per-neuron parameters and ``v_reset``, recurrent layers, and must match the reference bit for bit in
floating point. So the network is built from Lava's own processes (``RingBuffer`` for graded input,
``Sparse`` / ``Dense`` connections, ``LIFReset`` neurons where they fit) plus one small neuron process
of our own where Lava's ``LIF`` lacks a feature.

Modules, one job each:

* :mod:`.target`: the target object (``TARGET``) and its options;
* the plan it runs (layers, connections, delays, fixed point, the plan file) is :mod:`neuromoco.deploy.loihi`;
* :mod:`.network`: Lava processes from a plan; :mod:`.runner`: frames through them;
* :mod:`.processes`: the project's Lava processes; :mod:`.compat`: importing Lava on Python 3.11.

This ``__init__`` imports nothing heavy: ``TARGET`` is loaded on first access, so that importing
:mod:`.compat` or :mod:`.options` does not pull in the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuromoco.lazy import lazy_attributes

if TYPE_CHECKING:
    from neuromoco.deploy.targets.lava.target import TARGET, LavaTarget

__all__ = ["TARGET", "LavaTarget"]


#: ``TARGET`` and ``LavaTarget`` from :mod:`.target`, imported on first access
__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, f"{__name__}.target"))
