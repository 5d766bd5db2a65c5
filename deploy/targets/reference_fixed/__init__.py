"""The ``reference-fixed`` target: a Lava plan's Loihi 2 fixed-point arithmetic as batched PyTorch integers.

It runs the same :class:`~neuromoco.deploy.loihi.plan.LavaPlan` that ``lava-fixed`` simulates
(quantized weights and exponents, 12-bit decays, bias mantissas and exponents, thresholds, reset rules,
24-bit states) but as int64 tensor arithmetic over a whole batch ``[T, B, ...]`` on CPU or CUDA, and
gives the same spikes at every layer and step and the same readout values, bit for bit.

Modules, one job each:

* :mod:`.options`: its options (``-o KEY=VALUE``); imported alone for ``--help``;
* :mod:`.arith`: the integer primitives exactly as Lava's bit-accurate process models compute them;
* :mod:`.definition`: THE definition, the plan stepped in plain integers with no fast path;
* :mod:`.strategy`: which exact fast kernels may run (a value passed in; ``DEFINITION`` runs the definition);
* :mod:`.executor`: a plan run over a batch, layer by layer, with the strategy's kernels;
  :mod:`.layer` a layer's neuron constants and bounds, :mod:`.activation` its batched input,
  :mod:`.connection` one synapse process and its fast forms, :mod:`.products` the exact products (int8 limbs
  in :mod:`.int8`, event-driven, dense, CSR), :mod:`.neurons` the batched neuron kernels;
* :mod:`.conv_structure`: a connection recovered or held as a convolution plus its border correction;
* :mod:`.memory`: the batch's peak memory, decided before anything is allocated;
* :mod:`.target`: the target object (``TARGET``): export a plan (the Lava target's file), open, build.

This ``__init__`` imports nothing heavy (no torch, no Lava): ``TARGET`` is loaded on first access.
Lava itself is never needed: only the plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuromoco.lazy import lazy_attributes

if TYPE_CHECKING:
    from neuromoco.deploy.targets.reference_fixed.target import TARGET, ReferenceFixedTarget

__all__ = ["TARGET", "ReferenceFixedTarget"]


#: ``TARGET`` and ``ReferenceFixedTarget`` from :mod:`.target`, imported on first access
__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, f"{__name__}.target"))
