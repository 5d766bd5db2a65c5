"""The options of ``--qat``, typed and checked in one place: what the model trains for and what its card records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from neuromoco.deploy.loihi.constants import WEIGHT_EXP_MIN
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
    #: the plan's lowest weight exponent (``-o min_weight_exp``): 0, so that every synaptic sum is exact on Loihi
    #: as in the float graph trained here (a negative exponent's sum is floored by the shift: measured on the
    #: trained sew-resnet18-128, the stem at exponent -1 held reference-fixed's agreement at 0.994)
    min_weight_exp: int = 0

    def __post_init__(self) -> None:
        if self.scheme != "loihi":
            raise UserError(f"--qat must be one of {', '.join(QAT_CHOICES)}, not {self.scheme!r}")
        if self.weight_bits not in WEIGHT_BITS:
            raise UserError(f"--qat-weight-bits must be one of {WEIGHT_BITS}, not {self.weight_bits!r}")
        if not WEIGHT_EXP_MIN <= self.min_weight_exp <= 0:
            raise UserError(f"the QAT min_weight_exp must be in {WEIGHT_EXP_MIN}..0, not {self.min_weight_exp!r}")
        if self.scale not in SCALES:
            raise UserError(f"--qat-scale must be one of {', '.join(SCALES)}, not {self.scale!r}")

    def record(self) -> dict[str, Any]:
        """The options as saved in the checkpoint and ``config.json`` (:meth:`from_record` reads them back)."""
        return asdict(self)

    @staticmethod
    def from_record(record: dict[str, Any]) -> QATConfig:
        """The options of a saved record; one written before ``min_weight_exp`` existed trained onto the
        plan's default (any exponent down to -8)."""
        return QATConfig(**{"min_weight_exp": WEIGHT_EXP_MIN, **record})

    def plan_options(self) -> dict[str, Any]:
        """The keyword arguments of ``compile_graph`` that compile the plan this model trains onto."""
        return {"input_scale": self.input_scale, "input_max": self.input_max,
                "per_neuron_scale": self.scale == "neuron", "weight_bits": self.weight_bits,
                "sign_split": False, "min_weight_exp": self.min_weight_exp}

    def deploy_options(self) -> list[str]:
        """The ``deploy`` options that compile the plan this model was trained for: its scale mode and weight
        width, and mixed-sign connections kept in one synapse process (the grid trained onto; the Lava
        target's default ``sign_split`` holds 8-bit weights of that grid exactly too, 16-bit ones not always)."""
        return [f"scale={self.scale}", f"weight_bits={self.weight_bits}", "sign_split=false",
                f"min_weight_exp={self.min_weight_exp}"]

    def card_entry(self, lifted: dict[str, float]) -> dict[str, Any]:
        """The model card's ``extra.qat``: the options, the matching deploy options (read back by
        ``ModelCard.qat_deploy_options``) and, where the export lifted thresholds (``{node: fraction}``), a note
        saying by how much."""
        entry: dict[str, Any] = {**self.record(), "deploy_options": self.deploy_options()}
        if lifted:
            by: dict[float, list[str]] = {}
            for name, margin in lifted.items():
                by.setdefault(margin, []).append(name)
            parts = [f"{', '.join(names)} by {margin:.4g}" for margin, names in sorted(by.items(), reverse=True)]
            entry["threshold_margin"] = (f"v_threshold of {'; '.join(parts)} of the plan's voltage unit 1/(64 sigma) "
                                         "lifted: exact ties on the grid do not spike on Loihi (v > vth), and no "
                                         "float executor sees a tie")
        return entry
