"""The sparse matrix of a convolution or pooling op, from a few probes (a compressed Jacobian).

A conv or pooling node is linear, but building its matrix entry by entry from the geometry repeats
PyTorch's indexing rules (padding, stride, dilation, groups). Instead the op itself is run on a few
*probes* (Curtis-Powell-Reid colouring): one probe holds a 1 at every input position of one channel whose
coordinates are congruent to an offset modulo the receptive-field span, so no output sees two of them;
an output's value is then attributed to the one input position of its window that the probe set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

PROBE_ELEMENTS = 1 << 23  # float64 elements per probing chunk (64 MiB)

Probe = tuple[int, np.ndarray]  # (channel, offset per spatial dimension)
Entries = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, columns, values


def probe_matrix(apply: Callable[[torch.Tensor], torch.Tensor], in_shape: Sequence[int],
                 out_shape: Sequence[int], span: Sequence[int], stride: Sequence[int],
                 pad_before: Sequence[int], name: str) -> sp.csr_matrix:
    """``apply`` (``[N, C, *spatial] -> [N, C_out, *spatial_out]``, float64) as ``[n_out, n_in]``.

    ``span``: the receptive field's extent per dimension (dilated kernel), ``stride`` and ``pad_before``:
    the op's stride and leading padding, used to find the input position behind every output.
    """
    C, *sp_in = in_shape
    nd = len(sp_in)
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    offsets = np.stack(np.meshgrid(*[np.arange(s) for s in span], indexing="ij"), -1).reshape(-1, nd)
    probes = [(c, off) for c in range(C) for off in offsets]
    per = max(1, PROBE_ELEMENTS // max(1, n_in + n_out))
    grids = np.meshgrid(*[np.arange(n) for n in sp_in], indexing="ij")
    found: list[Entries] = []
    with torch.no_grad():
        for start in range(0, len(probes), per):
            chunk = probes[start:start + per]
            y = apply(torch.as_tensor(_probe_inputs(chunk, C, sp_in, span, grids))).numpy()
            entries = _attribute(y, chunk, sp_in, list(out_shape[1:]), span, stride, pad_before, name)
            if entries is not None:
                found.append(entries)
    if not found:
        return sp.csr_matrix((n_out, n_in))
    rows, cols, vals = (np.concatenate(part) for part in zip(*found, strict=True))
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in))
    m.sum_duplicates()
    return m


def _probe_inputs(chunk: list[Probe], C: int, sp_in: list[int], span: Sequence[int],
                  grids: Sequence[np.ndarray]) -> np.ndarray:
    """The probe batch ``[len(chunk), C, *sp_in]``: ones at the positions each probe colours."""
    x = np.zeros((len(chunk), C, *sp_in))
    for i, (c, off) in enumerate(chunk):
        mask = np.ones(sp_in, dtype=bool)
        for dim in range(len(sp_in)):
            mask &= grids[dim] % span[dim] == off[dim]
        x[i, c][mask] = 1.0
    return x


def _attribute(y: np.ndarray, chunk: list[Probe], sp_in: list[int], out_sp: list[int], span: Sequence[int],
               stride: Sequence[int], pad_before: Sequence[int], name: str) -> Entries | None:
    """Matrix entries from the probes' outputs ``y``: each non-zero output to the one input behind it."""
    pi, *oidx = np.nonzero(y)
    if pi.size == 0:
        return None
    nd = len(sp_in)
    val = y[(pi, *oidx)]
    o_pos = oidx[1:]
    chans = np.array([chunk[i][0] for i in range(len(chunk))])[pi]
    offs = np.stack([chunk[i][1] for i in range(len(chunk))])[pi]
    in_pos, ok = [], np.ones(pi.size, dtype=bool)
    for dim in range(nd):
        lo = o_pos[dim] * stride[dim] - pad_before[dim]
        pos = lo + np.mod(offs[:, dim] - lo, span[dim])
        ok &= (pos >= 0) & (pos < sp_in[dim])
        in_pos.append(pos)
    col = chans
    for dim in range(nd):
        col = col * sp_in[dim] + in_pos[dim]
    row = oidx[0]
    for dim in range(nd):
        row = row * out_sp[dim] + o_pos[dim]
    if not ok.all():
        raise AssertionError(f"probe attribution failed for node {name!r}")
    return row, col, val
