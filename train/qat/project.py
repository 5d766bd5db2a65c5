"""The export projection: trained weights moved onto the grid that the plan of the moved weights computes.

Where the 24-bit state bound (:func:`~neuromoco.deploy.loihi.fixed_point.state_bound`) lowers a scale, the
plan lowers it alike for a whole conv channel and onto a coarse grid, but the bound sums the row's own weight
magnitudes, so the scale can still move when the weights are projected onto it. :func:`project_state_dict`
therefore iterates: it projects the trained weights onto the grid, compiles them, and where the plan's scale
came out lower it rounds the channel's most rounded-up weights down one step more (where higher, takes the
higher scale), until the plan's grid of the projected weights is the grid they lie on.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from neuromoco.train.export.bn_fold import unfold_bias, unfold_weight
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.qat.config import QATConfig
from neuromoco.train.qat.fake_quant import LoihiQAT
from neuromoco.train.qat.grid import same_grid

#: projections tried until the plan's grid of the projected weights is the grid they were projected onto
PROJECTION_ROUNDS = 10


def project_state_dict(model: SpikingClassifier, config: QATConfig, input_shape: list[int]) -> dict[str, torch.Tensor]:
    """The classifier's state dict with every weight replaced so that its folded weight lies on the grid
    (what ``model.nir`` is exported from): the grid is computed from these very weights first."""
    model = copy.deepcopy(model).eval()
    qat = LoihiQAT(model, config, input_shape)
    original = copy.deepcopy(model.state_dict())
    qat.update_grid()
    target = [copy.deepcopy(g) for g in qat.grids]
    shrink: list[np.ndarray | None] = [None] * len(target)
    qat.shrink = shrink
    for _ in range(PROJECTION_ROUNDS):
        qat.grids = [copy.deepcopy(g) for g in target]
        model.load_state_dict(original)  # always the trained weights onto the newest grid: no drift
        _write_folded(qat)
        qat.update_grid()
        if all(same_grid(a, b) for a, b in zip(qat.grids, target, strict=True)):
            break
        for i, (got, want) in enumerate(zip(qat.grids, target, strict=True)):
            if got.pieces != want.pieces or got.m.shape != want.m.shape:
                target[i], shrink[i] = copy.deepcopy(got), None
                continue
            g_m, w_m = got.m.numpy(), want.m.numpy()
            prev = shrink[i]
            counts = np.zeros(len(w_m), dtype=np.int64) if prev is None else prev
            higher, lower = g_m > w_m * (1 + 1e-12), g_m < w_m * (1 - 1e-12)
            # the plan allows a larger scale: take it; a smaller one: the 24-bit state bound, which sums the
            # row's own weight magnitudes, binds just below this scale, so round a few more weights down
            want.m[torch.from_numpy(higher)] = got.m[torch.from_numpy(higher)]
            shrink[i] = np.where(higher, 0, np.where(lower, np.maximum(1, 2 * counts), counts))
    qat.shrink = []
    return model.state_dict()


@torch.no_grad()
def _write_folded(qat: LoihiQAT) -> None:
    """Set every weight layer so that its BatchNorm-folded weight and bias are on their grids (with the
    current shrink counts); the biases' grids read the weights just written."""
    for w, wq in zip(qat.weighted, qat.quantized_weights(), strict=True):
        unfold_weight(w.layer, w.bn, wq)
    for w, bq in zip(qat.weighted, qat.quantized_biases(), strict=True):
        if bq is not None:
            unfold_bias(w.layer, w.bn, bq)
