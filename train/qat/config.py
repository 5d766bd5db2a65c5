"""The options of ``--qat``, typed and checked in one place: what the model trains for and what its card records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from neuromoco.errors import UserError

#: the ``--qat`` schemes (``none``: plain float training)
QAT_CHOICES = ("none", "loihi")
#: ``--qat-weight-bits``: one 8-bit mantissa per weight, or two 8-bit pieces
WEIGHT_BITS = (8, 16)
#: ``--qat-scale``: one scale per neuron or per layer
SCALES = ("neuron", "layer")


@dataclass(frozen=True)
class QATConfig:
    """What ``--qat loihi`` trains for: the Lava target's ``-o weight_bits`` and ``-o scale`` (and its input
    scaling, at the target's defaults)."""

    scheme: str = "loihi"  # the only quantizing scheme
    weight_bits: int = 8  # the plan's weight width (``-o weight_bits``)
    scale: str = "neuron"  # one scale per neuron or per layer (``-o scale``)
    input_scale: float = 1.0  # the plan's input scaling (the Lava target's default)
    input_max: float = 15.0  # the largest input count the plan represents (the Lava target's default)

    def __post_init__(self) -> None:
        if self.scheme != "loihi":
            raise UserError(f"--qat must be one of {', '.join(QAT_CHOICES)}, not {self.scheme!r}")
        if self.weight_bits not in WEIGHT_BITS:
            raise UserError(f"--qat-weight-bits must be one of {WEIGHT_BITS}, not {self.weight_bits!r}")
        if self.scale not in SCALES:
            raise UserError(f"--qat-scale must be one of {', '.join(SCALES)}, not {self.scale!r}")

    def record(self) -> dict[str, Any]:
        """The options as saved in the checkpoint and ``config.json`` (:meth:`from_record` reads them back)."""
        return asdict(self)

    @staticmethod
    def from_record(record: dict[str, Any]) -> QATConfig:
        return QATConfig(**record)

    def deploy_options(self) -> list[str]:
        """The ``deploy`` options that compile the plan this model was trained for: its scale mode and weight
        width, and mixed-sign connections kept in one synapse process (the grid trained onto; the Lava
        target's default ``sign_split`` holds 8-bit weights of that grid exactly too, 16-bit ones not always)."""
        return [f"scale={self.scale}", f"weight_bits={self.weight_bits}", "sign_split=false"]

    def card_entry(self, lifted: list[str]) -> dict[str, Any]:
        """The model card's ``extra.qat``: the options, the matching deploy options (read back by
        ``ModelCard.qat_deploy_options``) and, where the export lifted thresholds, a note saying so."""
        from neuromoco.train.qat.thresholds import THRESHOLD_MARGIN

        entry: dict[str, Any] = {**self.record(), "deploy_options": self.deploy_options()}
        if lifted:
            entry["threshold_margin"] = (f"v_threshold of {', '.join(lifted)} lifted by {THRESHOLD_MARGIN:.4g} of "
                                         "the plan's voltage unit 1/(64 sigma): exact ties on the grid do not spike "
                                         "on Loihi (v > vth), and no float executor sees a tie")
        return entry
