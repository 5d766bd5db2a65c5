"""Geometry of conv, pool and Flatten nodes, and fitting parameters to a shape (batch excluded)."""

from __future__ import annotations

import nir
import numpy as np

from neuromoco.deploy.nodes import facts
from neuromoco.errors import UserError

Shape = tuple[int, ...]


def _ints(x: object, n: int, what: str, node: str) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(x)).astype(np.int64).ravel()
    if a.size == 1:
        a = np.repeat(a, n)
    if a.size != n:
        raise UserError(f"node {node!r}: {what} has {a.size} values, expected {n}")
    return tuple(int(v) for v in a)


def _padding_value(pad: object) -> str | np.ndarray:
    """A conv node's padding as a str ('same' / 'valid') or as an int array."""
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "USO":
        pad = pad.item() if pad.ndim == 0 else pad.ravel()[0]
    if isinstance(pad, bytes):
        pad = pad.decode("utf8")
    return pad if isinstance(pad, str) else np.atleast_1d(np.asarray(pad))


def conv_padding(node: nir.NIRNode, name: str, nd: int, kernel: tuple[int, ...],
                 dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Padding per spatial dim as ``(before, after)``; ``'same'`` pads like PyTorch (extra at the end)."""
    pad = _padding_value(node.padding)
    if isinstance(pad, str):
        if pad == "valid":
            return tuple((0, 0) for _ in range(nd))
        if pad == "same":
            out = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise UserError(f"node {name!r}: padding {pad!r} is not 'same', 'valid' or a number")
    return tuple((p, p) for p in _ints(pad, nd, "padding", name))


def conv_geometry(node: nir.NIRNode, name: str) -> dict:
    """Stride, dilation, padding ``((before, after), ...)``, groups and kernel of a Conv1d / Conv2d node."""
    nd = facts(node, name).kernel_dims
    w = np.asarray(node.weight)
    if w.ndim != nd + 2:
        raise UserError(f"node {name!r}: {type(node).__name__} weight has shape {w.shape}, "
                        f"expected {nd + 2} dimensions")
    kernel = tuple(int(k) for k in w.shape[2:])
    stride = _ints(node.stride, nd, "stride", name)
    dilation = _ints(node.dilation, nd, "dilation", name)
    groups = int(np.asarray(node.groups).item())
    padding = conv_padding(node, name, nd, kernel, dilation)
    pad = _padding_value(node.padding)
    if isinstance(pad, str) and pad == "same" and any(s != 1 for s in stride):
        raise UserError(f"node {name!r}: padding 'same' with stride {stride} is ambiguous; write the padding out")
    return {"nd": nd, "kernel": kernel, "stride": stride, "dilation": dilation, "groups": groups,
            "padding": padding}


def pool_geometry(node: nir.NIRNode, name: str) -> dict:
    """Kernel, stride (default: the kernel) and padding (default: none) of a SumPool2d / AvgPool2d node."""
    kernel = _ints(node.kernel_size, 2, "kernel_size", name)
    stride = _ints(node.stride, 2, "stride", name) if node.stride is not None else kernel
    padding = _ints(node.padding, 2, "padding", name) if node.padding is not None else (0, 0)
    return {"kernel": kernel, "stride": stride, "padding": padding}


def flatten_dims(node: nir.Flatten, ndim: int, name: str) -> tuple[int, int]:
    """``start_dim``, ``end_dim`` of a Flatten node as non-negative dims of an unbatched shape (NIR's rule)."""
    start, end = int(np.asarray(node.start_dim).item()), int(np.asarray(node.end_dim).item())
    s = start + ndim if start < 0 else start
    e = end + ndim if end < 0 else end
    if not (0 <= s < max(ndim, 1) and 0 <= e < max(ndim, 1) and s <= e):
        raise UserError(f"node {name!r}: Flatten(start_dim={start}, end_dim={end}) does not fit an input "
                        f"of {ndim} dimensions (NIR dims exclude the batch)")
    return s, e


def _declared_input(node: nir.NIRNode) -> tuple[int, ...] | None:
    t = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if t is None or np.size(t) == 0:
        return None
    return tuple(int(v) for v in np.ravel(t))


def flatten_span(node: nir.Flatten, shape: Shape, name: str) -> tuple[int, int]:
    """The dims ``(s, e)`` of the unbatched ``shape`` that a Flatten node merges (inclusive).

    NIR counts dims without the batch. Some writers (Sinabs) count them with the batch, as PyTorch does,
    and declare a batched ``input_type`` (one dim more than the data, often all zeros): such a node's
    dims are shifted by one. A declared ``input_type`` with real sizes must agree with the data.
    """
    declared = _declared_input(node)
    batched = declared is not None and len(declared) == len(shape) + 1
    if declared is not None:
        body = declared[1:] if batched else declared
        if len(body) != len(shape) or (any(body) and tuple(body) != tuple(shape)):
            raise _Mismatch("input_type", declared)
    if declared is None or not batched:  # (batched implies declared)
        return flatten_dims(node, len(shape), name)
    start, end = int(np.asarray(node.start_dim).item()), int(np.asarray(node.end_dim).item())
    nd = len(shape) + 1
    s = start + nd if start < 0 else start
    e = end + nd if end < 0 else end
    if not (1 <= s <= e < nd):
        raise UserError(f"node {name!r}: Flatten(start_dim={start}, end_dim={end}) over a batched input_type "
                        f"{list(declared)} must not merge the batch dimension")
    return s - 1, e - 1


def fit_param(value: object, shape: Shape) -> np.ndarray:
    """A neuron / Scale / Threshold parameter as float64 of exactly ``shape``.

    Scalars and size-1 arrays broadcast; leading size-1 dims beyond ``shape`` (a batch dim some writers
    keep) are dropped. Raises ValueError when it does not fit.
    """
    a = np.asarray(value, dtype=np.float64)
    while a.ndim > len(shape) and a.shape[0] == 1:
        a = a[0]
    if a.size == 1:
        a = a.reshape(())
    if np.broadcast_shapes(a.shape, tuple(shape)) != tuple(shape):
        raise ValueError(f"shape {a.shape} does not fit {tuple(shape)}")
    return np.broadcast_to(a, tuple(shape)).copy()


class _Mismatch(Exception):
    """An input that does not fit a node: ``what`` it disagrees with and the ``shape`` the node expects (a name
    such as ``"C"`` or ``"?"`` for a size it does not fix)."""

    def __init__(self, what: str, shape: tuple[int | str, ...]) -> None:
        self.what, self.shape = what, shape
