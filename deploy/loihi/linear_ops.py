"""A stateless NIR node as a linear map plus a separable bias: a shared :class:`~.kernel.Kernel` where the node
is a 2-d convolution or pooling, else a float64 sparse matrix ``[n_out, n_in]``.

Lava has no process for a chain such as ``conv -> avgpool -> LIF``; :mod:`.compose` composes these maps
along the graph into one Lava connection per source layer. Flattening is row-major, like NIR's.
One class per kind of node, found through :data:`LINEAR_OPS` (a ``{nir type: class}`` table): a node type
the table lacks is refused by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import cast

import nir
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from neuromoco.deploy.graph import conv_geometry, flatten_dims, pool_geometry
from neuromoco.deploy.loihi.kernel import Kernel, conv_kernel, pool_kernel
from neuromoco.deploy.loihi.probe import probe_matrix
from neuromoco.deploy.nodes import NODES, handler
from neuromoco.errors import UserError

WHERE = "the Lava target"


def _tensor(a: object) -> torch.Tensor:
    return torch.as_tensor(np.array(a, dtype=np.float64))


class LinearOp(ABC):
    """A stateless node, ``x [N, *in_shape] -> [N, *out_shape]``: its matrix and its bias (or ``None``)."""

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        self.node, self.name = node, name
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @abstractmethod
    def matrix(self) -> sp.csr_matrix:
        """The linear part, ``[n_out, n_in]``."""

    def bias(self) -> np.ndarray | None:
        """The constant part, flattened to ``[n_out]``; ``None`` when there is none."""
        return None

    def kernel(self) -> Kernel | None:
        """The linear part as a shared 2-d kernel, where it is one (convolutions, pooling); else None."""
        return None

    def apply_flat(self, v: np.ndarray) -> np.ndarray:
        """The linear part applied to one flattened input ``[n_in]`` (a bias carried along the graph)."""
        k = self.kernel()
        if k is not None:
            return k.apply(torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(1, -1)).numpy().reshape(-1)
        return np.asarray(self.matrix() @ v)


class Dense(LinearOp):
    """Affine or Linear, acting on the last dimension."""

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(node, name, in_shape, out_shape)
        self.w = _tensor(node.weight)
        self.b: torch.Tensor | None = None
        if "bias" in NODES[type(node)].params and np.any(np.asarray(node.bias)):
            self.b = _tensor(np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (self.w.shape[0],)))

    def matrix(self) -> sp.csr_matrix:
        lead = int(np.prod(self.in_shape[:-1]))
        return sp.csr_matrix(sp.kron(sp.identity(lead), sp.csr_matrix(self.w.numpy())))

    def bias(self) -> np.ndarray | None:
        return None if self.b is None else np.broadcast_to(self.b.numpy(), self.out_shape).reshape(-1).copy()


class Conv(LinearOp):
    """Conv1d or Conv2d (padding, stride, dilation, groups as :func:`conv_geometry` reads them)."""

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(node, name, in_shape, out_shape)
        self.g = conv_geometry(node, name)
        self.w = _tensor(node.weight)
        self.b: torch.Tensor | None = None
        if np.any(np.asarray(node.bias)):
            b = np.broadcast_to(np.asarray(node.bias, dtype=np.float64), (self.w.shape[0],))
            self.b = _tensor(b).reshape(-1, *([1] * self.g["nd"]))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        g = self.g
        conv = F.conv1d if g["nd"] == 1 else F.conv2d
        flat = tuple(v for p in reversed(g["padding"]) for v in p)
        return conv(F.pad(x, flat), self.w, None, g["stride"], 0, g["dilation"], g["groups"])

    def matrix(self) -> sp.csr_matrix:
        g = self.g
        span = [d * (k - 1) + 1 for k, d in zip(g["kernel"], g["dilation"], strict=True)]
        return probe_matrix(self.apply, self.in_shape, self.out_shape, span, g["stride"],
                            [p0 for p0, _ in g["padding"]], self.name)

    def bias(self) -> np.ndarray | None:
        return None if self.b is None else self.b.expand(*self.out_shape).reshape(-1).numpy().copy()

    def kernel(self) -> Kernel | None:
        g = self.g
        if g["nd"] != 2 or any(d != 1 for d in g["dilation"]):
            return None
        in3, out3 = cast("tuple[int, int, int]", self.in_shape), cast("tuple[int, int, int]", self.out_shape)  # 2-d
        return conv_kernel(self.w.numpy(), g["stride"], g["padding"], g["groups"], in3, out3)


class AvgPool(LinearOp):
    """AvgPool2d (``divisor = None``: the window's size) or, as :class:`SumPool`, SumPool2d; padding counted."""

    divisor: int | None = None

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(node, name, in_shape, out_shape)
        self.g = pool_geometry(node, name)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        g = self.g
        return F.avg_pool2d(x, g["kernel"], g["stride"], g["padding"], count_include_pad=True,
                            divisor_override=self.divisor)

    def matrix(self) -> sp.csr_matrix:
        g = self.g
        return probe_matrix(self.apply, self.in_shape, self.out_shape, list(g["kernel"]), g["stride"],
                            list(g["padding"]), self.name)

    def kernel(self) -> Kernel | None:
        g = self.g
        divisor = float(self.divisor if self.divisor is not None else np.prod(g["kernel"]))
        in3, out3 = cast("tuple[int, int, int]", self.in_shape), cast("tuple[int, int, int]", self.out_shape)  # 2-d
        return pool_kernel(g["kernel"], g["stride"], g["padding"], divisor, in3, out3)


class SumPool(AvgPool):
    divisor = 1


class Flatten(LinearOp):
    """A reshape: the identity on the row-major flattened values."""

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(node, name, in_shape, out_shape)
        flatten_dims(node, len(self.in_shape), name)  # refuses dimensions the input does not have

    def matrix(self) -> sp.csr_matrix:
        return sp.identity(self.n_in, format="csr")

    def apply_flat(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v, dtype=np.float64)


class Scale(LinearOp):
    """An element-wise factor: a diagonal matrix."""

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(node, name, in_shape, out_shape)
        self.s = _tensor(np.broadcast_to(np.asarray(node.scale, dtype=np.float64), self.in_shape))

    def matrix(self) -> sp.csr_matrix:
        return sp.diags(self.s.numpy().reshape(-1)).tocsr()


class ByReference(LinearOp):
    """Any other connection node kind, read off the reference executor's rule for it: the bias is the rule's
    output on a zero input, the matrix its output on unit inputs minus the bias (exact for the affine maps that
    connection nodes are). A node kind with its own class above gets kernels and needs no probing."""

    #: ``n_in * n_out`` above which probing by unit inputs is refused (the node kind then needs its own class)
    MAX_DENSE = 1 << 28

    def __init__(self, node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__(node, name, in_shape, out_shape)
        from neuromoco.deploy.reference_executor import stateless_kernel

        self.rule = stateless_kernel(node, name, self.in_shape, self.out_shape)
        self.n_out = int(np.prod(self.out_shape))
        with torch.no_grad():
            self.b = self.rule(torch.zeros((1, *self.in_shape), dtype=torch.float64)).reshape(-1).numpy()

    def bias(self) -> np.ndarray | None:
        return self.b.copy() if bool(np.any(self.b)) else None

    def matrix(self) -> sp.csr_matrix:
        if self.n_in * self.n_out > self.MAX_DENSE:
            raise UserError(f"node {self.name!r} ({type(self.node).__name__}): {self.n_in} inputs x {self.n_out} "
                            f"outputs are too many to read off the reference rule for {WHERE}; the node kind needs "
                            "its own LinearOp in deploy/loihi/linear_ops.py")
        chunk = max(1, (1 << 22) // max(1, self.n_out))
        blocks = []
        with torch.no_grad():
            for c0 in range(0, self.n_in, chunk):
                eye = torch.eye(self.n_in, dtype=torch.float64)[c0:c0 + chunk]
                y = self.rule(eye.reshape(-1, *self.in_shape)).reshape(eye.shape[0], -1).numpy() - self.b
                blocks.append(sp.csr_matrix(y.T))
        return sp.hstack(blocks, format="csr")


LINEAR_OPS: dict[type, type[LinearOp]] = {
    nir.Affine: Dense, nir.Linear: Dense, nir.Conv1d: Conv, nir.Conv2d: Conv,
    nir.SumPool2d: SumPool, nir.AvgPool2d: AvgPool, nir.Flatten: Flatten, nir.Scale: Scale,
}


def linear_op(node: nir.NIRNode, name: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> LinearOp:
    """The :class:`LinearOp` of ``node`` (:class:`ByReference` for a connection node kind without its own); a
    :class:`~neuromoco.errors.UserError` naming it if Lava cannot map it."""
    if type(node) not in LINEAR_OPS and type(node) in NODES and NODES[type(node)].connection:
        return ByReference(node, name, in_shape, out_shape)
    return handler(LINEAR_OPS, node, name, WHERE)(node, name, in_shape, out_shape)
