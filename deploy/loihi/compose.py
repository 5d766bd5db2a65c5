"""Every target's input as one linear map per (source unit, recurrent edges), plus its biases per delay.

Each stateless node's map (:mod:`.linear_ops`) is composed along the graph: convolutions and poolings stay
one shared :class:`~.kernel.Kernel` as long as their composition is exact (:func:`.kernel.compose`), so a
plan grows with the parameters; anything else (a flatten into a linear layer, a conv after a conv with no
neuron between) is a float64 sparse matrix, multiplied as before. Several edges into a node add; a recurrent
edge moves a term to the next delay (``r = 1``). The bias terms are carried separately, so that a constant
input can become a neuron's bias instead of a synapse.

A kernel that must become a matrix is expanded only while the matrix stays below :data:`MAX_EXPANDED`
synapses; beyond, the compiler refuses with a message before it allocates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, cast

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.graph import GraphStructure
from neuromoco.deploy.loihi import kernel as kn
from neuromoco.deploy.loihi.layout import Layout
from neuromoco.deploy.loihi.linear_ops import Flatten, LinearOp
from neuromoco.errors import UserError

#: the most synapses a connection may be expanded into (a kernel composed with a node that is no kernel):
#: 2**27 synapses hold about 1.6 GB as a float64 CSR matrix
MAX_EXPANDED = 1 << 27


@dataclass(frozen=True)
class Eye:
    """A unit's own output, unchanged (the start of every path)."""

    size: int
    shape: tuple[int, ...]

    def matrix(self) -> sp.csr_matrix:
        return sp.identity(self.size, format="csr")


Map: TypeAlias = sp.csr_matrix | kn.Kernel | Eye
Key = tuple[str, int]  # (source unit, recurrent edges on the path)
Maps = dict[str, dict[Key, sp.csr_matrix | kn.Kernel]]
Biases = dict[str, dict[int, np.ndarray]]


def compose(st: GraphStructure, lay: Layout, ops: dict[str, LinearOp], shapes: dict[str, tuple[int, ...]]
            ) -> tuple[Maps, Biases]:
    """``(maps, biases)`` per target: ``maps[t][(u, r)]`` (a ``[n_t, n_u]`` matrix or a kernel) and
    ``biases[t][r]`` ``[n_t]``. Zero maps and zero biases are left out; ``shapes``: every unit's output shape."""
    maps: dict[str, dict[Key, Map]] = {u: {(u, 0): Eye(int(np.prod(shapes[u])), tuple(shapes[u]))}
                                       for u in lay.units}
    bias: Biases = {u: {} for u in lay.units}

    def gather(node: str) -> tuple[dict[Key, Map], dict[int, np.ndarray]]:
        acc: dict[Key, Map] = {}
        bacc: dict[int, np.ndarray] = {}
        for src, rec in st.preds[node]:
            for (u, r), m in maps[src].items():
                key = (u, r + int(rec))
                acc[key] = m if key not in acc else add(acc[key], m, node)
            for r, b in bias[src].items():
                k = r + int(rec)
                bacc[k] = b if k not in bacc else bacc[k] + b
        return acc, bacc

    for name in lay.lin_order:
        op = ops[name]
        inp, binp = gather(name)
        maps[name] = {k: then(op, m) for k, m in inp.items()}
        bias[name] = {r: op.apply_flat(b) for r, b in binp.items()}
        own = op.bias()
        if own is not None:
            bias[name][0] = own if 0 not in bias[name] else bias[name][0] + own
    mats: Maps = {}
    biases: Biases = {}
    for t in lay.targets:
        acc, bacc = gather(t)
        mats[t] = {}
        for k, m in acc.items():
            final = _final(m)
            if final is not None:
                mats[t][k] = final
        biases[t] = {r: np.asarray(b, dtype=np.float64).reshape(-1) for r, b in bacc.items() if np.any(b)}
    return mats, biases


def then(op: LinearOp, m: Map) -> Map:
    """``op`` after the map ``m``: a kernel while both are (and compose exactly), else a matrix."""
    if isinstance(op, Flatten):  # row-major flattening: the same values in the same order
        return m
    k = op.kernel()
    if isinstance(m, Eye):
        return k if k is not None else op.matrix()
    if isinstance(m, kn.Kernel) and k is not None:
        both = kn.compose(m, k)
        if both is not None:
            return both
    return sp.csr_matrix(op.matrix() @ as_matrix(m, op.name))


def add(a: Map, b: Map, where: str) -> Map:
    """Two paths from one source into ``where``, summed: one kernel where the geometries agree."""
    ka = kn.identity_kernel(cast(kn.Shape3, a.shape)) if isinstance(a, Eye) and len(a.shape) == 3 else a
    kb = kn.identity_kernel(cast(kn.Shape3, b.shape)) if isinstance(b, Eye) and len(b.shape) == 3 else b
    if isinstance(ka, kn.Kernel) and isinstance(kb, kn.Kernel):
        both = kn.add(ka, kb)
        if both is not None:
            return both
    return sp.csr_matrix(as_matrix(a, where) + as_matrix(b, where))


def as_matrix(m: Map, where: str) -> sp.csr_matrix:
    """``m`` as a sparse matrix, refusing (before it allocates) a kernel whose expansion would not fit."""
    if isinstance(m, kn.Kernel):
        if m.synapses > MAX_EXPANDED:
            raise UserError(
                f"node {where!r}: a convolution reaching it cannot stay a shared kernel here (it is followed by "
                f"an operator that is no convolution or pooling of it, or the composition is not exact), and "
                f"expanding it would take {m.synapses:,} synapses (~{m.synapses * 12 / 1e9:.1f} GB); put a "
                f"neuron layer between the two operators, or lower the input resolution")
        return m.matrix()
    if isinstance(m, Eye):
        return m.matrix()
    return sp.csr_matrix(m)


def _final(m: Map) -> sp.csr_matrix | kn.Kernel | None:
    """A target's incoming map as the plan stores it (a kernel, or a sorted float64 matrix); None when zero."""
    if isinstance(m, kn.Kernel):  # taps that only ever meet padding are zero: the weights the chip stores
        m = m.with_weight(m.weight * m.read_taps())
        return m if np.any(m.weight) else None
    mat = sp.csr_matrix(m.matrix() if isinstance(m, Eye) else m, dtype=np.float64)
    mat.eliminate_zeros()
    if not mat.nnz:
        return None
    mat.sort_indices()
    return mat


def identity_source(mats: dict[Key, sp.csr_matrix | kn.Kernel]) -> str | None:
    """The source unit when a target receives exactly one unit's output unchanged, else ``None``."""
    if len(mats) != 1:
        return None
    (src, r), m = next(iter(mats.items()))
    if r != 0 or isinstance(m, kn.Kernel) or m.shape[0] != m.shape[1] or m.nnz != m.shape[0]:
        return None
    eye = sp.identity(m.shape[0], format="csr")
    return src if (abs(m - eye)).nnz == 0 else None
