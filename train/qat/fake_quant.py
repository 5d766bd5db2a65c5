"""The fake-quantized network: the classifier's forward pass on the exported network's weights, on the grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from neuromoco.errors import UserError
from neuromoco.train.export.bn_fold import bn_scale
from neuromoco.train.export.to_nir import to_nir
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.qat.config import QATConfig
from neuromoco.train.qat.grid import Grid, clip_to_core, fake_quant_bias, fake_quant_weight
from neuromoco.train.qat.observer import observe
from neuromoco.train.qat.weighted import Weighted, feeding_weights, weighted_layers

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


class LoihiQAT(nn.Module):
    """A deployable classifier whose conv / linear weights are fake-quantized onto the plan's grid (see
    :mod:`neuromoco.train.qat`); chains and branching (residual) models alike.

    Holds the classifier (its parameters are the ones trained and checkpointed); ``forward`` runs the
    classifier's own forward with every weight replaced by its BatchNorm-folded, quantized value divided back
    by the BatchNorm's scale, every BatchNorm on its frozen running statistics, so it computes the exported
    network on the grid. Call :meth:`update_grid` (the observer) before the first forward and whenever the
    grid should follow the weights.
    """

    def __init__(self, model: SpikingClassifier, config: QATConfig, input_shape: list[int]) -> None:
        super().__init__()
        if not getattr(model, "deployable", False):
            raise UserError("--qat loihi needs a deployable model (see `train models`)")
        from neuromoco.train.models.neurons import LIF

        self.model = model
        self.config = config
        self.input_shape = [int(v) for v in input_shape]
        self.dt = next((float(m.config.dt) for m in model.modules() if isinstance(m, LIF)), 1e-3)
        self.weighted: list[Weighted] = weighted_layers(model, self.input_shape, self.dt)
        #: per neuron layer (and "output" for the readout): the weight layer whose connections feed it
        self.feeds = feeding_weights(to_nir(model.deploy_modules(), self.input_shape, self.dt),
                                     {w.name for w in self.weighted})
        self._bns = [m for m in model.modules() if isinstance(m, _BN)]
        self._cores = [w.core_taps() for w in self.weighted]
        self.grids: list[Grid] = []
        #: per weight layer, how many weights per output channel the export projection rounds down one step more
        self.shrink: list[np.ndarray | None] = []
        self.report: dict[str, Any] = {}

    def update_grid(self) -> None:
        """Observer step: the grid of every weight layer from the plan of the current weights."""
        self.grids, self.report = observe(self.model, self.weighted, self.feeds, self.config, self.input_shape,
                                          self.dt)

    def _on_grid(self, i: int, wf: torch.Tensor) -> torch.Tensor:
        """Weight layer ``i``'s folded weight ``wf``, core-clipped and fake-quantized."""
        shrink = self.shrink[i] if i < len(self.shrink) else None
        return fake_quant_weight(clip_to_core(wf, self._cores[i], self.config.scale), self.grids[i], shrink)

    def quantized_weights(self) -> list[torch.Tensor]:
        """Every weight layer's folded, core-clipped (per-neuron scales) weight on its grid (no gradient)."""
        with torch.no_grad():
            return [self._on_grid(i, w.folded()[0]) for i, w in enumerate(self.weighted)]

    def quantized_biases(self) -> list[torch.Tensor | None]:
        """Every weight layer's folded bias on its grid (no gradient; None where the layer has none)."""
        with torch.no_grad():
            biases = [w.folded()[1] for w in self.weighted]
            return [None if b is None else fake_quant_bias(b, g) for b, g in zip(biases, self.grids, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.grids:
            raise RuntimeError("LoihiQAT.update_grid() must run before the first forward pass")
        weights: dict[str, torch.Tensor] = {}
        for i, w in enumerate(self.weighted):
            wf, b = w.folded()
            wq = self._on_grid(i, wf)
            if w.bn is not None:  # the BatchNorm (on its running statistics) multiplies its scale back in
                s = bn_scale(w.bn)
                wq = wq / torch.where(s == 0, torch.ones_like(s), s).reshape(-1, *([1] * (wq.dim() - 1)))
            weights[w.param] = wq
            if b is not None and w.bias_param is not None and self.grids[i].bias_factor is not None:
                shift = fake_quant_bias(b, self.grids[i]) - b  # straight-through: zero gradient, the grid's offset
                owner = w.bn if w.bn is not None else w.layer
                assert owner.bias is not None
                weights[w.bias_param] = owner.bias + shift
        modes = [bn.training for bn in self._bns]
        for bn in self._bns:
            bn.eval()  # the frozen statistics the export folds
        try:
            return torch.func.functional_call(self.model, weights, (x,))
        finally:
            for bn, mode in zip(self._bns, modes, strict=True):
                bn.train(mode)
