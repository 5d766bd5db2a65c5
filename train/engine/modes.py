"""The three downstream (labelled) training modes, as a table: what each command's options and training are.

Light on purpose (no torch): ``train finetune --help`` builds its parser from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    epochs: int  # default --epochs
    lr: float  # default --lr
    pretrained: bool  # starts from the encoder of a `train pretrain` checkpoint (--pretrained, required)
    frozen: bool  # the encoder stays fixed: only the readout trains, on features computed once

    @property
    def takes_model(self) -> bool:
        """Whether --model picks the architecture (otherwise the pre-trained checkpoint names it)."""
        return not self.pretrained


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("finetune", epochs=30, lr=1e-3, pretrained=True, frozen=False),
    Mode("linear", epochs=100, lr=1e-2, pretrained=True, frozen=True),
    Mode("supervised", epochs=30, lr=1e-3, pretrained=False, frozen=False),
)}
