"""A connection matrix recovered as a 2-d convolution plus a sparse correction, for exact faster products.

A conv layer of a NIR graph (possibly composed with the sum / average pooling before it) compiles to an
integer matrix ``M`` ``[n_target, n_source]`` that is translation invariant except where a neuron's own
scale or the image border changes its row. :func:`find_conv` recovers a convolution ``C`` (kernel,
stride, padding, from the layers' ``[C, H, W]`` shapes and the columns of an interior row) and the
correction ``D = M - C`` (the rows where the convolution disagrees), so that ``M @ x == C x + D x`` on
integers. ``C`` is built as a sparse matrix from the recovered kernel exactly as
:func:`torch.nn.functional.conv2d` applies it (a zero-padded, strided cross-correlation), ``D`` is their
exact difference, and the pair is checked against ``M`` on random integer inputs before it is used.
None when there is no such structure (flat shapes, an all-to-all map, or a correction as large as the
matrix), and the caller keeps the sparse product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

MAX_CORRECTION = 0.25  # the correction may hold at most this fraction of the matrix's synapses
MAX_DENSITY = 4.0  # the convolution's multiply-adds (with its zeros) per synapse of the matrix


@dataclass
class ConvOp:
    """``M == C + D``: a strided, zero-padded convolution ``C`` and a sparse correction ``D``."""

    weight: np.ndarray  # [Co, Ci, kh, kw] integers (float64)
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, bottom, left, right (negative: crop)
    src_shape: tuple[int, int, int]
    tgt_shape: tuple[int, int, int]
    correction: sp.csr_matrix  # D, integers (float64)
    pool: int = 1  # > 1: the kernel is constant on pool x pool blocks: a sum pooling, then a stride-1 conv

    @property
    def kernel_abs(self) -> float:
        """Largest sum of ``|w|`` over one output's kernel: bounds every partial sum of the convolution."""
        return float(np.abs(self.weight).reshape(self.weight.shape[0], -1).sum(1).max(initial=0.0))

    @property
    def correction_abs(self) -> float:
        d = self.correction
        return float(np.asarray(abs(d).sum(axis=1)).max(initial=0.0)) if d.nnz else 0.0

    def matrix(self) -> sp.csr_matrix:
        """``C`` as a sparse matrix ``[n_target, n_source]``, the way ``conv2d`` applies the kernel."""
        return conv_matrix(self.weight, self.stride, self.pad, self.src_shape, self.tgt_shape)

    def apply(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``C @ x`` for ``x`` ``[N, Ci * Hi * Wi]`` (sample-major): ``[N, Co * Ho * Wo]`` in ``dtype``."""
        ci, hi, wi = self.src_shape
        co, ho, wo = self.tgt_shape
        w = self._weight(dtype, x.device)
        xi = x.reshape(x.shape[0], ci, hi, wi)
        if xi.dtype != dtype:
            xi = xi.to(dtype)
        t, b, left, right = self.pad
        if self.pool > 1:  # sum pooling is exact on integers (divisor 1), and 4x fewer multiply-adds after it
            if any(self.pad):
                xi = F.pad(xi, (left, right, t, b))
            xi = F.avg_pool2d(xi, self.pool, self.pool, divisor_override=1)
            y = F.conv2d(xi, w)
        elif min(t, b, left, right) >= 0 and b <= t and right <= left:
            y = F.conv2d(xi, w, stride=self.stride, padding=(t, left))[:, :, :ho, :wo]
        else:
            y = F.conv2d(F.pad(xi, (left, right, t, b)), w, stride=self.stride)
        return y.reshape(x.shape[0], co * ho * wo)

    def _weight(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        cache = self.__dict__.setdefault("_cache", {})
        key = (dtype, str(device))
        if key not in cache:
            w = self.weight[:, :, ::self.pool, ::self.pool] if self.pool > 1 else self.weight
            cache[key] = torch.from_numpy(np.ascontiguousarray(w)).to(dtype=dtype, device=device).contiguous()
        return cache[key]


def conv_matrix(weight: np.ndarray, stride: tuple[int, int], pad: tuple[int, int, int, int],
                src_shape: tuple[int, int, int], tgt_shape: tuple[int, int, int]) -> sp.csr_matrix:
    """The matrix of ``conv2d(pad(x), weight, stride)`` with inputs ``src_shape`` and outputs ``tgt_shape``."""
    ci_n, hi_n, wi_n = src_shape
    co_n, ho_n, wo_n = tgt_shape
    sh, sw = stride
    top, left = pad[0], pad[2]
    co, ci, dy, dx = np.nonzero(weight)
    vals = weight[co, ci, dy, dx]
    ho = np.arange(ho_n)
    wo = np.arange(wo_n)
    hi = ho[None, :] * sh - top + dy[:, None]  # [k, Ho]
    wi = wo[None, :] * sw - left + dx[:, None]  # [k, Wo]
    ok = (hi >= 0) & (hi < hi_n)
    okw = (wi >= 0) & (wi < wi_n)
    rows, cols, data = [], [], []
    for k in range(len(vals)):  # one kernel entry at a time: [Ho, Wo] synapses
        hs, ws = ho[ok[k]], wo[okw[k]]
        if not len(hs) or not len(ws):
            continue
        r = (co[k] * ho_n + hs[:, None]) * wo_n + ws[None, :]
        c = (ci[k] * hi_n + hi[k, ok[k]][:, None]) * wi_n + wi[k, okw[k]][None, :]
        rows.append(r.ravel())
        cols.append(c.ravel())
        data.append(np.full(r.size, vals[k]))
    n_t, n_s = co_n * ho_n * wo_n, ci_n * hi_n * wi_n
    if not rows:
        return sp.csr_matrix((n_t, n_s))
    m = sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n_t, n_s))
    m.sum_duplicates()
    return m


def _row_positions(m: sp.csr_matrix, row: int, src_shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    cols = m.indices[m.indptr[row]:m.indptr[row + 1]]
    _, hi_n, wi_n = src_shape
    return cols // (hi_n * wi_n), (cols // wi_n) % hi_n, cols % wi_n


def find_conv(m: sp.csr_matrix, src_shape: tuple[int, ...], tgt_shape: tuple[int, ...]) -> ConvOp | None:
    """``m`` (integers, canonical CSR) as a convolution plus a small correction, or None."""
    if len(src_shape) != 3 or len(tgt_shape) != 3 or m.nnz == 0:
        return None
    src = tuple(int(s) for s in src_shape)
    tgt = tuple(int(s) for s in tgt_shape)
    ci_n, hi_n, wi_n = src
    co_n, ho_n, wo_n = tgt
    if m.shape != (co_n * ho_n * wo_n, ci_n * hi_n * wi_n):
        return None
    m = sp.csr_matrix(m)
    m.sort_indices()
    hc, wc = ho_n // 2, wo_n // 2

    def extent(h: int, w: int) -> tuple[int, int, int, int] | None:
        """Smallest and largest source row and column over every output channel's row at ``(h, w)``."""
        hs, ws = [], []
        for co in range(co_n):
            _, hh, ww = _row_positions(m, (co * ho_n + h) * wo_n + w, src)
            hs.append(hh)
            ws.append(ww)
        hh, ww = np.concatenate(hs), np.concatenate(ws)
        return None if not len(hh) else (int(hh.min()), int(hh.max()), int(ww.min()), int(ww.max()))

    centre = extent(hc, wc)
    if centre is None:
        return None
    h0, h1, w0, w1 = centre
    sh = sw = 1
    if hc + 1 < ho_n:
        nxt = extent(hc + 1, wc)
        if nxt is None:
            return None
        sh = nxt[0] - h0
    if wc + 1 < wo_n:
        nxt = extent(hc, wc + 1)
        if nxt is None:
            return None
        sw = nxt[2] - w0
    if sh < 1 or sw < 1:
        return None
    kh, kw = h1 - h0 + 1, w1 - w0 + 1
    if co_n * ci_n * kh * kw * ho_n * wo_n > MAX_DENSITY * m.nnz + 1024:
        return None  # not a local map (or a kernel mostly zeros): the sparse product is cheaper
    top, left = hc * sh - h0, wc * sw - w0
    bottom = (ho_n - 1) * sh + kh - top - hi_n
    right = (wo_n - 1) * sw + kw - left - wi_n
    weight = np.zeros((co_n, ci_n, kh, kw))
    for co in range(co_n):
        r = (co * ho_n + hc) * wo_n + wc
        ci, hh, ww = _row_positions(m, r, src)
        weight[co, ci, hh - h0, ww - w0] = m.data[m.indptr[r]:m.indptr[r + 1]]
    op = ConvOp(weight, (sh, sw), (top, bottom, left, right), src, tgt, sp.csr_matrix(m.shape),
                pool=_pool_factor(weight, (sh, sw), kh, kw))
    d = sp.csr_matrix(m - op.matrix())
    d.eliminate_zeros()
    if d.nnz > MAX_CORRECTION * m.nnz:
        return None
    d.sort_indices()
    op.correction = d
    if not _check(op, m):
        return None
    return op


def _pool_factor(weight: np.ndarray, stride: tuple[int, int], kh: int, kw: int) -> int:
    """``s`` where the kernel (stride ``s`` both ways) is constant on its ``s x s`` blocks (a conv composed
    with the sum pooling before it, or an average pooling's uniform scale), else 1. The blocks line up with
    the padded input (every output's window starts at a multiple of ``s``), so the pooling is a plain one."""
    s = stride[0]
    if s < 2 or stride[1] != s or kh % s or kw % s:
        return 1
    co, ci = weight.shape[:2]
    blocks = weight.reshape(co, ci, kh // s, s, kw // s, s)
    return s if np.array_equal(blocks, np.broadcast_to(blocks[:, :, :, :1, :, :1], blocks.shape)) else 1


def _check(op: ConvOp, m: sp.csr_matrix, samples: int = 3, seed: int = 0) -> bool:
    """``conv2d`` plus the correction equal ``m`` on random small integers (float64: exact)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(m.shape[1], samples)).astype(np.float64)
    want = m @ x
    got = op.apply(torch.from_numpy(np.ascontiguousarray(x.T)), torch.float64).numpy().T + op.correction @ x
    return bool(np.array_equal(want, got))
