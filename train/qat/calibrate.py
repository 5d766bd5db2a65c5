"""BatchNorm calibration before QAT: the running statistics re-estimated once, then frozen and folded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, loader: Iterable[tuple[torch.Tensor, Any]], device: torch.device,
                        batches: int = 16) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` training batches (cumulative average),
    as the frozen statistics QAT folds; returns the number of batches seen."""
    from neuromoco.train.engine.loops import time_major

    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if not bns:
        return 0
    was = model.training
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        assert isinstance(bn, _BatchNorm)
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    n = 0
    for frames, _ in loader:
        model(time_major(frames.to(device)))
        n += 1
        if n >= batches:
            break
    for bn, mom in zip(bns, saved, strict=True):
        bn.momentum = mom
    model.train(was)
    return n
