"""The project's own PyTorch/Norse -> NIR mapping (not Norse 1.1's ``to_nir``: why, in docs/semantics.md,
"The project's neuron").

Each primitive layer (after :func:`~neuromoco.train.export.bn_fold.fold_layers`) becomes one NIR node:

================================  ===========================================================
PyTorch module                    NIR node
================================  ===========================================================
``nn.Conv2d`` / ``nn.Conv1d``     ``Conv2d`` / ``Conv1d`` (bias zeros when the layer has none;
                                  ``input_shape`` always set; stride, padding, dilation, groups)
``nn.Linear``                     ``Affine`` (``Linear`` when it has no bias)
``nn.AvgPool2d``                  ``AvgPool2d`` (floor mode, padding counted in the divisor)
``SumPool2d`` (neuromoco.train.models)      ``SumPool2d``
``nn.Flatten(start, end)``        ``Flatten(start - 1, end - 1)``: NIR dims exclude the batch
``LIF`` (neuromoco.train.models.neurons)    ``LIF(tau = 1 / tau_mem_inv, r = 1, v_leak, v_threshold,
                                  v_reset)``, per-neuron arrays, dt in the model card
================================  ===========================================================

``tau`` is the membrane time constant in seconds (Norse 1.1 wrongly writes ``dt / tau_mem_inv``). It is
written as float64 ``1 / tau_mem_inv`` of the model's float32 ``tau_mem_inv``, so that the reference's
``float32(1 / tau)`` gives back exactly the value the model multiplies by. Weights are written in the
model's float32. Node names: ``input``, ``conv1``, ``lif1``, ``pool1``, ``flatten1``, ``fc1``, ...,
``output``, numbered per kind in model order.

Edges follow the model: a chain for a sequential model; for a residual one
(:class:`~neuromoco.train.models.layers.Residual`, SEW-ResNet's ADD) the body's last node and the
shortcut's last node (or the block's input, for an identity shortcut) each get an edge into the node after
the block. NIR adds up a node's incoming edges, so the ADD is these edges and no node of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import nir
import numpy as np
import torch
from norse.torch.functional.reset import reset_value
from torch import nn

from neuromoco.train.export.bn_fold import INPUT, ExportError, Layer, flatten_graph, fold_graph
from neuromoco.train.models.layers import SumPool2d
from neuromoco.train.models.neurons import LIF


def _pair(v: object) -> tuple[int, ...]:
    return tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v, v)))


def _where(layer: Layer) -> str:
    return f"{type(layer.module).__name__} (module {layer.path})"


def _conv_padding(m: nn.Conv1d | nn.Conv2d | nn.Conv3d, layer: Layer) -> object:
    nd = m.weight.dim() - 2
    if m.padding_mode != "zeros":
        raise ExportError(f"{_where(layer)}: padding_mode={m.padding_mode!r} has no NIR form (only 'zeros')")
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return np.zeros(nd, dtype=np.int64) if nd > 1 else 0
        total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if all(t % 2 == 0 for t in total):
            pads = np.array([t // 2 for t in total], dtype=np.int64)
            return pads if nd > 1 else int(pads[0])
        return "same"
    return np.array(m.padding, dtype=np.int64) if nd > 1 else int(m.padding[0])


def _lif_node(m: LIF, shape: tuple[int, ...], dt: float, layer: Layer) -> nir.LIF:
    c = m.config
    if not math.isclose(float(c.dt), float(dt), rel_tol=1e-12, abs_tol=0.0):
        raise ExportError(f"{_where(layer)}: the neuron steps with dt={c.dt} s but the export states dt={dt} s")
    p = m.p
    inv = np.float32(p.tau_mem_inv.detach().to("cpu", torch.float32).item())
    tau = 1.0 / np.float64(inv)
    if np.float32(1.0 / tau) != inv:  # cannot happen for normal floats; guard the bit-exact contract
        raise ExportError(f"{_where(layer)}: tau_mem_inv={inv!r} does not survive 1/(1/x) in float64")
    v_leak = float(np.float32(p.v_leak.detach().float().item()))
    if v_leak != 0.0:
        raise ExportError(f"{_where(layer)}: v_leak={v_leak} is not exportable exactly: Norse starts the "
                          "membrane at v_leak, NIR executors start it at 0")
    if getattr(p, "reset_method", reset_value) is not reset_value:
        raise ExportError(f"{_where(layer)}: reset method {p.reset_method.__name__} is not NIR's reset to v_reset")

    def full(x: float) -> np.ndarray:
        return np.full(shape, x, dtype=np.float64)

    def f32(t: torch.Tensor) -> float:
        return float(np.float32(t.detach().float().item()))

    return nir.LIF(tau=full(tau), r=full(1.0), v_leak=full(0.0), v_threshold=full(f32(p.v_th)),
                   v_reset=full(f32(p.v_reset)))


def _node_for(layer: Layer, shape: tuple[int, ...], dt: float) -> tuple[str, nir.NIRNode]:
    """(kind used for the node name, NIR node) for one primitive layer whose input has ``shape``."""
    m = layer.module

    def w(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu").numpy().copy()

    if isinstance(m, (nn.Conv2d, nn.Conv1d)):
        bias = w(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=w(m.weight).dtype)
        if isinstance(m, nn.Conv2d):
            return "conv", nir.Conv2d(input_shape=tuple(int(v) for v in shape[1:]), weight=w(m.weight),
                                      stride=np.array(m.stride, dtype=np.int64), padding=_conv_padding(m, layer),
                                      dilation=np.array(m.dilation, dtype=np.int64), groups=int(m.groups), bias=bias)
        return "conv", nir.Conv1d(input_shape=int(shape[1]), weight=w(m.weight), stride=int(m.stride[0]),
                                  padding=_conv_padding(m, layer), dilation=int(m.dilation[0]),
                                  groups=int(m.groups), bias=bias)
    if isinstance(m, nn.Linear):
        if m.bias is None:
            return "fc", nir.Linear(weight=w(m.weight))
        return "fc", nir.Affine(weight=w(m.weight), bias=w(m.bias))
    if isinstance(m, nn.AvgPool2d):
        k = _pair(m.kernel_size)
        s = _pair(m.stride if m.stride is not None else m.kernel_size)
        p = _pair(m.padding)
        if m.ceil_mode:
            raise ExportError(f"{_where(layer)}: ceil_mode=True has no NIR form")
        if m.divisor_override is not None:
            raise ExportError(f"{_where(layer)}: divisor_override has no NIR form (use SumPool2d for sums)")
        if any(p) and not m.count_include_pad:
            raise ExportError(f"{_where(layer)}: count_include_pad=False with padding has no NIR form")
        return "pool", nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
    if isinstance(m, SumPool2d):
        return "pool", nir.SumPool2d(kernel_size=np.array(_pair(m.kernel_size)), stride=np.array(_pair(m.stride)),
                                     padding=np.array(_pair(m.padding)))
    if isinstance(m, nn.Flatten):
        nd = len(shape) + 1  # torch dims include the batch
        start = m.start_dim + nd if m.start_dim < 0 else m.start_dim
        end = m.end_dim + nd if m.end_dim < 0 else m.end_dim
        if start < 1 or end < start:
            raise ExportError(f"{_where(layer)}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) would "
                              "merge the batch dimension")
        return "flatten", nir.Flatten(input_type={"input": np.array(shape, dtype=np.int64)},
                                      start_dim=start - 1, end_dim=end - 1)
    if isinstance(m, LIF):
        return "lif", _lif_node(m, shape, dt, layer)
    raise ExportError(f"no NIR mapping for {_where(layer)}; supported: Conv1d, Conv2d, Linear, BatchNorm1d/2d "
                      "(folded), AvgPool2d, SumPool2d, Flatten, LIF, Dropout, Identity, TimeDistributed")


def _step_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of a stateless layer for an unbatched input ``shape`` (runs it on zeros)."""
    if isinstance(layer.module, LIF):
        return shape
    p = next(layer.module.parameters(), None)
    x = torch.zeros((1, *shape), dtype=p.dtype if p is not None else torch.float32,
                    device=p.device if p is not None else "cpu")
    try:
        with torch.no_grad():
            y = layer.module(x)
    except Exception as err:  # noqa: BLE001 - any shape error of the layer becomes one clear line
        raise ExportError(f"{_where(layer)} does not accept an input of shape {list(shape)}: {err}") from None
    return tuple(int(v) for v in y.shape[1:])


@dataclass
class PlannedNode:
    """One NIR node of an exported model: its name, the folded layer, the node, its output shape (one step,
    no batch) and the nodes whose outputs add up into its input (``"input"`` for the graph's input)."""

    name: str
    layer: Layer
    node: nir.NIRNode
    shape: tuple[int, ...]
    inputs: tuple[str, ...]


def plan_graph(modules: list[nn.Module] | nn.Module, input_shape: list[int], dt: float
               ) -> tuple[list[PlannedNode], tuple[str, ...]]:
    """Every node of the exported graph in model order, and the nodes that feed the Output node."""
    layers, outputs = fold_graph(*flatten_graph(modules))
    if not layers:
        raise ExportError("the model has no layers to export")
    counts: dict[str, int] = {}
    names: dict[int, str] = {INPUT: "input"}
    shapes: dict[int, tuple[int, ...]] = {INPUT: tuple(int(v) for v in input_shape)}
    plan: list[PlannedNode] = []
    for k, layer in enumerate(layers):
        assert layer.inputs is not None  # fold_graph always sets them
        ins = {shapes[i] for i in layer.inputs}
        if len(ins) > 1:
            parts = ", ".join(f"{names[i]} {list(shapes[i])}" for i in layer.inputs)
            raise ExportError(f"{_where(layer)} adds up inputs of different shapes: {parts}")
        shape = ins.pop()
        kind, node = _node_for(layer, shape, dt)
        counts[kind] = counts.get(kind, 0) + 1
        names[k] = f"{kind}{counts[kind]}"
        shapes[k] = _step_shape(layer, shape)
        plan.append(PlannedNode(names[k], layer, node, shapes[k], tuple(names[i] for i in layer.inputs)))
    if len({shapes[i] for i in outputs}) > 1:
        raise ExportError("the model's output adds up tensors of different shapes")
    return plan, tuple(names[i] for i in outputs)


def plan_layers(modules: list[nn.Module] | nn.Module, input_shape: list[int], dt: float
                ) -> list[tuple[str, Layer, nir.NIRNode, tuple[int, ...]]]:
    """``(node name, folded layer, NIR node, output shape)`` per primitive layer, in model order."""
    return [(p.name, p.layer, p.node, p.shape) for p in plan_graph(modules, input_shape, dt)[0]]


def layer_names(modules: list[nn.Module] | nn.Module, input_shape: list[int], dt: float) -> list[str]:
    """NIR node names aligned with :func:`~neuromoco.train.export.bn_fold.fold_batchnorm` ``(modules)``."""
    return [name for name, *_ in plan_layers(modules, input_shape, dt)]


def to_nir(modules: list[nn.Module] | nn.Module, input_shape: list[int], dt: float) -> nir.NIRGraph:
    """The NIR graph of a deployable model (BatchNorm folded), checked by ``neuromoco.deploy.graph.check_graph``."""
    from neuromoco.deploy.graph import check_graph
    from neuromoco.errors import UserError

    plan, outputs = plan_graph(modules, input_shape, dt)
    shape = tuple(int(v) for v in input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(shape, dtype=np.int64))}
    edges: list[tuple[str, str]] = []
    for p in plan:
        nodes[p.name] = p.node
        edges += [(src, p.name) for src in p.inputs]
    out_shape = {p.name: p.shape for p in plan}.get(outputs[0], shape)
    nodes["output"] = nir.Output(output_type=np.array(out_shape, dtype=np.int64))
    edges += [(src, "output") for src in outputs]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    try:
        check_graph(graph, input_shape=list(shape))
    except UserError as err:  # a mapping bug, not a user error: say so
        raise ExportError(f"the exported graph fails its own check: {err}") from None
    return graph
