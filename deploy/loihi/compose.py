"""Every target's input as one sparse map per (source unit, recurrent edges), plus its biases per delay.

Each stateless node's matrix (:mod:`.linear_ops`) is multiplied along the graph in float64; several
edges into a node add; a recurrent edge moves a term to the next delay (``r = 1``). The bias terms are
carried separately, so that a constant input can become a neuron's bias instead of a synapse.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.graph import GraphStructure
from neuromoco.deploy.loihi.layout import Layout
from neuromoco.deploy.loihi.linear_ops import LinearOp

Key = tuple[str, int]  # (source unit, recurrent edges on the path)
Maps = dict[str, dict[Key, sp.csr_matrix]]
Biases = dict[str, dict[int, np.ndarray]]


def compose(st: GraphStructure, lay: Layout, ops: dict[str, LinearOp], size: dict[str, int]
            ) -> tuple[Maps, Biases]:
    """``(maps, biases)`` per target: ``maps[t][(u, r)]`` ``[n_t, n_u]`` and ``biases[t][r]`` ``[n_t]``.

    Zero maps and zero biases are left out; ``size`` is every unit's number of values.
    """
    maps: Maps = {u: {(u, 0): sp.identity(size[u], format="csr")} for u in lay.units}
    bias: Biases = {u: {} for u in lay.units}

    def gather(node: str) -> tuple[dict[Key, sp.csr_matrix], dict[int, np.ndarray]]:
        acc: dict[Key, sp.csr_matrix] = {}
        bacc: dict[int, np.ndarray] = {}
        for src, rec in st.preds[node]:
            for (u, r), m in maps[src].items():
                key = (u, r + int(rec))
                acc[key] = m if key not in acc else acc[key] + m
            for r, b in bias[src].items():
                k = r + int(rec)
                bacc[k] = b if k not in bacc else bacc[k] + b
        return acc, bacc

    for name in lay.lin_order:
        op = ops[name]
        a = op.matrix()
        inp, binp = gather(name)
        maps[name] = {k: sp.csr_matrix(a @ m) for k, m in inp.items()}
        bias[name] = {r: a @ b for r, b in binp.items()}
        own = op.bias()
        if own is not None:
            bias[name][0] = own if 0 not in bias[name] else bias[name][0] + own
    mats: Maps = {}
    biases: Biases = {}
    for t in lay.targets:
        acc, bacc = gather(t)
        mats[t] = {}
        for k, m in acc.items():
            m = sp.csr_matrix(m, dtype=np.float64)
            m.eliminate_zeros()
            if m.nnz:
                m.sort_indices()
                mats[t][k] = m
        biases[t] = {r: np.asarray(b, dtype=np.float64).reshape(-1) for r, b in bacc.items() if np.any(b)}
    return mats, biases


def identity_source(mats: dict[Key, sp.csr_matrix]) -> str | None:
    """The source unit when a target receives exactly one unit's output unchanged, else ``None``."""
    if len(mats) != 1:
        return None
    (src, r), m = next(iter(mats.items()))
    if r != 0 or m.shape[0] != m.shape[1] or m.nnz != m.shape[0]:
        return None
    eye = sp.identity(m.shape[0], format="csr")
    return src if (abs(m - eye)).nnz == 0 else None
