"""The classifier's conv / linear layers as the exported graph sees them: each with the BatchNorm folded into it,
its NIR node name, its parameter names, its input shape, and the neuron layer it feeds."""

from __future__ import annotations

from dataclasses import dataclass

import nir
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from neuromoco.errors import UserError
from neuromoco.train.export.bn_fold import ExportError, FoldInto, flatten_graph, fold_tensors
from neuromoco.train.export.to_nir import plan_graph
from neuromoco.train.models.base import SpikingClassifier

_WEIGHTED = (nn.Conv2d, nn.Conv1d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class Weighted:
    """One conv / linear layer of the classifier as the exported graph sees it."""

    layer: FoldInto  # the trained module (its weight is a parameter of the classifier)
    bn: _BatchNorm | None  # the BatchNorm folded into it at export
    name: str  # its NIR node name (conv3, fc1, ...)
    param: str  # the classifier's parameter name of ``layer.weight`` (for :func:`torch.func.functional_call`)
    bias_param: str | None  # the parameter holding its folded bias's offset: the BatchNorm's beta, or its bias
    in_shape: tuple[int, ...]  # its input's shape (one step, no batch)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The BatchNorm-folded weight and bias (live: gradients reach weight, gamma and beta)."""
        if self.bn is None:
            return self.layer.weight, self.layer.bias
        return fold_tensors(self.layer.weight, self.layer.bias, self.bn)

    def core_taps(self) -> torch.Tensor | None:
        """The kernel taps every output position sees (None: all, a linear layer)."""
        m = self.layer
        if isinstance(m, nn.Conv2d):
            ones = torch.ones(1, *self.in_shape, dtype=torch.float64)
            cols = F.unfold(ones, m.kernel_size, m.dilation, m.padding, m.stride)  # type: ignore[arg-type]  # str padding: refused by the plan
            return (cols[0] > 0).all(-1).reshape(m.weight.shape[1:])
        if isinstance(m, nn.Conv1d):
            ones = torch.ones(1, self.in_shape[0], 1, self.in_shape[1], dtype=torch.float64)
            pad = (0, m.padding[0])
            cols = F.unfold(ones, (1, m.kernel_size[0]), (1, m.dilation[0]), pad, (1, m.stride[0]))  # type: ignore[arg-type]
            return (cols[0] > 0).all(-1).reshape(m.weight.shape[1:])
        return None


def weighted_layers(model: SpikingClassifier, input_shape: list[int], dt: float) -> list[Weighted]:
    """The classifier's conv / linear layers in export order, each with its BatchNorm, node name, parameter
    name and input shape; refuses what has no grid (average pooling scales the weights it composes with)."""
    modules = model.deploy_modules()
    try:
        layers, _ = flatten_graph(modules)
        planned, _ = plan_graph(modules, input_shape, dt)
    except ExportError as err:
        raise UserError(f"--qat loihi: {err}") from None
    if any(isinstance(lay.module, nn.AvgPool2d) for lay in layers):
        raise UserError("--qat loihi supports sum pooling (SumPool2d) only: average pooling scales the composed "
                        "weights")
    params = {id(p): n for n, p in model.named_parameters()}
    shapes = {"input": tuple(input_shape), **{p.name: p.shape for p in planned}}
    kept = iter(planned)  # fold_graph keeps every layer but the BatchNorms, in order
    out: list[Weighted] = []
    for k, lay in enumerate(layers):
        if isinstance(lay.module, _BN):
            continue
        node = next(kept)
        if isinstance(lay.module, _WEIGHTED):
            bn = next((b.module for b in layers[k + 1:] if isinstance(b.module, _BN) and b.inputs == (k,)), None)
            assert bn is None or isinstance(bn, _BatchNorm)
            owner = bn if bn is not None else lay.module
            bias = params.get(id(owner.bias)) if getattr(owner, "bias", None) is not None else None
            out.append(Weighted(lay.module, bn, node.name, params[id(lay.module.weight)], bias,
                                shapes[node.inputs[0]]))
    return out


def feeding_weights(graph: nir.NIRGraph, weighted: set[str]) -> dict[str, str]:
    """Per neuron node (and ``"output"``), the one weight node its connections pass through.

    Only reshapes (Flatten) may lie between the weight node and the neuron: a pooling there sums the
    weights of several positions, and the plan's grid would be on those sums, not on the layer's weights.
    """
    from neuromoco.deploy.graph import structure
    from neuromoco.deploy.nodes import NEURON_TYPES

    st = structure(graph)
    neurons = {n for n, node in graph.nodes.items() if isinstance(node, NEURON_TYPES)}
    out: dict[str, str] = {}
    for target in [*sorted(neurons), st.output]:
        found: set[str] = set()
        stack = [src for src, _ in st.preds[target]]
        while stack:
            n = stack.pop()
            if n in weighted:
                found.add(n)
            elif n in neurons or n == st.input:
                continue  # an unweighted path (an identity) carries no grid
            elif isinstance(graph.nodes[n], nir.Flatten):
                stack += [src for src, _ in st.preds[n]]
            else:
                raise UserError(f"--qat loihi: {type(graph.nodes[n]).__name__} node {n} lies between a weight "
                                f"layer and {target}: it composes several weights into one, off the grid. Put "
                                "pooling after the neuron layer (as cnn3-34 and sew-resnet8-34 do)")
        if len(found) > 1:
            raise UserError(f"--qat loihi: {target} sums the outputs of {', '.join(sorted(found))}: one grid per "
                            "neuron layer needs one weight layer feeding it")
        if found:
            out[target] = found.pop()
    return out
