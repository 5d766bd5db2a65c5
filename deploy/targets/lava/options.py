"""Options of the Lava target (declared once: ``-o KEY=VALUE`` is parsed against this class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neuromoco.deploy.targets.options import TargetOptions, option


@dataclass(frozen=True)
class LavaOptions(TargetOptions):
    """How a NIR graph becomes a Lava network and how it runs on Lava's Loihi 2 simulator."""

    precision: Literal["float", "fixed"] | None = option(
        None, "floating point or Loihi 2 fixed point (also --precision; default: float, or what an export holds)")
    scale: Literal["neuron", "layer"] = option(
        "neuron", "fixed point: one scale per neuron absorbed by its threshold, or one per layer (Lava's LIFReset)")
    weight_bits: Literal[8, 16] = option(
        8, "fixed point: 8-bit synapses, or 16 (each weight over two 8-bit synapses, twice the synaptic ops)")
    sign_split: bool = option(
        True, "fixed point: mixed-sign connections as an excitatory and an inhibitory process (8-bit magnitudes "
        "instead of 7, the same synapses); 0: one mixed-sign process, the grid quantization-aware training uses")
    min_weight_exp: int = option(
        -8, "fixed point: the lowest weight exponent (-8..0); a negative one buys weight bits but Lava floors its "
        "shifted sum, 0 keeps every sum exact (what quantization-aware training records)")
    input_scale: float = option(1.0, "fixed point: graded input is sent as round(x * input_scale)")
    input_max: float = option(15.0, "fixed point: the largest input value the per-layer scales must not overflow on")
    tile: int | Literal["auto"] = option(
        "auto", "samples side by side in one Lava run (auto: as fits 2M synapses, <= 16)")
    samples_per_run: int | None = option(None, "at most this many samples per Lava run (default: one run per batch)")
