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
    # the fine-tuning recipe (modes with a pre-trained encoder that trains; docs/training.md "Fine-tuning recipe")
    backbone_lr_scale: float = 1.0  # default --backbone-lr-scale: the encoder's lr is --lr x this
    head_warmup_epochs: int = 0  # default --head-warmup-epochs: linear-probe epochs that start the readout (LP-FT)
    freeze_bn: bool = False  # default --freeze-bn: the encoder's BatchNorm statistics stay the pre-trained ones
    warmup_epochs: float = 0.0  # default --warmup-epochs

    @property
    def tunes_backbone(self) -> bool:
        """Whether the fine-tuning recipe's options apply (a pre-trained encoder that trains)."""
        return self.pretrained and not self.frozen

    @property
    def takes_model(self) -> bool:
        """Whether --model picks the architecture (otherwise the pre-trained checkpoint names it)."""
        return not self.pretrained


MODES: dict[str, Mode] = {m.name: m for m in (
    # LP-FT: the readout warm-started by a linear probe, then all at --lr (measured: docs/training.md)
    Mode("finetune", epochs=30, lr=1e-3, pretrained=True, frozen=False, head_warmup_epochs=100),
    Mode("linear", epochs=100, lr=1e-2, pretrained=True, frozen=True),
    Mode("supervised", epochs=30, lr=1e-3, pretrained=False, frozen=False),
)}
