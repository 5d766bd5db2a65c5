"""What every encoder provides, and the classifier built on top of one.

An encoder maps frames ``x [T, B, C, H, W]`` to per-time-step features ``[T, B, D]`` (MoCo's MixInfoNCE
needs the features of every step). A classifier adds an ``nn.Linear`` readout per step, without a neuron;
its logits are the mean over T of the per-step readout (equal to the readout of the mean, it is linear).
"""

from __future__ import annotations

import torch
from torch import nn

from neuromoco.train.models.layers import TimeDistributed
from neuromoco.train.models.neurons import LIF


class SpikingEncoder(nn.Module):
    """Base class: ``forward(x [T,B,C,H,W]) -> [T,B,feature_dim]``."""

    feature_dim: int
    deployable: bool = False

    def deploy_modules(self) -> list[nn.Module]:
        """Multi-step modules (stateless ones in ``TimeDistributed``) that compose to ``forward``."""
        raise NotImplementedError(f"{type(self).__name__} does not deploy: it uses operators with no NIR "
                                  "mapping (pick a model that `train models` marks as deployable)")


class SpikingClassifier(nn.Module):
    """Encoder + linear readout per time step; logits = mean over T of the readout."""

    def __init__(self, encoder: SpikingEncoder, num_classes: int, feature_dim: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        # feature_dim: an encoder of one's own (any module, neuromoco.train.api) need not carry the attribute
        self.head = nn.Linear(feature_dim or encoder.feature_dim, num_classes)

    @property
    def deployable(self) -> bool:
        return bool(getattr(self.encoder, "deployable", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)).mean(0)

    def deploy_modules(self) -> list[nn.Module]:
        """The module sequence (encoder layers, then the readout) that NIR export walks.

        Multi-step form: stateless modules wrapped in ``TimeDistributed``, LIF as is, so
        ``nn.Sequential(*deploy_modules())(x)`` gives ``[T, B, classes]`` whose mean over T is ``forward(x)``.
        """
        return [*self.encoder.deploy_modules(), TimeDistributed(self.head)]


def run_multistep(modules: list[nn.Module] | nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Run a per-step module sequence on ``x [T, B, ...]``: stateless modules see ``[T*B, ...]``, LIF ``[T, B, ...]``.

    This is how the deployable encoders compute, so running ``deploy_modules()`` through it gives the model's
    own output (tests check this; it is also what the exported graph means). A LIF followed by a 2x2 sum pooling
    runs as one native op where :meth:`LIF.forward_pooled` applies (the same values and gradients).
    """
    t, b = x.shape[:2]
    y = x.reshape(t * b, *x.shape[2:])
    mods = list(modules)
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, LIF):
            z = y.reshape(t, b, *y.shape[1:])
            pooled = m.forward_pooled(z, mods[i + 1]) if i + 1 < len(mods) else None
            if pooled is not None:  # LIF + 2x2 sum pooling in one native op: the same values, no full-size spikes
                y = pooled.reshape(t * b, *pooled.shape[2:])
                i += 2
                continue
            y = m(z).reshape(t * b, *y.shape[1:])
        else:
            y = m(y)
        i += 1
    return y.reshape(t, b, *y.shape[1:])


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
