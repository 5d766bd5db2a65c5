"""A connection that stays a convolution: one shared kernel instead of a synapse per (target, source) pair.

Loihi 2 shares convolution weights and Lava has a ``Conv`` process, so a plan keeps every connection that is
a 2-d convolution of its source as a :class:`Kernel`: its weights ``[Co, Ci, kh, kw]``, stride, padding and
the shapes it maps. The pooling before or after a conv composes into it exactly as a larger strided kernel
(:func:`compose`), so ``LIF -> sumpool -> conv -> LIF`` and ``conv -> sumpool -> LIF`` are one kernel each.
A plan file then grows with the parameters, not with neurons times fan-in.

The convolution is PyTorch's ``conv2d`` (a cross-correlation) on the source image ``[Ci, H, W]`` (NIR's
row-major order) after two steps that make every composition expressible: the image is cropped to
``crop = (He, We)`` (rows and columns that no window of the original chain reads) and zero-padded by
``pad = (top, bottom, left, right)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Kernel:
    """``y = conv2d(pad(x[:, :He, :We]), weight, stride)`` from ``in_shape`` to ``out_shape`` (both ``[C, H, W]``)."""

    weight: np.ndarray  # [Co, Ci, kh, kw] float64: real weights, or integer mantissas in fixed point
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, bottom, left, right (>= 0), after the crop
    in_shape: Shape3
    out_shape: Shape3
    crop: tuple[int, int] | None = None  # (He, We): the source rows and columns read (None: all)

    def __post_init__(self) -> None:
        co, ci, kh, kw = self.weight.shape
        he, we = self.extent
        sh, sw = self.stride
        t, b, left, right = self.pad
        expect = (co, (he + t + b - kh) // sh + 1, (we + left + right - kw) // sw + 1)
        if ci != self.in_shape[0] or tuple(self.out_shape) != expect or min(self.pad) < 0:
            raise ValueError(f"inconsistent kernel: weight {list(self.weight.shape)}, stride {self.stride}, pad "
                             f"{self.pad}, crop {self.crop} maps {list(self.in_shape)} to {list(expect)}, not "
                             f"{list(self.out_shape)}")

    # ------------------------------------------------------------------------------------------- sizes
    @property
    def extent(self) -> tuple[int, int]:
        return self.crop if self.crop is not None else (self.in_shape[1], self.in_shape[2])

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_target, n_source)``, as the matrix it stands for."""
        return int(np.prod(self.out_shape)), int(np.prod(self.in_shape))

    @property
    def positions(self) -> int:
        """Output positions per channel (neurons that share one channel's kernel)."""
        return int(self.out_shape[1] * self.out_shape[2])

    @property
    def parameters(self) -> int:
        """Non-zero kernel weights: what a chip that shares them stores."""
        return int(np.count_nonzero(self.weight))

    @property
    def synapses(self) -> int:
        """Non-zero (target, source) pairs: the matrix's ``nnz`` (what a chip without weight sharing stores)."""
        kh, kw = self.weight.shape[2:]
        rows = self._taps_inside(0, kh)
        cols = self._taps_inside(1, kw)
        nz = (self.weight != 0).sum(axis=(0, 1))  # [kh, kw]: non-zero (co, ci) pairs per tap
        return int((nz * rows[:, None] * cols[None, :]).sum())

    def _taps_inside(self, dim: int, k: int) -> np.ndarray:
        """Per kernel tap along ``dim``, how many output positions read a real (not padded) input there."""
        size, stride, before = self.extent[dim], self.stride[dim], self.pad[2 * dim]
        pos = np.arange(self.out_shape[1 + dim])[:, None] * stride - before + np.arange(k)[None, :]
        return ((pos >= 0) & (pos < size)).sum(axis=0)

    # ---------------------------------------------------------------------------------------- per row
    def per_neuron(self, per_channel: np.ndarray) -> np.ndarray:
        """A value per output channel as one per target neuron (row-major ``[Co, Ho, Wo]``)."""
        return np.repeat(np.asarray(per_channel, dtype=np.float64), self.positions)

    def per_channel(self, per_neuron: np.ndarray) -> np.ndarray | None:
        """One value per output channel when ``per_neuron`` is constant within each channel, else None."""
        v = np.broadcast_to(np.asarray(per_neuron, dtype=np.float64), (self.shape[0],)).reshape(self.out_shape[0], -1)
        return v[:, 0].copy() if np.array_equal(v, np.broadcast_to(v[:, :1], v.shape)) else None

    def read_taps(self) -> np.ndarray:
        """``[kh, kw]`` bool: the taps some output position reads inside the (cropped) input; the others only
        ever meet padding (a 3x3 kernel on a 1x1 map reads its centre alone)."""
        kh, kw = self.weight.shape[2:]
        return (self._taps_inside(0, kh) > 0)[:, None] & (self._taps_inside(1, kw) > 0)[None, :]

    def _read_weights(self) -> np.ndarray:
        return (self.weight * self.read_taps()).reshape(self.weight.shape[0], -1)

    def channel_abs_max(self) -> np.ndarray:
        """Per output channel, the largest ``|weight|`` any neuron of it uses."""
        return np.abs(self._read_weights()).max(axis=1, initial=0.0)

    def channel_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel, the sum of the positive weights and of the negative weights' magnitudes over the
        taps some neuron reads (an interior neuron's; a border neuron sees a subset): a bound for every row."""
        w = self._read_weights()
        return np.maximum(w, 0).sum(axis=1), -np.minimum(w, 0).sum(axis=1)

    def scaled(self, per_channel: np.ndarray) -> Kernel:
        """The kernel with output channel ``c`` multiplied by ``per_channel[c]``."""
        return self.with_weight(self.weight * np.asarray(per_channel, dtype=np.float64)[:, None, None, None])

    def with_weight(self, weight: np.ndarray) -> Kernel:
        return replace(self, weight=np.asarray(weight, dtype=np.float64))

    # ------------------------------------------------------------------------------------------- apply
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, n_source]`` (any float dtype) -> ``[N, n_target]`` in ``x``'s dtype."""
        img = x.reshape(x.shape[0], *self.in_shape)
        he, we = self.extent
        if (he, we) != tuple(self.in_shape[1:]):
            img = img[:, :, :he, :we]
        t, b, left, right = self.pad
        w = torch.as_tensor(self.weight, dtype=x.dtype, device=x.device)
        return F.conv2d(F.pad(img, (left, right, t, b)), w, stride=self.stride).reshape(x.shape[0], -1)

    def apply_numpy(self, x: np.ndarray) -> np.ndarray:
        """:meth:`apply` in NumPy, float64 (``[N, n_source] -> [N, n_target]``): windows of the padded image times
        the kernel through BLAS, no torch (Lava runs its processes in forked children, where a torch thread pool
        the parent started can hang; OpenBLAS is fork-safe). Exact on integers below ``2**53``."""
        img = np.asarray(x, dtype=np.float64).reshape(x.shape[0], *self.in_shape)
        he, we = self.extent
        t, b, left, right = self.pad
        img = np.pad(img[:, :, :he, :we], ((0, 0), (0, 0), (t, b), (left, right)))
        kh, kw = self.weight.shape[2:]
        sh, sw = self.stride
        ho, wo = self.out_shape[1:]
        win = np.lib.stride_tricks.sliding_window_view(img, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]
        y = np.tensordot(win, self.weight, axes=([1, 4, 5], [1, 2, 3]))  # [N, Ho, Wo, Co]
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)

    def matrix(self) -> sp.csr_matrix:
        """The kernel expanded into its ``[n_target, n_source]`` matrix (for small networks and checks)."""
        return expand_conv(self.weight, self.stride, self.pad[0], self.pad[2], self.extent, self.in_shape,
                           self.out_shape)


def expand_conv(weight: np.ndarray, stride: tuple[int, int], top: int, left: int, extent: tuple[int, int],
                in_shape: Shape3, out_shape: Shape3) -> sp.csr_matrix:
    """The matrix of a cross-correlation with ``weight`` that reads input rows ``o * stride - top + dy`` (and
    columns likewise) where they lie in ``[0, extent)``: one kernel entry at a time, its ``[Ho, Wo]`` synapses."""
    hi_n, wi_n = in_shape[1:]
    ho_n, wo_n = out_shape[1:]
    he, we = extent
    sh, sw = stride
    co, ci, dy, dx = np.nonzero(weight)
    vals = weight[co, ci, dy, dx]
    ho, wo = np.arange(ho_n), np.arange(wo_n)
    hi = ho[None, :] * sh - top + dy[:, None]
    wi = wo[None, :] * sw - left + dx[:, None]
    okh, okw = (hi >= 0) & (hi < he), (wi >= 0) & (wi < we)
    rows, cols, data = [], [], []
    for k in range(len(vals)):
        hs, ws = ho[okh[k]], wo[okw[k]]
        if not len(hs) or not len(ws):
            continue
        r = (co[k] * ho_n + hs[:, None]) * wo_n + ws[None, :]
        c = (ci[k] * hi_n + hi[k, okh[k]][:, None]) * wi_n + wi[k, okw[k]][None, :]
        rows.append(r.ravel())
        cols.append(c.ravel())
        data.append(np.full(r.size, vals[k]))
    shape = (int(np.prod(out_shape)), int(np.prod(in_shape)))
    if not rows:
        return sp.csr_matrix(shape)
    m = sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    m.sum_duplicates()
    return m


# ------------------------------------------------------------------------------------ construction

def conv_kernel(weight: np.ndarray, stride: tuple[int, int], padding: tuple[tuple[int, int], tuple[int, int]],
                groups: int, in_shape: Shape3, out_shape: Shape3) -> Kernel:
    """A NIR ``Conv2d`` (no dilation) as a kernel; ``groups`` are expanded into a full ``[Co, Ci, kh, kw]``."""
    w = np.asarray(weight, dtype=np.float64)
    if groups > 1:
        co, cig, kh, kw = w.shape
        full = np.zeros((co, cig * groups, kh, kw))
        per = co // groups
        for g in range(groups):
            full[g * per:(g + 1) * per, g * cig:(g + 1) * cig] = w[g * per:(g + 1) * per]
        w = full
    (t, b), (left, right) = padding
    return Kernel(w, (int(stride[0]), int(stride[1])), (int(t), int(b), int(left), int(right)),
                  tuple(in_shape), tuple(out_shape))  # type: ignore[arg-type]


def pool_kernel(size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], divisor: float,
                in_shape: Shape3, out_shape: Shape3) -> Kernel:
    """A sum (``divisor`` 1) or average pooling, padding counted, as a per-channel (diagonal) kernel."""
    c = in_shape[0]
    w = np.zeros((c, c, *size))
    w[np.arange(c), np.arange(c)] = 1.0 / divisor
    p = (int(padding[0]), int(padding[0]), int(padding[1]), int(padding[1]))
    return Kernel(w, (int(stride[0]), int(stride[1])), p, tuple(in_shape), tuple(out_shape))  # type: ignore[arg-type]


def identity_kernel(shape: Shape3) -> Kernel:
    """The identity on ``[C, H, W]`` as a 1x1 kernel (to add a unit's own output to a kernel's)."""
    c = shape[0]
    w = np.zeros((c, c, 1, 1))
    w[np.arange(c), np.arange(c)] = 1.0
    return Kernel(w, (1, 1), (0, 0, 0, 0), tuple(shape), tuple(shape))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- composition

def compose(a: Kernel, b: Kernel, check: bool = True) -> Kernel | None:
    """``b`` after ``a`` as one kernel, or None where that is not exact (``b`` reads ``a``'s zero padding at
    positions where ``a``'s own window would read real inputs, e.g. a 3x3 conv after a 3x3 conv).

    Per dimension: stride ``sa * sb``, size ``ka + (kb - 1) * sa``, leading padding ``ta + tb * sa``. The
    source is cropped to what ``a`` reads whole (a pooling that drops a last odd row), and the result is
    checked against the two kernels applied in turn on random inputs.
    """
    if tuple(a.out_shape) != tuple(b.in_shape) or b.crop is not None:
        return None
    wa, wb = a.weight, b.weight
    (kha, kwa), (khb, kwb) = wa.shape[2:], wb.shape[2:]
    sa, sb = a.stride, b.stride
    k = (kha + (khb - 1) * sa[0], kwa + (kwb - 1) * sa[1])
    w = np.zeros((wb.shape[0], wa.shape[1], *k))
    for by in range(khb):
        for bx in range(kwb):
            tap = wb[:, :, by, bx]
            if not tap.any():
                continue
            part = np.tensordot(tap, wa, axes=(1, 0))  # [Co, Ci, kha, kwa]
            w[:, :, by * sa[0]:by * sa[0] + kha, bx * sa[1]:bx * sa[1] + kwa] += part
    stride = (sa[0] * sb[0], sa[1] * sb[1])
    before = (a.pad[0] + b.pad[0] * sa[0], a.pad[2] + b.pad[2] * sa[1])
    extent = []
    after = []
    for dim in range(2):
        size = a.extent[dim]
        # a's windows read source rows up to its last window's end; what lies past it is never read
        covered = (a.out_shape[1 + dim] - 1) * sa[dim] - a.pad[2 * dim] + wa.shape[2 + dim]
        read = max(0, min(size, covered))
        n_out = b.out_shape[1 + dim]
        length = (n_out - 1) * stride[dim] + k[dim]
        extent.append(read)
        after.append(max(0, length - before[dim] - read))
    crop = None if tuple(extent) == tuple(a.in_shape[1:]) else (extent[0], extent[1])
    try:
        out = Kernel(w, stride, (before[0], after[0], before[1], after[1]), a.in_shape, b.out_shape, crop)
    except ValueError:
        return None
    if check and not _same_map(out, a, b):
        return None
    return out


def _same_map(ab: Kernel, a: Kernel, b: Kernel, samples: int = 2, seed: int = 0) -> bool:
    """Whether ``ab`` applies ``b`` after ``a`` (float64, random inputs; integers stay exact)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (samples, ab.shape[1]), generator=g).to(torch.float64)
    return bool(torch.allclose(ab.apply(x), b.apply(a.apply(x)), rtol=1e-9, atol=1e-9))


def add(a: Kernel, b: Kernel) -> Kernel | None:
    """``a + b`` as one kernel when both have the same geometry (stride, padding, crop, shapes, kernel size),
    else None (the caller adds their matrices)."""
    if (a.stride, a.pad, a.in_shape, a.out_shape, a.crop) == (b.stride, b.pad, b.in_shape, b.out_shape, b.crop) \
            and a.weight.shape == b.weight.shape:
        return a.with_weight(a.weight + b.weight)
    return None
