"""One synapse process of the plan, ready for exact batched products, and its fast forms.

A :class:`FixedConn` holds Lava's effective integer weights (:func:`.definition.synapse_weights`) and computes
the definition's ``a_out = int32(W @ x) << e`` for many samples and steps at once, by the kernel its
:class:`~.strategy.Strategy` allows and its bounds prove exact (:meth:`FixedConn.product`). All of it runs in
floating point on integer values, exact in any summation order while every partial sum stays below ``2**24``
(float32) or ``2**53`` (float64): the connection's bound (largest sum of ``|w|`` any partial sum adds, times the
largest input) picks the type, and a bound past ``2**53`` is refused rather than rounded.

Structured forms (:attr:`Strategy.structured`): the two sign processes of a connection as one product while
neither part's ``a_out`` can wrap int32 (:func:`merge_conns`), the weights several sources share as one
product of their summed inputs (:func:`share_weights`), kernels and conv-shaped matrices as convolutions
plus a border correction (:mod:`.conv_structure`).
"""

from __future__ import annotations

import functools
import hashlib
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.plan import Conn
from neuromoco.deploy.targets.reference_fixed import arith, products
from neuromoco.deploy.targets.reference_fixed.conv_structure import ConvOp, find_conv, kernel_conv
from neuromoco.deploy.targets.reference_fixed.definition import synapse_weights
from neuromoco.deploy.targets.reference_fixed.strategy import DEFAULT, Strategy
from neuromoco.errors import UserError

EXACT_FLOAT32 = float(1 << 24)
EXACT_FLOAT64 = float(1 << 53)
INT32_LIMIT = float(1 << 31)


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
    strategy: Strategy = DEFAULT  # the kernels :meth:`product` may use
    cache: dict[Any, Any] = field(default_factory=dict)  # torch weights by dtype and layout (:mod:`.products`)

    @classmethod
    def from_plan(cls, c: Conn, device: torch.device, strategy: Strategy = DEFAULT) -> FixedConn:
        """The plan's connection with the weights Lava's synapse uses; a kernel stays a convolution where the
        strategy is structured (feed-forward), else it is expanded into its matrix."""
        w = synapse_weights(c)
        if isinstance(w, Kernel) and strategy.structured and not c.recurrent:
            op = kernel_conv(w)  # its kernel_abs bounds every row: |a| <= kernel_abs * max|input|
            return cls(c.source, False, int(c.weight_exp), None, op.kernel_abs, device, conv=op, kernel=w,
                       strategy=strategy)
        if isinstance(w, Kernel):
            w = sp.csr_matrix(w.matrix())
            w.sum_duplicates()
            w.eliminate_zeros()
        return cls(c.source, bool(c.recurrent), int(c.weight_exp), w, _row_abs(w), device, strategy=strategy)

    @property
    def csr(self) -> sp.csr_matrix:
        """The weight matrix (of a connection that holds one, not a kernel)."""
        if self.matrix is None:
            raise ValueError(f"the connection from {self.source!r} holds a kernel, not a matrix")
        return self.matrix

    @property
    def nnz(self) -> int:
        """Stored weights (a kernel's non-zero taps); 0: the connection adds nothing."""
        return self.kernel.parameters if self.kernel is not None else int(self.csr.nnz)

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
        op = find_conv(self.matrix, shapes[self.source], target_shape, border=self.strategy.border_ops)
        if op is None:
            return
        self.__dict__.pop("partial_abs", None)
        self.conv = op
        if op.correction.nnz and op.border is None:  # else the conv applies it (gathered windows)
            self.correction = FixedConn(self.source, False, 0, op.correction, op.correction_abs, self.device,
                                        strategy=self.strategy)

    @functools.cached_property
    def partial_abs(self) -> float:
        """Largest sum of ``|w|`` any partial sum of the product adds up (per unit input); computed once
        (:meth:`use_conv` drops it)."""
        if self.conv is None:
            return self.row_abs
        return max(self.row_abs, self.conv.kernel_abs, self.conv.correction_abs)

    def dtype(self, x_max: float) -> torch.dtype:
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

    def product(self, x: torch.Tensor, x_max: float, events: bool = False) -> torch.Tensor:
        """``x @ W.T`` (exact integers, in float32 or float64 by :meth:`dtype`) for ``x`` ``[N, n_src]``
        (sample-major): ``[N, n_target]``, by the first kernel that the strategy allows and that applies: the
        convolution (plus its correction), int8 limbs (dense), event-driven (``events``: spikes), the matrix."""
        s, dtype = self.strategy, self.dtype(x_max)
        if self.conv is not None:  # C x + D x is exact: every partial sum of either stays below the bound
            c = self.conv.apply(x, dtype, x_max if s.int8 else None, chunk_bytes=s.conv_chunk_bytes)
            if self.correction is not None:
                c += self.correction.product(x, x_max, events)
            return c
        y: torch.Tensor | None = products.int8_matmul(self, x, x_max, dtype) if self.dense and s.int8 else None
        if y is None and events and s.event_driven:
            y = products.events(self, x, dtype, s.event_cost, s.event_chunk)
        return products.matrix(self, x, dtype) if y is None else y

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

    def total_bound(self, x_max: float) -> float:
        """:meth:`bound`, or its parts' sum for a merged sign pair (each part's ``a_out`` bounded alone)."""
        return self.bound(x_max) if not self.members else sum(m.bound(x_max) for m in self.members)


def _row_abs(w: sp.csr_matrix) -> float:
    """Largest row sum of ``|w|`` (0 for no synapse)."""
    return float(np.asarray(abs(w).sum(axis=1)).max(initial=0.0)) if w.nnz else 0.0


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
    return [item if isinstance(item, FixedConn) else _merged(item[0], item[1], groups[item]) for item in out]


def _merged(source: str, weight_exp: int, parts: list[FixedConn]) -> FixedConn:
    """One connection whose weights are the sum of ``parts``' (kernels of one geometry stay a kernel); a
    single part is itself."""
    if len(parts) == 1:
        return parts[0]
    kernels = [p.kernel for p in parts if p.kernel is not None]
    s = parts[0].strategy
    if len(kernels) == len(parts):
        k = kernels[0].with_weight(functools.reduce(operator.add, (k.weight for k in kernels)))
        op = kernel_conv(k)
        return FixedConn(source, False, weight_exp, None, op.kernel_abs, parts[0].device, members=parts, conv=op,
                         kernel=k, strategy=s)
    w = sp.csr_matrix(functools.reduce(lambda a, b: a + b, (p.matrix if p.matrix is not None
                                                              else p.kernel.matrix() for p in parts)))  # type: ignore[union-attr]
    w.eliminate_zeros()
    w.sort_indices()
    return FixedConn(source, False, weight_exp, w, _row_abs(w), parts[0].device, members=parts, strategy=s)
