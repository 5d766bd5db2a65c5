"""Synapse emitters: Conv1d/Conv2d -> ``Conv``; Affine -> ``Gemm`` (``MatMul`` + ``Add`` above rank 2);
Linear -> the same without bias. A zero bias is left out (adding 0 is exact)."""

from __future__ import annotations

import nir
import numpy as np

from neuromoco.deploy.targets.onnx.step import Emitter, StepGraph
from neuromoco.errors import UserError


def conv_out(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
             pads: tuple[int, ...], dilation: tuple[int, ...]) -> list[int]:
    """Output size of an ONNX ``Conv`` per spatial dimension (``pads``: all begins, then all ends)."""
    n = len(size)
    return [(size[d] + pads[d] + pads[d + n] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1
            for d in range(n)]


def _bias(node: nir.NIRNode, n_out: int) -> np.ndarray | None:
    """The float32 bias broadcast to ``n_out`` channels, or None when there is none or it is all zeros."""
    bias = getattr(node, "bias", None)
    if bias is None or not np.any(np.asarray(bias, dtype=np.float64)):
        return None
    return np.broadcast_to(np.asarray(bias, np.float32), (n_out,))


def conv(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    from neuromoco.deploy.graph import conv_geometry

    geo = conv_geometry(node, name)
    w = np.asarray(node.weight, dtype=np.float32)
    kernel, stride, dil, groups = geo["kernel"], geo["stride"], geo["dilation"], geo["groups"]
    pads = tuple(b for b, _ in geo["padding"]) + tuple(e for _, e in geo["padding"])
    ins = [x, g.const(f"{name}/weight", w)]
    b = _bias(node, w.shape[0])
    if b is not None:
        ins.append(g.const(f"{name}/bias", b))
    y = g.op("Conv", ins, name, kernel_shape=list(kernel), strides=list(stride), pads=list(pads),
             dilations=list(dil), group=groups)
    return y, [int(w.shape[0]), *conv_out(tuple(xs[1:]), kernel, stride, pads, dil)]


def dense(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    w = np.asarray(node.weight, dtype=np.float32)
    if w.ndim != 2 or xs[-1] != w.shape[1]:
        raise UserError(f"node {name!r}: weight {list(w.shape)} does not fit an input of shape {xs}")
    b = _bias(node, w.shape[0])
    if len(xs) == 1:
        ins = [x, g.const(f"{name}/weight", w)]
        if b is not None:
            ins.append(g.const(f"{name}/bias", b))
        y = g.op("Gemm", ins, name, transB=1)
    else:
        y = g.op("MatMul", [x, g.const(f"{name}/weight_t", w.T)], name)
        if b is not None:
            y = g.op("Add", [y, g.const(f"{name}/bias", b)], name)
    return y, [*xs[:-1], int(w.shape[0])]


EMITTERS: dict[type, Emitter] = {nir.Conv1d: conv, nir.Conv2d: conv, nir.Affine: dense, nir.Linear: dense}
