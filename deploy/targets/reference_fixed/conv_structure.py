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

The correction is a few rows at the image border (where a neuron's own scale differs). Where it is a
function of the tensor ``conv2d`` reads (after the padding and sum pooling), :class:`BorderOp` applies it
as one gather of that tensor and one batched or dense (int8 where the values fit: :mod:`.int8`) matmul,
instead of a sparse product over the whole input. Spikes (bool) are padded and sum-pooled as ``uint8``
before the one conversion to floating point (4x fewer values to convert, exact: a ``pool x pool`` sum of
0/1 is small). On the CPU the convolution runs on chunks of rows (:data:`CHUNK_BYTES`), which oneDNN does
2-3x faster than one large call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from neuromoco.deploy.loihi.kernel import Kernel, expand_conv
from neuromoco.deploy.targets.reference_fixed import int8

MAX_CORRECTION = 0.25  # the correction may hold at most this fraction of the matrix's synapses
MAX_DENSITY = 4.0  # the convolution's multiply-adds (with its zeros) per synapse of the matrix
CHUNK_BYTES = 4 << 20  # output bytes per convolution call on the CPU by default (see ConvOp.apply)


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
    border: BorderOp | None = None  # D over the conv's input: windows or rows (None: a sparse product)
    crop: tuple[int, int] | None = None  # the source rows and columns read, before the padding (None: all)

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
        if self.crop is not None:  # a plan's kernel (non-negative padding after its crop)
            return Kernel(self.weight, self.stride, self.pad, self.src_shape, self.tgt_shape, self.crop).matrix()
        return conv_matrix(self.weight, self.stride, self.pad, self.src_shape, self.tgt_shape)

    def grid(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """What ``conv2d`` reads for ``x`` ``[N, Ci * Hi * Wi]``: ``[N, Ci, Hg, Wg]`` in ``dtype``, padded (and
        cropped) and sum-pooled when :attr:`pool` > 1; else ``x`` itself as an image (padding left to conv2d)."""
        ci, hi, wi = self.src_shape
        xi = x.reshape(x.shape[0], ci, hi, wi)
        if self.crop is not None and tuple(self.crop) != (hi, wi):
            xi = xi[:, :, :self.crop[0], :self.crop[1]]
        if self.pool == 1:
            return xi if xi.dtype == dtype else xi.to(dtype)
        t, b, left, right = self.pad
        if xi.dtype == torch.bool and self.pool * self.pool < 256:  # 0/1: summed in uint8 (exact), converted once
            return pad_sum_pool_uint8(xi.view(torch.uint8), self.pool, self.pad, dtype)
        if xi.dtype != dtype:
            xi = xi.to(dtype)
        if any(self.pad):
            xi = F.pad(xi, (left, right, t, b))
        # sum pooling is exact on integers (divisor 1), and 4x fewer multiply-adds after it
        return F.avg_pool2d(xi, self.pool, self.pool, divisor_override=1)

    def apply(self, x: torch.Tensor, dtype: torch.dtype, x_max: float | None = None,
              chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
        """``C @ x`` for ``x`` ``[N, Ci * Hi * Wi]`` (sample-major): ``[N, Co * Ho * Wo]`` in ``dtype``; plus
        ``D @ x`` when the correction runs as :attr:`border` (``M @ x`` then). On the CPU in chunks of rows
        whose output is about ``chunk_bytes`` (the convolution's reorders stay in cache: 2x faster on a
        large batch than one call). ``x_max`` (``|x| <= x_max``; None: unknown, or int8 not wanted) lets the
        border op use int8."""
        n_out = int(np.prod(self.tgt_shape))
        rows = max(1, chunk_bytes // (4 * n_out))
        if x.device.type != "cpu" or x.shape[0] <= 2 * rows:  # (no split, no copy, for up to twice that)
            return self._apply(x, dtype, x_max)
        rows = -(-x.shape[0] // -(-x.shape[0] // rows))  # equal chunks: 2 x 32, not 56 + 8
        y = torch.empty((x.shape[0], n_out), dtype=dtype, device=x.device)
        for i in range(0, x.shape[0], rows):
            y[i:i + rows] = self._apply(x[i:i + rows], dtype, x_max)
        return y

    def _apply(self, x: torch.Tensor, dtype: torch.dtype, x_max: float | None = None) -> torch.Tensor:
        co, ho, wo = self.tgt_shape
        w = self._weight(dtype, x.device)
        xg = self.grid(x, dtype)
        t, b, left, right = self.pad
        if self.pool > 1:
            y = F.conv2d(xg, w)
        elif min(t, b, left, right) >= 0 and b <= t and right <= left:
            y = F.conv2d(xg, w, stride=self.stride, padding=(t, left))[:, :, :ho, :wo]
        else:
            y = F.conv2d(F.pad(xg, (left, right, t, b)), w, stride=self.stride)
        y = y.reshape(x.shape[0], co * ho * wo)
        if self.border is not None:
            grid_max = None if x_max is None else x_max * self.pool * self.pool
            self.border.add_to(y, xg, grid_max)
        return y

    def _weight(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        cache = self.__dict__.setdefault("_cache", {})
        key = (dtype, str(device))
        if key not in cache:
            w = self.weight[:, :, ::self.pool, ::self.pool] if self.pool > 1 else self.weight
            cache[key] = torch.from_numpy(np.ascontiguousarray(w)).to(dtype=dtype, device=device).contiguous()
        return cache[key]


def kernel_conv(k: Kernel) -> ConvOp:
    """A plan's kernel (integer weights) as a :class:`ConvOp` with no correction: the same convolution, run
    as a sum pooling then a smaller kernel where it is constant on blocks (a pooling composed into it)."""
    kh, kw = k.weight.shape[2:]
    op = ConvOp(k.weight, k.stride, k.pad, k.in_shape, k.out_shape, sp.csr_matrix(k.shape),
                crop=k.crop)
    op.pool = _pool_factor(k.weight, k.stride, kh, kw)
    return op


def pad_sum_pool_uint8(x: torch.Tensor, pool: int, pad: tuple[int, int, int, int],
                       dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """``avg_pool2d(F.pad(x, pad), pool, divisor_override=1)`` in ``dtype`` for a ``uint8`` image ``[N, C, H, W]``
    (the caller keeps the sums below 256), without the padded copy: block ``k`` of a dimension sums the
    rows ``k * pool + j - pad_before`` that exist (``j < pool``), one strided slice per ``j``: ``pool`` adds
    of contiguous rows along H, then along W on the smaller result (for ``pool == 2`` on aligned pairs, the
    two bytes of each ``int16``: no strided loop)."""
    n, c, h, w = x.shape
    top, bottom, left, right = pad
    hg, wg = (h + top + bottom) // pool, (w + left + right) // pool
    rows = torch.zeros((n, c, hg, w), dtype=torch.uint8, device=x.device)
    for j in range(pool):
        k0, k1, i0 = _block_range(h, top, pool, j, hg)
        if k1 > k0:
            rows[:, :, k0:k1] += x[:, :, i0:i0 + (k1 - k0 - 1) * pool + 1:pool]
    if pool == 2 and left % 2 == 0 and w % 2 == 0 and left >= 0:
        pairs = rows.view(torch.int16)  # column pair (2m, 2m + 1) is block m + left / 2
        sums = (pairs & 0xFF).add_(pairs >> 8)
        k0 = left // 2
        k1 = min(wg, k0 + w // 2)
        out = torch.empty((n, c, hg, wg), dtype=dtype, device=x.device)
        out[:, :, :, :k0] = 0  # the padding's blocks only: no pass over the whole output
        out[:, :, :, max(k0, k1):] = 0
        if k1 > k0:
            out[:, :, :, k0:k1] = sums[:, :, :, :k1 - k0]
        return out
    acc = torch.zeros((n, c, hg, wg), dtype=torch.uint8, device=x.device)
    for j in range(pool):
        k0, k1, i0 = _block_range(w, left, pool, j, wg)
        if k1 > k0:
            acc[:, :, :, k0:k1] += rows[:, :, :, i0:i0 + (k1 - k0 - 1) * pool + 1:pool]
    return acc if acc.dtype == dtype else acc.to(dtype)


def _block_range(size: int, before: int, pool: int, j: int, blocks: int) -> tuple[int, int, int]:
    """The blocks ``[k0, k1)`` whose ``j``-th row ``k * pool + j - before`` lies in ``[0, size)``, and the first
    such row ``i0`` (the next ones follow every ``pool`` rows)."""
    k0 = max(0, -((j - before) // pool))  # ceil((before - j) / pool)
    k1 = min(blocks, (size - 1 - j + before) // pool + 1)
    return k0, k1, k0 * pool + j - before


@dataclass
class BorderOp:
    """The correction ``D`` (a few rows at the image border) over the grid ``conv2d`` reads (the flattened
    padded, pooled input: ``G`` values per sample), run one of two ways, whichever the cost model finds
    cheaper (both exact like the convolution: each partial sum adds at most a row of ``|D|``):

    * ``windows``: for output pixel ``p``, ``grid[:, idx[p]] @ weight[p]`` (``[K, Co]``) is ``D @ x`` at that
      pixel's rows for every channel: one gather and one ``bmm`` over the pixels;
    * ``rows``: ``grid[:, cols] @ dense`` (``[U, R]``), the grid values any corrected row reads times the
      corrected rows' weights: one gather and one GEMM, then the ``R`` rows added into the output.
    """

    mode: str  # "windows" or "rows"
    idx: np.ndarray  # windows: [P, K] grid positions (a short window's padding slots: 0, weight 0); rows: [U]
    weight: np.ndarray  # windows: [P, K, Co]; rows: [U, R] (integers, float64)
    pos: np.ndarray  # windows: [P] output pixels (h * Wo + w); rows: [R] output rows (flat, plan order)

    def add_to(self, y: torch.Tensor, grid: torch.Tensor, grid_max: float | None = None) -> None:
        """``y`` ``[N, Co * Ho * Wo]`` += ``D @ x`` from the conv's input ``grid`` ``[N, Ci, Hg, Wg]``, whose
        values are at most ``grid_max`` (None: unknown); ``rows`` as int8 matmuls where that allows."""
        cache = self.__dict__.setdefault("_cache", {})
        key = (grid.dtype, str(grid.device))
        if key not in cache:
            cache[key] = (torch.from_numpy(self.idx.reshape(-1)).to(grid.device),
                          torch.from_numpy(self.weight).to(dtype=grid.dtype, device=grid.device),
                          torch.from_numpy(self.pos).to(grid.device))
        idx, w, pos = cache[key]
        n = grid.shape[0]
        xs = grid.reshape(n, -1).index_select(1, idx)
        if self.mode == "rows":
            parts = self._int8(grid.device)
            if parts is not None and grid_max is not None and int8.fits(parts, grid_max):
                y.index_add_(1, pos, int8.matmul(int8.as_int8(xs), parts).to(y.dtype))
            else:
                y.index_add_(1, pos, xs @ w)
            return
        p, k, co = self.weight.shape
        out = torch.bmm(xs.view(n, p, k).transpose(0, 1), w)  # [P, N, Co]
        y.view(n, co, -1).index_add_(2, pos, out.permute(1, 2, 0))

    def _int8(self, device: torch.device) -> list[tuple[torch.Tensor, float, float]] | None:
        """The ``rows`` weights as int8 limbs on ``device`` (made once), or None (:func:`.int8.limbs`)."""
        if not int8.available(device):
            return None
        cache = self.__dict__.setdefault("_cache", {})
        key = ("int8", str(device))
        if key not in cache:
            parts = int8.limbs(self.weight)
            cache[key] = None if parts is None else int8.to_device(parts, device)
        return cache[key]


def _grid_of_sources(op: ConvOp) -> tuple[np.ndarray, np.ndarray, int]:
    """For every source neuron, its position in the grid ``op.grid`` gives and whether it is in it (a
    source row the pooling drops or a crop removes is not), and the grid's size per sample."""
    ci_n, hi_n, wi_n = op.src_shape
    src = np.arange(ci_n * hi_n * wi_n)
    ci, rem = np.divmod(src, hi_n * wi_n)
    hi, wi = np.divmod(rem, wi_n)
    if op.pool == 1:
        return src, np.ones(len(src), dtype=bool), len(src)
    t, b, left, right = op.pad
    hg_n, wg_n = (hi_n + t + b) // op.pool, (wi_n + left + right) // op.pool
    hg, wg = np.floor_divide(hi + t, op.pool), np.floor_divide(wi + left, op.pool)
    ok = (hi + t >= 0) & (wi + left >= 0) & (hg < hg_n) & (wg < wg_n)
    return (ci * hg_n + hg) * wg_n + wg, ok, ci_n * hg_n * wg_n


def grid_correction(op: ConvOp) -> sp.csr_matrix | None:
    """``op.correction`` over the grid ``op.grid`` gives (``[n_target, G]``: one weight per grid value), or
    None where it is not a function of the grid (a pooled block whose synapses differ, a synapse the
    pooling drops). Checked: expanded back to the source neurons each grid value sums, it is ``D`` exactly."""
    d = sp.csr_matrix(op.correction)
    g_of, inside, g_n = _grid_of_sources(op)
    coo = d.tocoo()
    rows, cols, vals = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    if not inside[cols].all():
        return None
    counts = sp.csr_matrix((np.ones(len(vals)), (rows, g_of[cols])), shape=(d.shape[0], g_n))
    dg = sp.csr_matrix((vals, (rows, g_of[cols])), shape=(d.shape[0], g_n))
    dg.sum_duplicates()
    counts.sum_duplicates()
    dg.data /= counts.data  # the block's (equal) weight; an unequal block fails the check
    dg.eliminate_zeros()
    members = sp.csr_matrix((np.ones(int(inside.sum())), (g_of[inside], np.flatnonzero(inside))),
                            shape=(g_n, d.shape[1]))
    diff = sp.csr_matrix(dg @ members - d)
    diff.eliminate_zeros()
    return dg if diff.nnz == 0 else None


def border_op(op: ConvOp, max_cost: float = 32.0) -> BorderOp | None:
    """``op.correction`` as a :class:`BorderOp` (the cheaper way by :func:`_windows_cost` and
    :func:`_rows_cost`), or None where :func:`grid_correction` is, or either way needs more than
    ``max_cost`` weights per synapse."""
    if op.correction.nnz == 0:
        return None
    dg = grid_correction(op)
    if dg is None:
        return None
    options = [o for o in (_windows(dg, op.tgt_shape[0], op.tgt_shape[1] * op.tgt_shape[2]), _rows(dg))
               if o.weight.size <= max_cost * op.correction.nnz + (1 << 16)]
    if not options:
        return None
    return min(options, key=lambda o: _windows_cost(o) if o.mode == "windows" else _rows_cost(o))


def _windows(dg: sp.csr_matrix, co_n: int, hw: int) -> BorderOp:
    """The grid correction as per-pixel windows (``mode="windows"``)."""
    coo = dg.tocoo()
    co, pix = np.divmod(coo.row.astype(np.int64), hw)
    g = coo.col.astype(np.int64)
    pos, p_of = np.unique(pix, return_inverse=True)
    keys = np.unique(np.stack([p_of, g], 1), axis=0)  # the grid values each pixel reads, sorted
    starts = np.searchsorted(keys[:, 0], np.arange(len(pos)))
    k_n = int(np.diff(np.append(starts, len(keys))).max())
    slot = np.arange(len(keys)) - starts[keys[:, 0]]
    idx = np.zeros((len(pos), k_n), dtype=np.int64)
    idx[keys[:, 0], slot] = keys[:, 1]
    g_n = dg.shape[1]
    k_of = slot[np.searchsorted(keys[:, 0] * g_n + keys[:, 1], p_of * g_n + g)]
    weight = np.zeros((len(pos), k_n, co_n))
    weight[p_of, k_of, co] = coo.data
    return BorderOp("windows", idx, weight, pos.astype(np.int64))


def _rows(dg: sp.csr_matrix) -> BorderOp:
    """The grid correction as a dense block of its rows and the grid values they read (``mode="rows"``)."""
    rows = np.flatnonzero(np.diff(dg.indptr))
    cols = np.unique(dg.indices)
    block = dg[rows][:, cols].toarray().T  # [U, R]
    return BorderOp("rows", cols.astype(np.int64), np.ascontiguousarray(block), rows.astype(np.int64))


def _windows_cost(o: BorderOp) -> float:
    """Rough CPU nanoseconds per sample (measured on one core): a skinny bmm (fast only with 16+ channels),
    the gather, the add."""
    p, k, co = o.weight.shape
    return p * k * co / (3.4 if co < 16 else 20.0 if co < 32 else 40.0) + p * k + p * co


def _rows_cost(o: BorderOp) -> float:
    """Rough CPU nanoseconds per sample: a GEMM (int8 where it can be), the gather, the rows added."""
    u, r = o.weight.shape
    if int8.available(torch.device("cpu")):  # (and the int8 conversions of the gathered values and sums)
        return u * r / 200.0 + 0.83 * u + 6.4 * r
    return u * r / 60.0 + 0.33 * u + 5.4 * r


def conv_matrix(weight: np.ndarray, stride: tuple[int, int], pad: tuple[int, int, int, int],
                src_shape: tuple[int, int, int], tgt_shape: tuple[int, int, int]) -> sp.csr_matrix:
    """The matrix of ``conv2d(pad(x), weight, stride)`` with inputs ``src_shape`` and outputs ``tgt_shape``
    (a negative padding crops)."""
    return expand_conv(weight, stride, pad[0], pad[2], (src_shape[1], src_shape[2]), src_shape, tgt_shape)

def _row_positions(m: sp.csr_matrix, row: int, src_shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    cols = m.indices[m.indptr[row]:m.indptr[row + 1]]
    _, hi_n, wi_n = src_shape
    return cols // (hi_n * wi_n), (cols // wi_n) % hi_n, cols % wi_n


def _interior_kernel(m: sp.csr_matrix, src: tuple[int, int, int], tgt: tuple[int, int, int]) \
        -> tuple[np.ndarray, tuple[int, int], tuple[int, int, int, int]] | None:
    """The kernel ``[Co, Ci, kh, kw]``, stride and padding (top, bottom, left, right) that the rows at the
    centre of the output image of ``m`` (canonical CSR) read, or None where they are not a local map."""
    ci_n, hi_n, wi_n = src
    co_n, ho_n, wo_n = tgt
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
    return weight, (sh, sw), (top, bottom, left, right)


def find_conv(m: sp.csr_matrix, src_shape: tuple[int, ...], tgt_shape: tuple[int, ...],
              border: bool = True) -> ConvOp | None:
    """``m`` (integers, canonical CSR) as a convolution plus a small correction, or None; ``border``: the
    correction as a :class:`BorderOp` where one applies (False: a sparse product, always)."""
    if len(src_shape) != 3 or len(tgt_shape) != 3 or m.nnz == 0:
        return None
    ci_n, hi_n, wi_n = (int(s) for s in src_shape)
    co_n, ho_n, wo_n = (int(s) for s in tgt_shape)
    src, tgt = (ci_n, hi_n, wi_n), (co_n, ho_n, wo_n)
    if m.shape != (co_n * ho_n * wo_n, ci_n * hi_n * wi_n):
        return None
    m = sp.csr_matrix(m)
    m.sort_indices()
    found = _interior_kernel(m, src, tgt)
    if found is None:
        return None
    weight, (sh, sw), (top, bottom, left, right) = found
    kh, kw = weight.shape[2:]
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
    op.border = border_op(op) if border else None
    if op.border is not None and not _check(op, m, seed=1):  # the windows on random inputs, too
        op.border = None
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
    got = op.apply(torch.from_numpy(np.ascontiguousarray(x.T)), torch.float64).numpy().T
    if op.border is None:
        got = got + op.correction @ x
    return bool(np.array_equal(want, got))
