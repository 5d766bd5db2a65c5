"""A fixed-point :class:`~neuromoco.deploy.loihi.plan.LavaPlan` run as batched integer arithmetic.

What ``lava-fixed`` computes for one sample, step ``tau`` of layer ``X`` (see :mod:`neuromoco.deploy.targets.lava.runner` and
:mod:`neuromoco.deploy.loihi.layout`: every connection is one step late in Lava, plus its added synaptic delay
``Conn.delay`` where a skip connection's short path is padded (``DelaySparse``), and every layer runs
``delay`` steps after the reference; the plan's delays satisfy ``X.delay == source.delay + 1 + Conn.delay -
recurrent`` for every connection, checked here (:func:`~neuromoco.deploy.loihi.plan.check_delays`), so in the reference's
time the delays cancel and every input of a layer, short path or long, carries its source's step ``tau``):

* the activation is the sum over the layer's connections of the synapse's ``a_out`` (:mod:`.arith`): a
  feed-forward connection carries its source's output at ``tau`` (graded ``round(x * input_scale)`` for
  the Input, 0/1 spikes for a layer), a recurrent one its source's output at ``tau - 1`` and nothing at the
  window's first step; plus the synaptic bias ``b0`` from the first step and ``b1`` from the second;
* the state starts every sample at ``u = 0, v = v0`` (``LIFReset``: ``v = 0``, and ``v0 = 0`` there);
* a spiking layer sends spikes, a non-spiking one (a ``LI`` readout) its voltage.

The readout is what Lava's ``Recorder`` holds (a direct layer's spikes or voltage, or the sum of the
readout connections' ``a_out``) turned into NIR units exactly as :meth:`LavaRunner._host_output` does.

Here every sample of a batch runs at once and, because a feed-forward input does not depend on the layer
it feeds, a layer's feed-forward inputs for many steps are one product with ``X[steps * B, n_src]``
(sample-major: every unit's output is ``[T, B, n]``); only the neuron update (and a recurrent
connection's product) runs step by step. A conv layer's matrix (with the pooling before it composed in)
runs as ``conv2d`` plus its border correction (:mod:`.conv_structure`: gathered windows or rows of the
conv's input, else a sparse product; a sum pooling composed into the kernel runs as a pooling, of spikes
in ``uint8``, then the small kernel), and the two sign processes of a connection are one product while
neither part's ``a_out`` can wrap int32 (:func:`merge_conns`). A small dense map runs as int8 matmuls with
int32 sums (``torch._int_mm``, exact) where its weights and inputs fit; otherwise, where the spikes are
sparse enough (:data:`EVENT_COST`) the product adds up only the synapses of the spikes (``index_add_``);
else it is a sparse CSR (or dense) matrix product. All of it runs in floating point on integer values,
which is exact in any summation order while every partial sum stays below ``2**24`` (float32) or
``2**53`` (float64): each connection's bound (largest sum of ``|w|`` any partial sum adds, times the
largest input) picks the type, an ``a_out`` that can neither wrap nor reach ``2**24`` stays float32, and a
bound past ``2**53`` is refused rather than rounded.

A layer with ``du = 4095`` (no current memory, plain LIF / IF) and no recurrent input whose activation
cannot wrap (``|a << 6| < 2**23`` by the weights, or by the actual inputs) runs
:meth:`FixedPointExecutor._run_memoryless`: a step is four or five in-place passes over ``[B, n]`` (in
float32 where :meth:`FixedLayer.state_dtype` proves it exact), fed chunk by chunk of steps
(:data:`CHUNK_BYTES`) so that the products' output is used while in cache. Other layers compute their
currents for all steps at once (``du = 4095``) or step by step.
"""

from __future__ import annotations

import functools
import hashlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, check_delays
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.reference_fixed import arith, int8, memory
from neuromoco.deploy.targets.reference_fixed.conv_structure import ConvOp, find_conv, kernel_conv
from neuromoco.errors import UserError

EXACT_FLOAT32 = float(1 << 24)
EXACT_FLOAT64 = float(1 << 53)
INT32_LIMIT = float(1 << 31)
EVENT_CHUNK = 1 << 22  # synapses per index_add of the event-driven product
EVENT_COST = 40  # an event's synapse costs about this many multiply-adds of the dense-column product
CHUNK_BYTES = 4 << 20  # a memoryless layer's activation is computed this much at a time (float32 bytes)
MEMORYLESS_FAST = True  # False: every layer through the general step (the tests compare the two)


@dataclass
class FixedConn:
    """One of the plan's synapse processes: Lava's effective integer weights, ready for matmuls."""

    source: str
    recurrent: bool
    weight_exp: int
    matrix: sp.csr_matrix | None  # the weights Lava's bit-accurate synapse uses (integers, float64 storage)
    row_abs: float  # largest row sum of |w|: |a| <= row_abs * max|input|
    device: torch.device
    members: list[FixedConn] = field(default_factory=list)  # a merged connection's parts (:func:`merge_conns`)
    conv: ConvOp | None = None  # matrix == conv + correction (:mod:`.conv_structure`); a kernel's conv alone
    correction: FixedConn | None = None  # the correction as a connection of its own (None: all conv)
    kernel: Kernel | None = None  # the plan's kernel with Lava's effective weights (``matrix`` is then None)
    shared: list[str] = field(default_factory=list)  # more sources whose connections hold these very weights
    _tensors: dict[Any, Any] = field(default_factory=dict)  # torch weights by dtype (and layout)

    @classmethod
    def from_plan(cls, c: Conn, device: torch.device, structured: bool = True) -> FixedConn:
        """The plan's connection with the weights Lava's synapse uses; a kernel stays a convolution where
        ``structured`` (feed-forward), else it is expanded into its matrix (the definition the tests compare)."""
        if c.kernel is not None and structured and not c.recurrent:
            k = c.kernel
            flat = k.weight.reshape(-1)
            eff = arith.synapse_weights(flat, arith.sign_mode(flat[flat != 0]), num_weight_bits=8)
            k = k.with_weight(eff.astype(np.float64).reshape(k.weight.shape))
            op = kernel_conv(k)  # its kernel_abs bounds every row: |a| <= kernel_abs * max|input|
            return cls(c.source, False, int(c.weight_exp), None, op.kernel_abs, device, conv=op, kernel=k)
        m = c.expanded()
        m.sum_duplicates()
        data = arith.synapse_weights(m.data, arith.sign_mode(m.data), num_weight_bits=8)
        w = sp.csr_matrix((data.astype(np.float64), m.indices.copy(), m.indptr.copy()), shape=m.shape)
        w.eliminate_zeros()
        row_abs = float(np.asarray(abs(w).sum(axis=1)).max(initial=0.0)) if w.nnz else 0.0
        return cls(c.source, bool(c.recurrent), int(c.weight_exp), w, row_abs, device)

    @property
    def nnz(self) -> int:
        """Stored weights (a kernel's non-zero taps); 0: the connection adds nothing."""
        return self.kernel.parameters if self.kernel is not None else int(self.matrix.nnz)  # type: ignore[union-attr]

    @property
    def dense(self) -> bool:
        """Small and dense (Lava would use ``Dense``): a dense matmul; else a sparse CSR one (or a kernel)."""
        if self.matrix is None:
            return False
        n = self.matrix.shape[0] * self.matrix.shape[1]
        return n <= (1 << 22) and self.matrix.nnz > 0.25 * n

    def use_conv(self, shapes: dict[str, tuple[int, ...]], target_shape: tuple[int, ...]) -> None:
        """Run the product as a convolution plus a sparse correction where the matrix is one (on the CPU:
        a GPU's convolution algorithms need not add integers exactly)."""
        if self.matrix is None or self.device.type != "cpu" or self.recurrent or self.dense \
                or self.source not in shapes:
            return
        op = find_conv(self.matrix, shapes[self.source], target_shape)
        if op is None:
            return
        self.__dict__.pop("partial_abs", None)
        self.conv = op
        if op.correction.nnz and op.border is None:  # else the conv applies it (gathered windows)
            d = op.correction
            self.correction = FixedConn(self.source, False, 0, d, op.correction_abs, self.device)

    @functools.cached_property
    def partial_abs(self) -> float:
        """Largest sum of ``|w|`` any partial sum of the product adds up (per unit input); computed once
        (:meth:`use_conv` drops it)."""
        if self.conv is None:
            return self.row_abs
        return max(self.row_abs, self.conv.kernel_abs, self.conv.correction_abs)

    def _dtype(self, x_max: float) -> torch.dtype:
        """float32 while every partial sum is an integer below 2**24 (and no TF32 matmul may round it),
        else float64 below 2**53, else refused."""
        bound = self.partial_abs * x_max
        tf32 = self.device.type == "cuda" and self.dense and (
            torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest")
        if bound < EXACT_FLOAT32 and not tf32:
            return torch.float32
        if bound < EXACT_FLOAT64:
            return torch.float64
        raise UserError(f"connection from {self.source!r}: inputs up to {x_max:g} times weights summing to "
                        f"{self.row_abs:g} per row exceed exact integer arithmetic (2**53); lower the input")

    def _weights(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._tensors:
            m = self.matrix
            if self.dense:
                t = torch.from_numpy(m.toarray()).to(dtype)
            else:
                with warnings.catch_warnings():  # "sparse CSR support is in beta state"
                    warnings.simplefilter("ignore", UserWarning)
                    t = torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                                torch.from_numpy(m.indices.astype(np.int64)),
                                                torch.from_numpy(m.data).to(dtype), size=m.shape,
                                                check_invariants=False)
            self._tensors[dtype] = t.to(self.device)
        return self._tensors[dtype]

    def _csc(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Column pointers, row indices and values (the synapses of each source neuron), on the device."""
        key = ("csc", dtype)
        if key not in self._tensors:
            m = self.matrix.tocsc()
            m.sort_indices()
            self._tensors[key] = tuple(t.to(self.device) for t in (
                torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
                torch.from_numpy(m.data).to(dtype)))
        return self._tensors[key]

    def _events(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """``x @ W.T`` from the nonzero inputs only (spikes): every event adds its source's synapses into its
        sample's row, in chunks of at most :data:`EVENT_CHUNK` synapses. None when dense work is cheaper."""
        n_tgt, N = self.matrix.shape[0], x.shape[0]
        if EVENT_COST and N > 1024:  # a strided sample of the rows first: no nonzero() over a dense input
            sample = x[::N // 256]
            per_row = float(torch.count_nonzero(sample)) / sample.shape[0]
            if per_row * self.matrix.nnz / x.shape[1] * EVENT_COST > self.matrix.nnz:
                return None
        col, j = torch.nonzero(x, as_tuple=True)
        ptr, rows, vals = self._csc(dtype)
        counts = ptr[j + 1] - ptr[j]
        total = int(counts.sum())
        if total * EVENT_COST > self.matrix.nnz * N:
            return None
        y = torch.zeros(N * n_tgt, dtype=dtype, device=x.device)
        if total == 0:
            return y.view(N, n_tgt)
        xv = None if x.dtype == torch.bool else x[col, j].to(dtype)
        if 2 * int(torch.count_nonzero(counts)) < len(counts):  # most events reach no synapse (a correction)
            keep = torch.nonzero(counts, as_tuple=True)[0]
            j, col, counts = j[keep], col[keep], counts[keep]
            xv = None if xv is None else xv[keep]
        ends = torch.cumsum(counts, 0)
        first = ptr[j]  # each event's first synapse
        start = 0
        while start < len(j):  # events [start, stop) carry at most EVENT_CHUNK synapses
            base = int(ends[start - 1]) if start else 0
            stop = max(start + 1, int(torch.searchsorted(ends, base + EVENT_CHUNK, right=True)))
            c = counts[start:stop]
            # entry k of the chunk is synapse first + k - (offset of its event in the chunk)
            pos = torch.repeat_interleave(first[start:stop] - (ends[start:stop] - c - base), c)
            pos += torch.arange(len(pos), device=x.device)
            target = rows[pos].add_(torch.repeat_interleave(col[start:stop] * n_tgt, c))
            w = vals[pos] if xv is None else vals[pos] * torch.repeat_interleave(xv[start:stop], c)
            y.index_add_(0, target, w)
            start = stop
        return y.view(N, n_tgt)

    def product(self, x: torch.Tensor, x_max: float, events: bool = False) -> torch.Tensor:
        """``x @ W.T`` (exact integers, in float32 or float64 by :meth:`_dtype`) for ``x`` ``[N, n_src]``
        (sample-major): ``[N, n_target]``."""
        dtype = self._dtype(x_max)
        if self.conv is not None:  # C x + D x is exact: every partial sum of either stays below the bound
            y = self.conv.apply(x, dtype, x_max)
            if self.correction is not None:
                y += self.correction.product(x, x_max, events)
            return y
        y = self._int8_product(x, x_max, dtype) if self.dense else None
        if y is None and events:
            y = self._events(x, dtype)
        if y is None:
            w = self._weights(dtype)
            if self.dense:
                y = x.to(dtype) @ w.t()
            else:
                y = torch.sparse.mm(w, x.to(dtype).t()).t()
        return y

    def _int8_limbs(self) -> list[tuple[torch.Tensor, float, float]] | None:
        """The dense weights ``W.T`` as int8 limbs (:func:`.int8.limbs`), made once; None past 2047."""
        if "int8" not in self._tensors:
            parts = int8.limbs(self.matrix.toarray().T)
            self._tensors["int8"] = None if parts is None else int8.to_device(parts, self.device)
        return self._tensors["int8"]

    def _int8_product(self, x: torch.Tensor, x_max: float, dtype: torch.dtype) -> torch.Tensor | None:
        """``x @ W.T`` as int8 matmuls with int32 sums (exact integers, and fast on the CPU: :mod:`.int8`)
        for spikes or inputs ``|x| <= 127`` while no int32 sum can overflow; else None."""
        if not int8.available(self.device) or x_max > 127:
            return None
        parts = self._int8_limbs()
        if parts is None or not int8.fits(parts, x_max):
            return None
        return int8.matmul(int8.as_int8(x), parts).to(dtype)

    def apply(self, x: torch.Tensor, x_max: float, events: bool = False) -> torch.Tensor | None:
        """``a_out`` (integers; float32 while :meth:`bound` < 2**24, else float64) for inputs ``x``
        ``[N, n_src]`` with ``|x| <= x_max``; None when it has no synapse. ``events``: ``x`` is mostly zeros
        (spikes): add up the synapses of its events."""
        if self.nnz == 0:
            return None
        if self.members:
            if any(m.bound(x_max) >= INT32_LIMIT for m in self.members):  # a part may wrap: part by part
                parts = [a.to(torch.float64) for a in (m.apply(x, x_max, events) for m in self.members)
                         if a is not None]
                return functools.reduce(torch.add, parts) if parts else None
            # no part wraps: the sum of the parts' (M_i x) << e is (sum M_i) x << e, exactly
            return self._shift(self.product(x, x_max, events), x_max, may_wrap=False)
        acc = self.product(x, x_max, events)  # exact integers
        if self.row_abs * x_max >= INT32_LIMIT:
            acc = arith.wrap32(acc.to(torch.float64))  # Lava's int32 dot product
        return self._shift(acc, x_max, may_wrap=self.bound(x_max) >= INT32_LIMIT)

    def _shift(self, acc: torch.Tensor, x_max: float, may_wrap: bool) -> torch.Tensor:
        """``acc << weight_exp`` (or ``>>``) as Lava's synapse shifts it; kept in float32 (no conversion, no
        work for an exponent of 0) while no wrap can happen and the result stays below 2**24."""
        if acc.dtype != torch.float64 and (may_wrap or self.bound(x_max) >= EXACT_FLOAT32):
            acc = acc.to(torch.float64)
        return arith.weight_shift(acc, self.weight_exp, may_wrap=may_wrap)

    def bound(self, x_max: float) -> float:
        """The largest ``|a_out|`` for inputs ``|x| <= x_max`` (before any int32 wrap)."""
        return self.row_abs * x_max * 2.0 ** max(self.weight_exp, 0)


def _fast_payload(x: np.ndarray, input_scale: float, input_max: float) -> np.ndarray | None:
    """:meth:`LavaPlan.fixed_payload` (then int32) in one float32 pass for float32 or small-integer frames
    with ``input_scale == 1``: ``round(x)`` is exact in float32 (and equals the float64 one), and so is
    ``|round(x) - x|``; the same warnings. None (the general path) otherwise, or past ``2**23``."""
    if input_scale != 1.0 or x.dtype not in (np.float32, np.uint8, np.int8, np.int16, np.uint16, np.bool_):
        return None
    x = np.ascontiguousarray(x)
    q = np.rint(x) if x.dtype == np.float32 else x.astype(np.float32)
    top = max(float(q.max(initial=0)), -float(q.min(initial=0)))  # (no |q| temporary)
    if not top < arith.MAX_UV:  # (also NaN)
        return None
    if x.dtype == np.float32 and not np.array_equal(q, x) and np.any(np.abs(q - x) > 1e-9):
        warnings.warn("fixed point: input frames are not integers after input_scale and are rounded", stacklevel=4)
    if top > input_max * input_scale:
        warnings.warn(f"fixed point: input values up to {float(np.abs(x).max()):g} exceed input_max "
                      f"{input_max:g} the scales were chosen for; currents may overflow", stacklevel=4)
    return q


def _bound(c: FixedConn, x_max: float) -> float:
    """The largest ``|a_out|`` of ``c`` (its parts' sum for a merged sign pair) for inputs up to ``x_max``."""
    return c.bound(x_max) if not c.members else sum(m.bound(x_max) for m in c.members)


def _shared_inputs(c: FixedConn, outs: dict[str, tuple[torch.Tensor, float]], owner: str,
                   steps: tuple[int, int] | None = None) -> list[tuple[torch.Tensor, float]]:
    """What ``c`` multiplies: its source's output or, for weights several sources share (a SEW block's ADD read
    by one conv), their outputs summed first, one product instead of several (``W x + W y == W (x + y)`` on
    integers while neither the sum nor any part can wrap int32, which Lava would wrap per connection; a
    negative exponent's floor is not additive and is never shared: :func:`share_weights`); else each alone."""
    sources = [c.source, *c.shared]
    missing = [s for s in sources if s not in outs]
    if missing:
        raise UserError(f"{owner!r} receives from {missing[0]!r}, which runs later in the plan")
    parts = [outs[s] if steps is None else (outs[s][0][steps[0]:steps[1]], outs[s][1]) for s in sources]
    if len(parts) == 1:
        return parts
    total = sum(x_max for _, x_max in parts)
    if c.bound(total) >= INT32_LIMIT or any(m.bound(total) >= INT32_LIMIT for m in c.members) \
            or total >= 255:
        return parts
    x = parts[0][0].to(torch.uint8) if parts[0][0].dtype == torch.bool else parts[0][0].clone()
    for y, _ in parts[1:]:
        x += y.to(x.dtype)
    return [(x, total)]


def share_weights(conns: list[FixedConn]) -> list[FixedConn]:
    """Feed-forward kernel connections with the very same weights and exponent ``>= 0`` from several sources
    (the terms of a SEW ADD, each a connection of the plan) as one connection that lists them all."""
    out: list[FixedConn] = []
    seen: dict[tuple, FixedConn] = {}
    for c in conns:
        k = c.kernel
        if k is None or c.recurrent or c.weight_exp < 0:
            out.append(c)
            continue
        key = (c.weight_exp, k.stride, k.pad, k.crop, k.in_shape, k.out_shape, k.weight.shape,
               hashlib.blake2b(np.ascontiguousarray(k.weight).tobytes(), digest_size=16).digest(),
               tuple(m.weight_exp for m in c.members))
        if key in seen and c.source not in (seen[key].source, *seen[key].shared):
            seen[key].shared.append(c.source)
            continue
        seen[key] = c
        out.append(c)
    return out


def _counts(rec: torch.Tensor) -> np.ndarray:
    """Spikes per step and sample of a bool record ``[T, B, n]``."""
    if rec.device.type == "cpu":  # numpy counts bools some 10x faster than torch's sum
        return np.count_nonzero(rec.numpy(), axis=2).astype(np.int64)
    return rec.sum(2, dtype=torch.int64).cpu().numpy()


def _add_exact(total: torch.Tensor, a: torch.Tensor, bound: float) -> torch.Tensor:
    """``total + a`` (in place where it can), in float64 once the sum's ``bound`` reaches 2**24 (float32's
    exact integers) or ``a`` is float64."""
    if total.dtype != torch.float64 and (a.dtype == torch.float64 or bound >= EXACT_FLOAT32):
        total = total.to(torch.float64)
    return total.add_(a)


def merge_conns(conns: list[FixedConn]) -> list[FixedConn]:
    """The feed-forward connections from one source with one exponent ``e >= 0`` (a sign-split pair) as one
    connection whose weights are their sum: while no part's ``a_out`` can wrap int32 (checked per run),
    ``sum_i (M_i x) << e == (sum_i M_i) x << e``. A negative exponent's floor is not additive: kept apart."""
    out: list[FixedConn | tuple[str, int]] = []
    groups: dict[tuple[str, int], list[FixedConn]] = {}
    for c in conns:
        if c.recurrent or c.weight_exp < 0 or c.nnz == 0:
            out.append(c)
            continue
        key = (c.source, c.weight_exp)
        if key not in groups:
            groups[key] = []
            out.append(key)
        groups[key].append(c)
    merged = []
    for item in out:
        if isinstance(item, FixedConn):
            merged.append(item)
            continue
        parts = groups[item]
        if len(parts) == 1:
            merged.append(parts[0])
            continue
        merged.append(_merged(item[0], item[1], parts))
    return merged


def _merged(source: str, weight_exp: int, parts: list[FixedConn]) -> FixedConn:
    """One connection whose weights are the sum of ``parts``' (kernels of one geometry stay a kernel)."""
    kernels = [p.kernel for p in parts]
    if all(k is not None for k in kernels):
        k = kernels[0].with_weight(sum(k.weight for k in kernels))  # type: ignore[union-attr,misc]
        op = kernel_conv(k)
        return FixedConn(source, False, weight_exp, None, op.kernel_abs, parts[0].device, members=parts, conv=op,
                         kernel=k)
    w = sp.csr_matrix(functools.reduce(lambda a, b: a + b, (p.matrix if p.matrix is not None
                                                              else p.kernel.matrix() for p in parts)))  # type: ignore[union-attr]
    w.eliminate_zeros()
    w.sort_indices()
    row_abs = float(np.asarray(abs(w).sum(axis=1)).max(initial=0.0)) if w.nnz else 0.0
    return FixedConn(source, False, weight_exp, w, row_abs, parts[0].device, members=parts)


@dataclass
class FixedLayer:
    """A plan layer's integer constants as ``[n]`` float64 tensors holding integers (broadcast over the
    samples of a ``[B, n]`` state); ``None`` for a constant that is zero everywhere (and so skipped)."""

    name: str
    shape: tuple[int, ...]
    spiking: bool
    u_factor: torch.Tensor | float  # 4096 - (du + 1); a float when uniform
    v_factor: torch.Tensor | float  # 4096 - dv
    vth: torch.Tensor  # vth << 6
    bias: torch.Tensor | None  # bias_mant << bias_exp
    b0: torch.Tensor | None
    b1: torch.Tensor | None
    v0: torch.Tensor
    bias_max: float  # largest |effective bias|
    b_max: float  # largest |b0| + |b1|
    conns: list[FixedConn]
    _constants: dict[torch.dtype, dict[str, torch.Tensor | None]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def state_dtype(self, a_max: float) -> torch.dtype:
        """float32 for the voltage of :meth:`FixedPointExecutor._run_memoryless` where it is exact: a uniform
        voltage decay by a power of two (``trunc(v / 2**k)``), ``|v0| < 2**23``, and every constant (``vth << 6``,
        ``bias + (b0 + b1) << 6``) below ``2**24``; the caller bounds ``|a << 6| < 2**23``. Then ``decay(v) +
        (a << 6)`` is below ``2**24`` and adding the bias rounds only past ``2**24``, which the saturation maps
        to ``2**23 - 1`` either way. Else float64."""
        f = self.v_factor
        ok = (isinstance(f, float) and (f == 0.0 or float(arith.DECAY_UNITY / f).is_integer())
              and float(self.v0.abs().max()) < arith.MAX_UV and float(self.vth.abs().max()) < EXACT_FLOAT32
              and self.bias_max + (1 << arith.ACT_SHIFT) * self.b_max < EXACT_FLOAT32
              and a_max * (1 << arith.ACT_SHIFT) < arith.MAX_UV)
        return torch.float32 if ok else torch.float64

    def voltage_bound(self, u_max: float) -> float:
        """A bound on ``|v|`` at every step when each step adds at most ``u_max`` in magnitude (current plus
        bias): with ``|v| <= K`` before a step, ``|trunc(v * f / 4096) + u| <= K * f / 4096 + u_max <= K`` for
        ``K = max(|v0|, u_max / (1 - f / 4096))`` (a reset only shrinks ``|v|``); infinite without decay. Below
        ``2**23 - 1`` the saturation never acts."""
        f = self.v_factor if isinstance(self.v_factor, float) else float(self.v_factor.max())
        if f >= arith.DECAY_UNITY:
            return float("inf")
        return max(float(self.v0.abs().max()), u_max / (1.0 - f / arith.DECAY_UNITY))

    def constants(self, dtype: torch.dtype) -> dict[str, torch.Tensor | None]:
        """``v0``, ``vth`` and the per-step constants ``const0 = bias + b0 << 6`` (first step) and ``const =
        bias + (b0 + b1) << 6`` (after; None where zero) in ``dtype``, made once."""
        if dtype not in self._constants:
            act = float(1 << arith.ACT_SHIFT)
            zero = torch.zeros_like(self.vth)
            bias = self.bias if self.bias is not None else zero
            b0 = self.b0 if self.b0 is not None else zero
            b1 = self.b1 if self.b1 is not None else zero
            const0 = bias + act * b0
            const = const0 + act * b1
            self._constants[dtype] = {
                "v0": self.v0.to(dtype), "vth": self.vth.to(dtype),
                "const0": const0.to(dtype) if bool(const0.any()) else None,
                "const": const.to(dtype) if bool(const.any()) else None}
        return self._constants[dtype]

    @classmethod
    def from_plan(cls, lay: Layer, device: torch.device,
                  shapes: dict[str, tuple[int, ...]] | None = None) -> FixedLayer:
        def ints(a: np.ndarray) -> np.ndarray:  # what Lava's int32 Vars hold (astype truncates)
            return np.broadcast_to(np.asarray(a, dtype=np.float64), (lay.size,)).astype(np.int32).astype(np.int64)

        def col(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(a, dtype=np.float64).reshape(-1)).to(device)

        def uniform_or_col(a: np.ndarray) -> torch.Tensor | float:
            return float(a[0]) if np.all(a == a[0]) else col(a)

        def col_or_none(a: np.ndarray) -> torch.Tensor | None:
            return col(a) if np.any(a) else None

        bias = arith.effective_bias(ints(lay.bias_mant), ints(lay.bias_exp))
        b0, b1 = ints(lay.b0), ints(lay.b1)
        return cls(lay.name, tuple(lay.shape), bool(lay.spiking),
                   uniform_or_col(arith.u_factor(ints(lay.du))), uniform_or_col(arith.v_factor(ints(lay.dv))),
                   col(arith.effective_threshold(ints(lay.vth))), col_or_none(bias), col_or_none(b0),
                   col_or_none(b1), col(ints(lay.v0)), float(np.abs(bias).max(initial=0)),
                   float(np.abs(b0).max(initial=0) + np.abs(b1).max(initial=0)),
                   _layer_conns(lay, device, shapes))


def _layer_conns(lay: Layer, device: torch.device, shapes: dict[str, tuple[int, ...]] | None) -> list[FixedConn]:
    """The layer's connections; with the units' ``shapes``, sign-split parts merged and convolutions found."""
    conns = [FixedConn.from_plan(c, device, structured=shapes is not None) for c in lay.conns]
    if shapes is None:
        return conns
    conns = share_weights(merge_conns(conns))
    for c in conns:
        c.use_conv(shapes, tuple(lay.shape))
    return conns


class FixedPointExecutor:
    """Runs frames ``[T, B, *input_shape]`` through a fixed-point plan, bit-exact with ``lava-fixed``.

    ``device``: a torch device (CPU or CUDA); ``record_spikes``: keep the full 0/1 record of every spiking
    layer; ``batch_size``: samples per batch (memory grows with ``T * batch_size * neurons``); ``threads``:
    torch's CPU threads during :meth:`run` (0: leave torch's setting; restored afterwards); ``structured``:
    merge sign-split pairs and run conv layers as convolutions (:mod:`.conv_structure`); False: every
    connection as its own sparse product (the same integers, slower).
    """

    def __init__(self, plan: LavaPlan, device: str = "cpu", record_spikes: bool = False,
                 batch_size: int = 256, threads: int = 0, structured: bool = True) -> None:
        if plan.precision != "fixed":
            raise UserError(f"reference-fixed runs fixed-point plans; this one is {plan.precision} point "
                            "(export it with --target lava-fixed or reference-fixed)")
        try:
            self.device = torch.device(device)
        except RuntimeError as err:
            raise UserError(f"reference-fixed: bad torch device {device!r} ({err})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"reference-fixed: device {device!r} asked for but CUDA is not available")
        check_delays(plan)  # a connection that would not meet its target on time: not what Lava ran
        self.plan = plan
        self.record_spikes = bool(record_spikes)
        self.batch_size = max(1, int(batch_size))
        self.threads = max(0, int(threads))
        shapes = ({plan.input_name: tuple(plan.input_shape), **{lay.name: tuple(lay.shape) for lay in plan.layers}}
                  if structured else None)
        self.layers = [FixedLayer.from_plan(lay, self.device, shapes) for lay in plan.layers]
        self.readout_conns = [FixedConn.from_plan(c, self.device, structured) for c in plan.readout.conns]
        self.last_run: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------- API

    def run(self, frames: np.ndarray) -> RunResult:
        x = self.plan.flat_frames(frames)
        T, B = x.shape[:2]
        payload = self.payload(x)
        t0 = time.perf_counter()
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        batch = self.fitting_batch(T, B)
        try:
            with torch.inference_mode():
                parts = [self._run_batch(payload[:, i:i + batch]) for i in range(0, B, batch)]
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        finally:
            if self.threads:
                torch.set_num_threads(before)
        self.last_run = {"samples": B, "steps": T, "seconds": time.perf_counter() - t0,
                         "batches": len(parts), "batch_size": batch, "device": str(self.device)}
        return parts[0] if len(parts) == 1 else RunResult.concatenate(parts)

    def fitting_batch(self, T: int, B: int) -> int:
        """``batch_size`` (at most ``B``), lowered to what fits the memory available now (:mod:`.memory`); a
        one-line refusal, before anything is allocated, where not even one sample fits."""
        wanted = max(1, min(self.batch_size, B))
        avail = memory.available_bytes(self.device)
        batch, per_sample = memory.fitting_batch(self.plan.input_size, self._memory_layers(), T, wanted, avail)
        if batch < 1:
            raise UserError(f"reference-fixed: one sample of {T} steps needs about {per_sample / 2**30:.1f} GiB "
                            f"and {avail / 2**30:.1f} GiB are available; lower the time steps or the input "
                            f"resolution, or run on a larger machine")
        return batch

    def _memory_layers(self) -> list[tuple[int, int, bool]]:
        """``(neurons, index of the last layer reading it, spiking)`` per layer, for :mod:`.memory` (the
        readout's sources and, with ``record_spikes``, every spiking layer count as read to the end)."""
        last = self._last_readers()
        return [(lay.size, last[lay.name], lay.spiking) for lay in self.layers]

    def _last_readers(self) -> dict[str, int]:
        """Per layer, the index of the last layer whose connections read it (``len(layers)``: kept to the end)."""
        end = len(self.layers)
        last = {lay.name: -1 for lay in self.layers}
        for i, lay in enumerate(self.layers):
            for c in lay.conns:
                for src in (c.source, *c.shared):
                    if src in last:
                        last[src] = max(last[src], i)
        ro = self.plan.readout
        keep = {ro.direct} | {c.source for c in self.readout_conns}
        for lay in self.layers:
            if lay.name in keep or (self.record_spikes and lay.spiking) or not lay.spiking:
                last[lay.name] = end
        return last

    def payload(self, x: np.ndarray) -> np.ndarray:
        """The graded input Lava's ``RingBuffer`` sends: ``round(x * input_scale)`` as int32 (as the runner);
        float32 holding those integers where :func:`_fast_payload` applies, else int64."""
        fast = _fast_payload(x, self.plan.input_scale, self.plan.input_max)
        if fast is not None:
            return fast
        return self.plan.fixed_payload(x).astype(np.int32).astype(np.int64)

    # ----------------------------------------------------------------------------------- internals

    def _run_batch(self, payload: np.ndarray) -> RunResult:
        T, B = payload.shape[:2]
        plan = self.plan
        # every unit's output per step, sample-major [T, B, n] (spikes 0/1, payload or voltage), and its bound
        x_in = torch.from_numpy(np.ascontiguousarray(payload)).to(self.device)
        lo, hi = torch.aminmax(x_in) if x_in.numel() else (torch.zeros(()), torch.zeros(()))
        in_max = max(-float(lo), float(hi))
        outs: dict[str, tuple[torch.Tensor, float]] = {
            plan.input_name: (x_in.to(torch.float64 if in_max >= arith.MAX_UV else torch.float32), in_max)}
        last = self._last_readers()
        counts: dict[str, np.ndarray] = {}
        for i, lay in enumerate(self.layers):
            outs[lay.name] = self._run_layer(lay, outs, T, B)
            for done in [name for name, j in last.items() if j == i or (j < 0 and name == lay.name)]:
                counts[done] = _counts(outs.pop(done)[0])  # read by no later layer: counted, freed
        return self._result(outs, counts, T, B)

    def _inputs(self, conns: list[FixedConn], outs: dict[str, tuple[torch.Tensor, float]], n: int,
                owner: str, steps: tuple[int, int] | None = None) -> tuple[torch.Tensor | None, float, list[FixedConn]]:
        """The feed-forward activation ``[t1 - t0, B, n]`` of the ``steps`` ``(t0, t1)`` (all by default; None
        if no input), its bound, the recurrent conns."""
        ff: torch.Tensor | None = None
        bound = 0.0
        rec = []
        shape = (0, 0)
        for c in conns:
            if c.recurrent:
                rec.append(c)
                continue
            for x, x_max in _shared_inputs(c, outs, owner, steps):
                shape = x.shape[:2]
                a = c.apply(x.reshape(-1, x.shape[2]), x_max, events=x.dtype == torch.bool)
                if a is not None:
                    bound += _bound(c, x_max)
                    ff = a if ff is None else _add_exact(ff, a, bound)
        return (None if ff is None else ff.reshape(*shape, n)), bound, rec

    @staticmethod
    def _ff_bound(conns: list[FixedConn], outs: dict[str, tuple[torch.Tensor, float]]) -> float:
        """The weights' bound on the feed-forward activation (as :meth:`_inputs` sums it), before any product."""
        bound = 0.0
        for c in conns:
            if c.recurrent or c.nnz == 0 or any(s not in outs for s in (c.source, *c.shared)):
                continue
            bound += sum(_bound(c, outs[s][1]) for s in (c.source, *c.shared))
        return bound

    def _recurrent(self, rec: list[FixedConn], outs: dict[str, tuple[torch.Tensor, float]],
                   own_prev: torch.Tensor, own_max: float, name: str, t: int) -> torch.Tensor | None:
        """The recurrent connections' activation at step ``t``: their sources' outputs at ``t - 1``."""
        total = None
        for c in rec:
            if c.source == name:
                x, x_max = own_prev, own_max
            elif c.source in outs:
                x, x_max = outs[c.source][0][t - 1], outs[c.source][1]
            else:
                raise UserError(f"{name!r} receives a recurrent input from {c.source!r}, which runs later")
            a = c.apply(x, x_max)
            if a is not None:
                a = a.to(torch.float64)
                total = a if total is None else total + a
        return total

    def _run_layer(self, lay: FixedLayer, outs: dict[str, tuple[torch.Tensor, float]], T: int,
                   B: int) -> tuple[torch.Tensor, float]:
        """The layer over all steps: its output ``[T, B, n]`` (bool spikes, or the voltage) and its bound."""
        n = lay.size
        own_max = 1.0 if lay.spiking else float(arith.MAX_UV)
        record = torch.empty((T, B, n), dtype=torch.bool if lay.spiking else torch.float64, device=self.device)
        memoryless = (MEMORYLESS_FAST and not any(c.recurrent for c in lay.conns)  # (and no int32 voltage wrap)
                      and isinstance(lay.u_factor, float) and lay.u_factor == 0.0 and lay.bias_max < 2.0 ** 30)
        bound = lay.b_max + self._ff_bound(lay.conns, outs)
        if memoryless and bound * (1 << arith.ACT_SHIFT) < arith.MAX_UV:  # the weights prove it: no wrap
            def inputs(t0: int, t1: int) -> torch.Tensor | None:
                return self._inputs(lay.conns, outs, n, lay.name, (t0, t1))[0]

            self._run_memoryless(lay, inputs, bound, record)
            return record, own_max
        ff, ff_bound, rec = self._inputs(lay.conns, outs, n, lay.name)
        # |a| <= a_max every step; below 2**24 / 64 neither int32 wrap can happen (|u| stays <= 2**23)
        rec_max = sum(c.bound(outs[c.source][1] if c.source in outs else own_max) for c in rec)
        ff_max = ff_bound
        if ff is not None and (lay.b_max + ff_bound + rec_max) * (1 << arith.ACT_SHIFT) >= 2 * arith.MAX_UV:
            lo, hi = torch.aminmax(ff)  # the bound from the weights is not enough: the actual largest input
            ff_max = max(-float(lo), float(hi))
        a_max = lay.b_max + ff_max + rec_max
        may_wrap32 = a_max * (1 << arith.ACT_SHIFT) >= 2 * arith.MAX_UV
        if memoryless and a_max * (1 << arith.ACT_SHIFT) < arith.MAX_UV:  # the actual inputs prove it
            self._run_memoryless(lay, lambda t0, t1: None if ff is None else ff[t0:t1], a_max, record)
            return record, own_max
        if ff is not None:
            ff = ff.to(torch.float64)
        v = lay.v0.expand(B, n).clone()  # a window starts at u = 0, v = v0
        if memoryless:
            # du = 4095: the current is this step's input alone, for all steps at once
            a_all = ff if ff is not None else torch.zeros((T, B, n), dtype=torch.float64, device=self.device)
            if lay.b0 is not None:
                a_all = a_all + lay.b0
            if lay.b1 is not None:
                a_all = a_all.clone()
                a_all[1:] += lay.b1
            u_all = arith.current_update(a_all, a_all, 0.0, may_wrap32=may_wrap32)  # (u not read)
            if lay.bias is not None:  # v + u + bias, added once for all steps (exact: any wrap comes after)
                u_all.add_(lay.bias)
            for t in range(T):
                arith.voltage_update_(v, u_all[t], lay.v_factor, None, may_wrap32=may_wrap32)
                self._emit(lay, v, record[t])
            return record, own_max
        u = torch.zeros((B, n), dtype=torch.float64, device=self.device)
        zero = torch.zeros((n,), dtype=torch.float64, device=self.device)
        for t in range(T):
            a = ff[t] if ff is not None else zero
            if lay.b0 is not None:
                a = a + lay.b0
            if t > 0:  # the recurrent input and its bias are dropped at a window's first step
                r = self._recurrent(rec, outs, record[t - 1], own_max, lay.name, t) if rec else None
                if r is not None:
                    a = a + r
                if lay.b1 is not None:
                    a = a + lay.b1
            u = arith.current_update(u, a, lay.u_factor, may_wrap32=may_wrap32)
            arith.voltage_update_(v, u, lay.v_factor, lay.bias, may_wrap32=may_wrap32)
            self._emit(lay, v, record[t])
        return record, own_max

    def _run_memoryless(self, lay: FixedLayer, inputs: Callable[[int, int], torch.Tensor | None], a_max: float,
                        record: torch.Tensor) -> None:
        """A layer with ``du = 4095`` and no recurrent input whose ``|a << 6|`` stays below ``2**23``: the current
        is ``a << 6`` exactly (neither wrap can happen), so a step is ``v = decay(v) + (ff << 6) + bias +
        (b0 + b1) << 6`` then the saturation (skipped where :meth:`FixedLayer.voltage_bound` shows it never
        acts) and the spikes: four to six in-place passes over ``[B, n]``.

        The state is float32 when that is exact (:meth:`FixedLayer.state_dtype`): a decay by a power of two
        and sums below ``2**24``, or past it only where the saturation maps any rounding to the same value.
        ``inputs(t0, t1)`` gives the feed-forward activation of steps ``t0 .. t1 - 1``, asked for in chunks of
        about :data:`CHUNK_BYTES` (the products' output is used while it is in cache, and never all held)."""
        T, B, n = record.shape
        dtype = lay.state_dtype(a_max)
        k = lay.constants(dtype)
        v = k["v0"].expand(B, n).clone()  # a window starts at u = 0, v = v0
        const = k["const0"], k["const"]  # bias + (b0 [+ b1]) << 6, at the first step and after
        act = float(1 << arith.ACT_SHIFT)
        lo, hi = float(-arith.MAX_UV + 1), float(arith.MAX_UV - 1)
        saturates = lay.voltage_bound(act * a_max + lay.bias_max) >= hi
        chunk = max(1, CHUNK_BYTES // (4 * B * n))
        for t0 in range(0, T, chunk):
            ff = inputs(t0, min(T, t0 + chunk))  # float32 adds into a float64 v exactly (no conversion pass)
            for t in range(t0, min(T, t0 + chunk)):
                arith.decay_(v, lay.v_factor)
                if ff is not None:
                    v.add_(ff[t - t0], alpha=act)
                c = const[0] if t == 0 else const[1]
                if c is not None:
                    v.add_(c)
                if saturates:
                    v.clamp_(lo, hi)
                if lay.spiking:
                    torch.gt(v, k["vth"], out=record[t])
                    v.masked_fill_(record[t], 0)
                else:
                    record[t].copy_(v)

    @staticmethod
    def _emit(lay: FixedLayer, v: torch.Tensor, out: torch.Tensor) -> None:
        """The step's output into ``out``: spikes ``v > vth << 6`` (and their reset), or the voltage."""
        if lay.spiking:
            torch.gt(v, lay.vth, out=out)
            v.masked_fill_(out, 0)
        else:
            out.copy_(v)

    def _result(self, outs: dict[str, tuple[torch.Tensor, float]], counts: dict[str, np.ndarray], T: int,
                B: int) -> RunResult:
        """Spike counts of every spiking layer (those freed early were counted then), full records where kept."""
        spikes: dict[str, np.ndarray] = {}
        for lay in self.layers:
            if not lay.spiking:
                continue
            if lay.name in counts:
                continue
            rec = outs[lay.name][0]
            counts[lay.name] = _counts(rec)
            if self.record_spikes:  # the record is not used again: its bytes as 0/1 uint8, no copy
                spikes[lay.name] = rec.view(torch.uint8).cpu().numpy().reshape(T, B, *lay.shape)
        order = [lay.name for lay in self.layers if lay.spiking]
        return RunResult(output=self._readout(outs, T, B), spike_counts={k: counts[k] for k in order},
                         spikes=spikes)

    def _readout(self, outs: dict[str, tuple[torch.Tensor, float]], T: int, B: int) -> np.ndarray:
        """What lava-fixed's runner returns: the recorded readout in NIR units (its ``_host_output``)."""
        plan, ro = self.plan, self.plan.readout
        if ro.direct:
            lay = plan.layer(ro.direct)
            out = outs[ro.direct][0].to(torch.float64).cpu().numpy()
            if not lay.spiking:  # the voltage in integer units of the shifted origin, back to NIR volts
                unit = 64.0 * lay.scale
                out = out / unit + lay.v_reset.reshape(1, 1, -1)
            return out.astype(np.float64)
        total: torch.Tensor | None = None
        for c in self.readout_conns:
            x, x_max = outs[c.source]
            if c.recurrent:  # the source's previous step; nothing at the first (see docs/targets.md)
                x = torch.cat([torch.zeros_like(x[:1]), x[:-1]], dim=0)
            a = c.apply(x.reshape(T * B, x.shape[2]), x_max, events=x.dtype == torch.bool)
            if a is not None:
                a = a.to(torch.float64)
                total = a if total is None else total + a  # Lava's Recorder sums the int32 a_out exactly
        if total is None:
            rec = np.zeros((T, B, ro.size))
        else:
            rec = total.reshape(T, B, ro.size).to(torch.float64).cpu().numpy()
        out = rec / ro.scale
        if ro.c0 is not None:
            out = out + ro.c0.reshape(1, 1, -1)
        if ro.c1 is not None:
            out[1:] = out[1:] + ro.c1.reshape(1, 1, -1)
        return out.astype(np.float64)
