"""What the core map needs of a convolution kernel of the Lava plan, without expanding it into a matrix: synapses
per target neuron, non-zero weights per output channel, and the distinct source neurons a set of its target
neurons reads (padding excluded)."""

from __future__ import annotations

import numpy as np

from neuromoco.deploy.loihi.kernel import Kernel


def _inside(n_out: int, stride: int, before: int, k: int, size: int) -> np.ndarray:
    """``[n_out, k]``: 1 where output position ``i``'s tap ``j`` reads a real (not padded) input."""
    pos = np.arange(n_out)[:, None] * stride - before + np.arange(k)[None, :]
    return ((pos >= 0) & (pos < size)).astype(np.int64)


class ConvGeometry:
    """What the map needs of a kernel, without expanding it: synapses per target neuron, non-zero weights per
    output channel, and the distinct source neurons any set of its target neurons reads."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.nz = kernel.weight != 0  # [Co, Ci, kh, kw]
        co, _, kh, kw = self.nz.shape
        _, ho, wo = kernel.out_shape
        (he, we), (sh, sw), pad = kernel.extent, kernel.stride, kernel.pad
        ry, rx = _inside(ho, sh, pad[0], kh, he), _inside(wo, sw, pad[2], kw, we)
        # per target neuron (flat [Co, Ho, Wo]): sum over taps of (non-zero input channels x tap inside)
        self.synapses = np.einsum("cab,ya,xb->cyx", self.nz.sum(1), ry, rx, optimize=True).ravel()
        self.weights = self.nz.reshape(co, -1).sum(1)  # non-zero weights per output channel
        self.reads = self.nz.any(axis=(2, 3))  # [Co, Ci]: the input channels each output channel reads
        self.taps = self.nz.any(axis=0)  # [Ci, kh, kw]: the taps all output channels read together
        self._patterns: dict[tuple[int, int, int, int], np.ndarray] = {}  # tile_fan_in's summed-area tables

    def fan_in(self, neurons: np.ndarray) -> int:
        """Distinct source neurons that the target neurons ``neurons`` (flat ``[Co, Ho, Wo]`` indices) read:
        the windows of the positions holding each range of channels marked with that range's taps on the
        source image, then counted inside the (cropped) image (padding reads nothing). Blocks and tiles hold a
        channel range per position; other sets are marked channel by channel."""
        co, ho, wo = self.kernel.out_shape
        ch, pos = np.divmod(np.asarray(neurons), ho * wo)
        if np.any(pos[1:] < pos[:-1]):
            by = np.argsort(pos, kind="stable")
            ch, pos = ch[by], pos[by]
        first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
        lo, hi = np.minimum.reduceat(ch, first), np.maximum.reduceat(ch, first)
        y, x = np.divmod(pos[first], wo)
        y0, x0 = int(y.min()), int(x.min())
        seen = self._canvas(int(y.max()) - y0 + 1, int(x.max()) - x0 + 1)
        if np.array_equal(hi - lo + 1, np.diff(np.r_[first, len(pos)])):  # each position: a channel range
            for a, b in set(zip(lo.tolist(), hi.tolist(), strict=True)):
                at = (lo == a) & (hi == b)
                taps = self.taps if b - a + 1 == co else self.nz[a:b + 1].any(axis=0)
                self._mark(seen, taps, y[at] - y0, x[at] - x0)
        else:  # any channel sets: one group per distinct set
            for c in np.unique(ch):
                at = np.isin(pos[first], pos[ch == c])
                self._mark(seen, self.nz[c], y[at] - y0, x[at] - x0)
        r0, r1, c0, c1 = self._clip(seen.shape[1:], y0, x0)
        return int(seen[:, r0:r1, c0:c1].sum())

    def fan_in_bound(self, neurons: np.ndarray) -> int:
        """An upper bound of ``fan_in`` from the neurons' bounding box (input channels read x rows x columns
        spanned): cheap, to skip the count where it cannot exceed a limit."""
        _, ho, wo = self.kernel.out_shape
        y, x = np.divmod(np.asarray(neurons) % (ho * wo), wo)
        k, (kh, kw) = self.kernel, self.nz.shape[2:]
        rows = _span(np.array(int(y.max() - y.min()) + 1), k.stride[0], kh, k.extent[0])
        cols = _span(np.array(int(x.max() - x.min()) + 1), k.stride[1], kw, k.extent[1])
        return int(self.reads.any(axis=0).sum() * rows * cols)

    def tile_fan_in(self, c0: int, c1: int, y0: int, y1: int, x0: int, x1: int) -> int:
        """``fan_in`` of the tile ``channels [c0, c1) x rows [y0, y1) x columns [x0, x1)``: its window pattern is
        built once per channel group and tile size, and counted inside the image from a summed-area table."""
        key = (c0, c1, y1 - y0, x1 - x0)
        if key not in self._patterns:
            taps = self.taps if (c0, c1) == (0, self.nz.shape[0]) else self.nz[c0:c1].any(axis=0)
            py, px = np.divmod(np.arange((y1 - y0) * (x1 - x0)), x1 - x0)
            seen = self._canvas(y1 - y0, x1 - x0)
            self._mark(seen, taps, py, px)
            self._patterns[key] = np.pad(seen.sum(0).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        sat = self._patterns[key]
        r0, r1, q0, q1 = self._clip((sat.shape[0] - 1, sat.shape[1] - 1), y0, x0)
        return int(sat[r1, q1] - sat[r0, q1] - sat[r1, q0] + sat[r0, q0])

    def _canvas(self, n_rows: int, n_cols: int) -> np.ndarray:
        """``[Ci, rows, cols]`` of the source that ``n_rows x n_cols`` output positions' windows span."""
        (sh, sw), (kh, kw) = self.kernel.stride, self.nz.shape[2:]
        return np.zeros((self.nz.shape[1], (n_rows - 1) * sh + kh, (n_cols - 1) * sw + kw), dtype=bool)

    def _mark(self, seen: np.ndarray, taps: np.ndarray, py: np.ndarray, px: np.ndarray) -> None:
        """Mark on ``seen`` what the windows at output positions ``(py, px)`` (relative) read through ``taps``."""
        sh, sw = self.kernel.stride
        ci, dy, dx = np.nonzero(taps)
        _, n_rows, n_cols = seen.shape
        seen.reshape(-1)[((ci * n_rows + (py * sh)[:, None] + dy) * n_cols + (px * sw)[:, None] + dx).ravel()] = True

    def _clip(self, size: tuple[int, int], y0: int, x0: int) -> tuple[int, int, int, int]:
        """The rows and columns of a canvas starting at output position ``(y0, x0)`` that lie inside the image."""
        k = self.kernel
        oy, ox = y0 * k.stride[0] - k.pad[0], x0 * k.stride[1] - k.pad[2]
        (he, we), (n_rows, n_cols) = k.extent, size
        return (min(n_rows, max(0, -oy)), min(n_rows, max(0, he - oy)),
                min(n_cols, max(0, -ox)), min(n_cols, max(0, we - ox)))


def _span(n: np.ndarray, stride: int, k: int, size: int) -> np.ndarray:
    """Source rows (or columns) that ``n`` consecutive outputs' windows span at most, clipped to the image."""
    return np.minimum(size, (n - 1) * min(stride, k) + k)

