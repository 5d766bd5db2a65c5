"""A connection's product ``x @ W.T`` as exact kernels: int8 limbs, event-driven, dense or sparse CSR matrix.

Each takes a :class:`~.connection.FixedConn` (whose weight tensors it makes once and caches on it) and inputs
``x`` ``[N, n_src]`` (sample-major) holding integers, and gives the integers of ``x @ W.T`` in ``dtype``
(float32 or float64, exact while every partial sum stays below ``2**24`` or ``2**53``: the caller's
:meth:`~.connection.FixedConn.dtype`). The convolution kernels are :mod:`.conv_structure`'s.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

from neuromoco.deploy.targets.reference_fixed import int8

if TYPE_CHECKING:
    from neuromoco.deploy.targets.reference_fixed.connection import FixedConn


def matrix(c: FixedConn, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A dense matmul for a small dense map (:attr:`~.connection.FixedConn.dense`), else a sparse CSR one."""
    w = _weights(c, dtype)
    if c.dense:
        return x.to(dtype) @ w.t()
    return torch.sparse.mm(w, x.to(dtype).t()).t()


def int8_limbs(c: FixedConn) -> list[tuple[torch.Tensor, float, float]] | None:
    """The dense weights ``W.T`` as int8 limbs (:func:`.int8.limbs`), made once; None past 2047."""
    if "int8" not in c.cache:
        parts = int8.limbs(c.csr.toarray().T)
        c.cache["int8"] = None if parts is None else int8.to_device(parts, c.device)
    return c.cache["int8"]


def int8_matmul(c: FixedConn, x: torch.Tensor, x_max: float, dtype: torch.dtype) -> torch.Tensor | None:
    """int8 matmuls with int32 sums (exact integers, and fast on the CPU: :mod:`.int8`) for spikes or inputs
    ``|x| <= 127`` while no int32 sum can overflow; else None."""
    if not int8.available(c.device) or x_max > 127:
        return None
    parts = int8_limbs(c)
    if parts is None or not int8.fits(parts, x_max):
        return None
    return int8.matmul(int8.as_int8(x), parts).to(dtype)


def events(c: FixedConn, x: torch.Tensor, dtype: torch.dtype, cost: float, chunk: int) -> torch.Tensor | None:
    """From the nonzero inputs only (spikes): every event adds its source's synapses into its sample's row, in
    chunks of at most ``chunk`` synapses. None where dense work is cheaper (an event's synapse costing ``cost``
    multiply-adds of the matrix product; 0: never cheaper)."""
    n_tgt, N = c.csr.shape[0], x.shape[0]
    nnz = c.csr.nnz
    if cost and N > 1024:  # a strided sample of the rows first: no nonzero() over a dense input
        sample = x[::N // 256]
        per_row = float(torch.count_nonzero(sample)) / sample.shape[0]
        if per_row * nnz / x.shape[1] * cost > nnz:
            return None
    col, j = torch.nonzero(x, as_tuple=True)
    ptr, rows, vals = _csc(c, dtype)
    counts = ptr[j + 1] - ptr[j]
    total = int(counts.sum())
    if total * cost > nnz * N:
        return None
    y = torch.zeros(N * n_tgt, dtype=dtype, device=x.device)
    if total == 0:
        return y.view(N, n_tgt)
    xv = None if x.dtype == torch.bool else x[col, j].to(dtype)
    if 2 * int(torch.count_nonzero(counts)) < len(counts):  # most events reach no synapse (a correction)
        keep = torch.nonzero(counts, as_tuple=True)[0]
        j, col, counts = j[keep], col[keep], counts[keep]
        xv = None if xv is None else xv[keep]
    _add_events(y, (ptr[j], col * n_tgt, counts, xv), rows, vals, chunk)
    return y.view(N, n_tgt)


def _add_events(y: torch.Tensor, ev: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
                rows: torch.Tensor, vals: torch.Tensor, chunk: int) -> None:
    """``y[offset + row] += value * x`` for every synapse of every event (``first`` synapse, output ``offset``,
    synapse ``count``, input value or None for spikes), events ``[start, stop)`` of at most ``chunk`` synapses
    at a time."""
    first, offset, counts, xv = ev
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(first):
        base = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(torch.searchsorted(ends, base + chunk, right=True)))
        c = counts[start:stop]
        # entry k of the chunk is synapse first + k - (offset of its event in the chunk)
        pos = torch.repeat_interleave(first[start:stop] - (ends[start:stop] - c - base), c)
        pos += torch.arange(len(pos), device=y.device)
        target = rows[pos].add_(torch.repeat_interleave(offset[start:stop], c))
        w = vals[pos] if xv is None else vals[pos] * torch.repeat_interleave(xv[start:stop], c)
        y.index_add_(0, target, w)
        start = stop


def _weights(c: FixedConn, dtype: torch.dtype) -> torch.Tensor:
    """The weights as a dense or sparse CSR tensor of ``dtype`` on the device, made once."""
    if dtype not in c.cache:
        m = c.csr
        if c.dense:
            t = torch.from_numpy(m.toarray()).to(dtype)
        else:
            with warnings.catch_warnings():  # "sparse CSR support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                t = torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                            torch.from_numpy(m.indices.astype(np.int64)),
                                            torch.from_numpy(m.data).to(dtype), size=m.shape,
                                            check_invariants=False)
        c.cache[dtype] = t.to(c.device)
    return c.cache[dtype]


def _csc(c: FixedConn, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column pointers, row indices and values (the synapses of each source neuron), on the device."""
    key = ("csc", dtype)
    if key not in c.cache:
        m = c.csr.tocsc()
        m.sort_indices()
        c.cache[key] = tuple(t.to(c.device) for t in (
            torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data).to(dtype)))
    return c.cache[key]
