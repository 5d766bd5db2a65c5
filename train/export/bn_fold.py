"""Flattening a deployable model into primitive layers, and folding BatchNorm into the layer before it.

A deployable model is a sequence of multi-step modules (``[T, B, ...]`` in and out): stateless layers
wrapped in :class:`~neuromoco.train.models.layers.TimeDistributed`, and :class:`~neuromoco.train.models.neurons.LIF`
neurons. :func:`flatten_modules` opens ``nn.Sequential`` and ``TimeDistributed`` wrappers (a wrapped
``Sequential`` becomes one wrapper per child, the same computation), drops ``Dropout`` and ``Identity``
(no-ops in evaluation), and :func:`fold_batchnorm` merges every BatchNorm with the conv or linear layer
right before it, using the running (evaluation) statistics:

    scale = gamma / sqrt(running_var + eps)
    W' = W * scale (per output channel)      b' = (b - running_mean) * scale + beta

computed in float64 and rounded once to the layer's dtype. The folded model computes what the
unfolded one computes in evaluation mode, up to float rounding (a few ulp); the exported graph
reproduces the *folded* model bit for bit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from neuromoco.train.models.layers import TimeDistributed

_DROPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_FOLD_INTO = (nn.Conv1d, nn.Conv2d, nn.Linear)


class ExportError(ValueError):
    """A model cannot be exported to NIR exactly (the message names the module)."""


@dataclass
class Layer:
    """One primitive module of a flattened model, where it came from, and whether it was time-distributed."""

    module: nn.Module
    path: str  # e.g. "3" or "3.module.1" in the list given to the exporter
    distributed: bool

    def runnable(self) -> nn.Module:
        return TimeDistributed(self.module) if self.distributed else self.module


def flatten_modules(modules: list[nn.Module] | nn.Module) -> list[Layer]:
    """The primitive layers of ``modules`` in order (Sequential / TimeDistributed opened, no-ops dropped)."""
    if isinstance(modules, nn.Module):
        modules = [modules]
    out: list[Layer] = []

    def visit(m: nn.Module, path: str, distributed: bool) -> None:
        if isinstance(m, TimeDistributed):
            visit(m.module, f"{path}.module", True)
        elif isinstance(m, nn.Sequential):
            for i, child in enumerate(m):
                visit(child, f"{path}.{i}", distributed)
        elif isinstance(m, _DROPPED):
            return
        else:
            out.append(Layer(m, path, distributed))

    for i, m in enumerate(modules):
        visit(m, str(i), False)
    return out


def fold_pair(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of ``layer`` (Conv1d/Conv2d/Linear) with ``bn``'s evaluation transform folded in."""
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError(f"{type(bn).__name__} without running statistics (track_running_stats=False) "
                          "normalises with batch statistics and cannot be folded")
    out_features = layer.weight.shape[0]
    if bn.num_features != out_features:
        raise ExportError(f"{type(bn).__name__}({bn.num_features}) does not match the {out_features} outputs "
                          f"of the {type(layer).__name__} before it")
    with torch.no_grad():
        w = layer.weight.detach().double()
        b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(out_features, dtype=torch.float64,
                                                                                     device=w.device)
        mean, var = bn.running_mean.detach().double(), bn.running_var.detach().double()
        gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
        beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
        scale = gamma / torch.sqrt(var + bn.eps)
        w_f = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        b_f = (b - mean) * scale + beta
        folded = copy.deepcopy(layer)
        folded.weight = nn.Parameter(w_f.to(layer.weight.dtype), requires_grad=False)
        folded.bias = nn.Parameter(b_f.to(layer.weight.dtype), requires_grad=False)
    return folded


def fold_layers(layers: list[Layer]) -> list[Layer]:
    """Fold every BatchNorm into the conv / linear layer right before it (copies; inputs untouched)."""
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer.module, _BN):
            prev = out[-1] if out else None
            if prev is None or not isinstance(prev.module, _FOLD_INTO):
                what = "the start of the model" if prev is None else f"{type(prev.module).__name__} (module {prev.path})"
                raise ExportError(f"cannot fold {type(layer.module).__name__} (module {layer.path}): it follows "
                                  f"{what}, not a conv or linear layer")
            try:
                out[-1] = Layer(fold_pair(prev.module, layer.module), prev.path, prev.distributed)
            except ExportError as err:
                raise ExportError(f"module {layer.path}: {err}") from None
        else:
            out.append(layer)
    return out


def fold_batchnorm(modules: list[nn.Module] | nn.Module) -> list[nn.Module]:
    """The model with BatchNorm folded, as runnable modules (time-distributed layers re-wrapped).

    ``nn.Sequential(*fold_batchnorm(modules))`` runs like ``nn.Sequential(*modules)`` in evaluation
    mode; it is what the exported graph computes.
    """
    return [layer.runnable() for layer in fold_layers(flatten_modules(modules))]
