"""Options of the ``reference-fixed`` target (declared once: ``-o KEY=VALUE`` is parsed against this class).

The plan options (``scale``, ``weight_bits``, ``sign_split``, ``min_weight_exp``, ``input_scale``,
``input_max``) are the Lava target's own fields, with the same defaults and meanings, so that
``reference-fixed`` and ``lava-fixed`` given the same ``-o`` values compile the same plan. Precision is always
fixed. Opening an exported plan uses the values the plan was written with (as ``lava-fixed`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neuromoco.deploy.targets.lava.options import LavaOptions
from neuromoco.deploy.targets.options import TargetOptions, option

_LAVA = LavaOptions.fields()


def _same(name: str) -> object:
    """The Lava target's option ``name``: its default and its meaning."""
    return option(_LAVA[name].default, _LAVA[name].metadata["help"])


@dataclass(frozen=True)
class ReferenceFixedOptions(TargetOptions):
    """How a NIR graph becomes a Loihi 2 fixed-point plan and where its integer arithmetic runs."""

    device: str = option("cpu", "torch device: cpu, cuda, cuda:N")
    scale: Literal["neuron", "layer"] = _same("scale")  # type: ignore[assignment]
    weight_bits: Literal[8, 16] = _same("weight_bits")  # type: ignore[assignment]
    sign_split: bool = _same("sign_split")  # type: ignore[assignment]
    min_weight_exp: int = _same("min_weight_exp")  # type: ignore[assignment]
    input_scale: float = _same("input_scale")  # type: ignore[assignment]
    input_max: float = _same("input_max")  # type: ignore[assignment]
    batch_size: int = option(256, "samples per batch of integer arithmetic (memory: T * batch * neurons)")
    threads: int = option(0, "torch CPU threads while running (0: torch's setting; 1 is often fastest on a busy CPU)")
    record_voltages: bool = option(False, "also return each layer's membrane voltage per step, after the step's "
                                          "reset, in Lava's fixed-point units (int32: the v of Lava's LIF, which "
                                          "spikes above vth << 6), not volts; traces write it as NIR's v")

    def lava_options(self) -> LavaOptions:
        """The Lava target's options that compile the same plan (``lava-fixed`` with these values)."""
        return LavaOptions(precision="fixed", scale=self.scale, weight_bits=self.weight_bits,
                           sign_split=self.sign_split, min_weight_exp=self.min_weight_exp,
                           input_scale=self.input_scale, input_max=self.input_max)
