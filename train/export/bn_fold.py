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

That rule is written once, :func:`fold_tensors` (with :func:`bn_scale`): :func:`fold_pair` runs it on float64
copies for export, quantization-aware training (:mod:`neuromoco.train.qat`) on the live float32 parameters, and
:func:`unfold_weight` / :func:`unfold_bias` invert it (set a layer so that its folded weight or bias is a
given one: QAT's export projection).

Residual models (SEW-ResNet's ADD, :class:`~neuromoco.train.models.layers.Residual`) do not flatten to a
chain: :func:`flatten_graph` gives every layer the layers whose outputs add up into its input (the body's
last layer and the shortcut's, or the block's own input for an identity shortcut), and :func:`fold_graph`
folds BatchNorm on that form. :func:`flatten_modules` / :func:`fold_layers` are the chain-only views.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from neuromoco.train.models.layers import Residual, TimeDistributed

_DROPPED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_FOLD_INTO = (nn.Conv1d, nn.Conv2d, nn.Linear)
#: a layer BatchNorm folds into
FoldInto = nn.Conv1d | nn.Conv2d | nn.Linear


class ExportError(ValueError):
    """A model cannot be exported to NIR exactly (the message names the module)."""


#: the model's input, as a source index in ``Layer.inputs``
INPUT = -1


@dataclass
class Layer:
    """One primitive module of a flattened model, where it came from, whether it was time-distributed, and
    the layers (indices in the flattened list, :data:`INPUT` for the model's input) whose outputs add up
    into its input; ``None``: the layer right before it (a chain)."""

    module: nn.Module
    path: str  # e.g. "3" or "3.module.1" in the list given to the exporter
    distributed: bool
    inputs: tuple[int, ...] | None = None

    def runnable(self) -> nn.Module:
        return TimeDistributed(self.module) if self.distributed else self.module


def flatten_graph(modules: list[nn.Module] | nn.Module) -> tuple[list[Layer], tuple[int, ...]]:
    """The primitive layers of ``modules`` with their inputs, and the layers that add up into the output.

    Sequential / TimeDistributed are opened and no-ops dropped as in :func:`flatten_modules`; a
    ``Residual(body, shortcut)`` becomes its body's layers and its shortcut's, both reading the block's
    input, and the block's value is the sum of both ends (the input itself for an identity shortcut).
    """
    if isinstance(modules, nn.Module):
        modules = [modules]
    out: list[Layer] = []

    def visit(m: nn.Module, path: str, distributed: bool, src: tuple[int, ...]) -> tuple[int, ...]:
        if isinstance(m, TimeDistributed):
            return visit(m.module, f"{path}.module", True, src)
        if isinstance(m, nn.Sequential):
            for i, child in enumerate(m):
                src = visit(child, f"{path}.{i}", distributed, src)
            return src
        if isinstance(m, Residual):
            body = visit(m.body, f"{path}.body", distributed, src)
            short = src if m.shortcut is None else visit(m.shortcut, f"{path}.shortcut", distributed, src)
            if set(body) & set(short):
                raise ExportError(f"Residual (module {path}) adds a tensor to itself (a branch without "
                                  "layers): NIR has no doubled edge")
            return body + short
        if isinstance(m, _DROPPED):
            return src
        out.append(Layer(m, path, distributed, src))
        return (len(out) - 1,)

    src: tuple[int, ...] = (INPUT,)
    for i, m in enumerate(modules):
        src = visit(m, str(i), False, src)
    return out, src


def _is_chain(layers: list[Layer], outputs: tuple[int, ...]) -> bool:
    return (all(lay.inputs is None or lay.inputs == (k - 1,) for k, lay in enumerate(layers))
            and outputs == (len(layers) - 1,))


def flatten_modules(modules: list[nn.Module] | nn.Module) -> list[Layer]:
    """The primitive layers of ``modules`` in order (Sequential / TimeDistributed opened, no-ops dropped).

    A chain only: a model with ``Residual`` blocks raises (its graph form is :func:`flatten_graph`).
    """
    layers, outputs = flatten_graph(modules)
    if layers and not _is_chain(layers, outputs):
        raise ExportError("the model branches (Residual blocks): its layers are no chain; it exports to NIR "
                          "(to_nir writes every ADD as a second edge) but this step takes chains only")
    return layers


def bn_scale(bn: _BatchNorm, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``gamma / sqrt(running_var + eps)`` per channel, in ``dtype`` (default the BatchNorm's own; live:
    gradients reach gamma)."""
    var = _stat(bn.running_var, bn).to(dtype or _stat(bn.running_var, bn).dtype)
    gamma = bn.weight.to(var.dtype) if bn.weight is not None else torch.ones_like(var)
    return gamma / torch.sqrt(var + bn.eps)


def fold_tensors(w: torch.Tensor, b: torch.Tensor | None, bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The folded weight and bias ``W * scale``, ``(b - running_mean) * scale + beta``, computed in ``w``'s dtype
    (no copy, no detach: QAT trains through it; :func:`fold_pair` passes float64 copies)."""
    scale = bn_scale(bn, w.dtype)
    mean = _stat(bn.running_mean, bn).to(w.dtype)
    beta = bn.bias.to(w.dtype) if bn.bias is not None else torch.zeros_like(mean)
    b0 = b if b is not None else torch.zeros_like(mean)
    return w * scale.reshape(-1, *([1] * (w.dim() - 1))), (b0 - mean) * scale + beta


@torch.no_grad()
def unfold_weight(layer: FoldInto, bn: _BatchNorm | None, wf: torch.Tensor) -> None:
    """Set ``layer.weight`` so that, with ``bn`` folded in, it is ``wf`` (float64; a zero scale divides by 1)."""
    if bn is None:
        layer.weight.copy_(wf)
        return
    s = bn_scale(bn, torch.float64)
    s = torch.where(s == 0, torch.ones_like(s), s)
    layer.weight.copy_((wf.double() / s.reshape(-1, *([1] * (wf.dim() - 1)))).to(layer.weight.dtype))


@torch.no_grad()
def unfold_bias(layer: FoldInto, bn: _BatchNorm | None, bf: torch.Tensor) -> None:
    """Set ``bn``'s beta (or, without one, ``layer.bias``) so that the folded bias is ``bf`` (float64)."""
    if bn is None:
        assert layer.bias is not None, "a folded bias needs the layer's own bias"
        layer.bias.copy_(bf)
        return
    assert bn.bias is not None, "a folded bias needs the BatchNorm's beta"
    s = bn_scale(bn, torch.float64)
    b0 = layer.bias.double() if layer.bias is not None else torch.zeros_like(s)
    bn.bias.copy_((bf.double() - (b0 - _stat(bn.running_mean, bn).double()) * s).to(bn.bias.dtype))


def _stat(t: torch.Tensor | None, bn: _BatchNorm) -> torch.Tensor:
    if t is None:
        raise ExportError(f"{type(bn).__name__} without running statistics (track_running_stats=False) "
                          "normalises with batch statistics and cannot be folded")
    return t


def fold_pair(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of ``layer`` (Conv1d/Conv2d/Linear) with ``bn``'s evaluation transform folded in (float64,
    rounded once to the layer's dtype)."""
    assert isinstance(layer, _FOLD_INTO) and isinstance(bn, _BN)
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError(f"{type(bn).__name__} without running statistics (track_running_stats=False) "
                          "normalises with batch statistics and cannot be folded")
    out_features = layer.weight.shape[0]
    if bn.num_features != out_features:
        raise ExportError(f"{type(bn).__name__}({bn.num_features}) does not match the {out_features} outputs "
                          f"of the {type(layer).__name__} before it")
    with torch.no_grad():
        b = layer.bias.detach().double() if layer.bias is not None else None
        w_f, b_f = fold_tensors(layer.weight.detach().double(), b, bn)
        folded = copy.deepcopy(layer)
        folded.weight = nn.Parameter(w_f.to(layer.weight.dtype), requires_grad=False)
        folded.bias = nn.Parameter(b_f.to(layer.weight.dtype), requires_grad=False)
    return folded


def fold_graph(layers: list[Layer], outputs: tuple[int, ...]) -> tuple[list[Layer], tuple[int, ...]]:
    """:func:`flatten_graph`'s form with every BatchNorm folded into the conv / linear layer feeding it
    (copies; inputs untouched). The layer must feed nothing else: its unfolded output would be lost."""
    uses: dict[int, int] = {}
    for k, lay in enumerate(layers):
        for i in (lay.inputs if lay.inputs is not None else (k - 1,)):
            uses[i] = uses.get(i, 0) + 1
    for i in outputs:
        uses[i] = uses.get(i, 0) + 1
    out: list[Layer] = []
    where: dict[int, int] = {INPUT: INPUT}  # index in ``layers`` -> index in ``out``
    for k, layer in enumerate(layers):
        inputs = layer.inputs if layer.inputs is not None else (k - 1,)
        if isinstance(layer.module, _BN):
            prev = layers[inputs[0]] if len(inputs) == 1 and inputs[0] != INPUT else None
            if prev is None or not isinstance(prev.module, _FOLD_INTO):
                what = ("the start of the model" if prev is None and inputs == (INPUT,) else
                        f"a sum of {len(inputs)} layers" if prev is None else
                        f"{type(prev.module).__name__} (module {prev.path})")
                raise ExportError(f"cannot fold {type(layer.module).__name__} (module {layer.path}): it follows "
                                  f"{what}, not a conv or linear layer")
            if uses[inputs[0]] > 1:
                raise ExportError(f"cannot fold {type(layer.module).__name__} (module {layer.path}): the "
                                  f"{type(prev.module).__name__} before it (module {prev.path}) also feeds other "
                                  "layers")
            j = where[inputs[0]]
            target = out[j]
            try:
                out[j] = Layer(fold_pair(target.module, layer.module), target.path, target.distributed, target.inputs)
            except ExportError as err:
                raise ExportError(f"module {layer.path}: {err}") from None
            where[k] = j
        else:
            out.append(Layer(layer.module, layer.path, layer.distributed, tuple(where[i] for i in inputs)))
            where[k] = len(out) - 1
    return out, tuple(where[i] for i in outputs)


def fold_layers(layers: list[Layer]) -> list[Layer]:
    """Fold every BatchNorm into the conv / linear layer right before it (copies; inputs untouched). A chain."""
    return fold_graph(layers, (len(layers) - 1,))[0]


def fold_batchnorm(modules: list[nn.Module] | nn.Module) -> list[nn.Module]:
    """The model with BatchNorm folded, as runnable modules (time-distributed layers re-wrapped).

    ``nn.Sequential(*fold_batchnorm(modules))`` runs like ``nn.Sequential(*modules)`` in evaluation
    mode; it is what the exported graph computes.
    """
    return [layer.runnable() for layer in fold_layers(flatten_modules(modules))]


def fold_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose BatchNorms are folded into the conv / linear layer right before them and
    replaced by ``nn.Identity`` (pairs next to each other in a Sequential or ModuleList, TimeDistributed
    opened). The model's own ``forward`` then computes what its exported graph computes, bit for bit."""
    folded = copy.deepcopy(model)

    def unwrap(m: nn.Module) -> nn.Module:
        return m.module if isinstance(m, TimeDistributed) else m

    for container in list(folded.modules()):
        if not isinstance(container, (nn.Sequential, nn.ModuleList)):
            continue
        children = list(container)
        for i in range(len(children) - 1):
            a, b = unwrap(children[i]), unwrap(children[i + 1])
            if isinstance(a, _FOLD_INTO) and isinstance(b, _BN):
                fused = fold_pair(a, b)
                if isinstance(children[i], TimeDistributed):
                    children[i].module = fused
                else:
                    container[i] = fused
                if isinstance(children[i + 1], TimeDistributed):
                    children[i + 1].module = nn.Identity()
                else:
                    container[i + 1] = nn.Identity()
    return folded
