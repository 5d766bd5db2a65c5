"""Stateless per-element and reshape emitters: Scale -> ``Mul``; Threshold -> ``Greater`` + ``Cast`` (0/1);
Flatten -> ``Flatten``/``Reshape`` to the shape the graph checker inferred."""

from __future__ import annotations

import nir
import numpy as np
from onnx import TensorProto

from neuromoco.deploy.targets.onnx.step import Emitter, StepGraph


def scale(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    return g.op("Mul", [x, g.const(f"{name}/scale", node.scale)], name), xs


def threshold(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    s = g.op("Greater", [x, g.param(f"{name}/threshold", node.threshold)], name)
    y = g.op("Cast", [s], name, to=TensorProto.FLOAT)
    g.grid[y] = (1, 1)
    return y, xs


def flatten(g: StepGraph, name: str, node: nir.NIRNode, x: str, xs: list[int]) -> tuple[str, list[int]]:
    out = [int(v) for v in g.inferred[name]]  # NIR's convention: dims without the batch
    if len(out) == 1:
        y = g.op("Flatten", [x], name, axis=1)
    else:
        shape = g.const(f"{name}/shape", np.array([0, *out], dtype=np.int64), np.int64)
        y = g.op("Reshape", [x, shape], name)
    if x in g.grid:
        g.grid[y] = g.grid[x]
    return y, out


EMITTERS: dict[type, Emitter] = {nir.Scale: scale, nir.Threshold: threshold, nir.Flatten: flatten}
