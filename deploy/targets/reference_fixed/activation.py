"""A layer's activation from its connections, batched: feed-forward for many steps at once, recurrent per step.

Every unit's output is ``[T, B, n]`` (sample-major) with its bound (``|x| <= x_max``). A feed-forward input does
not depend on the layer it feeds, so a layer's feed-forward activation for many steps is one product with
``X[steps * B, n_src]``; only a recurrent connection's product runs step by step (the definition's source at
``t - 1``). Sums stay exact integers (float32 below ``2**24``, else float64).
"""

from __future__ import annotations

import torch

from neuromoco.deploy.targets.reference_fixed.connection import EXACT_FLOAT32, INT32_LIMIT, FixedConn
from neuromoco.errors import UserError

#: every unit's output ``[T, B, n]`` (bool spikes, the payload, or a voltage) and its bound, by name
Outputs = dict[str, tuple[torch.Tensor, float]]


def feed_forward(conns: list[FixedConn], outs: Outputs, n: int, owner: str,
                 steps: tuple[int, int] | None = None) -> tuple[torch.Tensor | None, float, list[FixedConn]]:
    """The feed-forward activation ``[t1 - t0, B, n]`` of the ``steps`` ``(t0, t1)`` (all by default; None
    if no input), its bound, the recurrent conns."""
    ff: torch.Tensor | None = None
    bound = 0.0
    rec = []
    shape: tuple[int, ...] = (0, 0)
    for c in conns:
        if c.recurrent:
            rec.append(c)
            continue
        for x, x_max in shared_inputs(c, outs, owner, steps):
            shape = tuple(x.shape[:2])
            a = c.apply(x.reshape(-1, x.shape[2]), x_max, events=x.dtype == torch.bool)
            if a is not None:
                bound += c.total_bound(x_max)
                ff = a if ff is None else add_exact(ff, a, bound)
    return (None if ff is None else ff.reshape(*shape, n)), bound, rec


def ff_bound(conns: list[FixedConn], outs: Outputs) -> float:
    """The weights' bound on the feed-forward activation (as :func:`feed_forward` sums it), before any product."""
    bound = 0.0
    for c in conns:
        if c.recurrent or c.nnz == 0 or any(s not in outs for s in (c.source, *c.shared)):
            continue
        bound += sum(c.total_bound(outs[s][1]) for s in (c.source, *c.shared))
    return bound


def recurrent(rec: list[FixedConn], outs: Outputs, own_prev: torch.Tensor, own_max: float, name: str,
              t: int) -> torch.Tensor | None:
    """The recurrent connections' activation at step ``t`` (float64): their sources' outputs at ``t - 1``
    (``own_prev`` for the layer's own)."""
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


def shared_inputs(c: FixedConn, outs: Outputs, owner: str,
                  steps: tuple[int, int] | None = None) -> list[tuple[torch.Tensor, float]]:
    """What ``c`` multiplies: its source's output or, for weights several sources share (a SEW block's ADD read
    by one conv), their outputs summed first, one product instead of several (``W x + W y == W (x + y)`` on
    integers while neither the sum nor any part can wrap int32, which Lava would wrap per connection; a
    negative exponent's floor is not additive and is never shared: :func:`.connection.share_weights`); else
    each alone."""
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


def add_exact(total: torch.Tensor, a: torch.Tensor, bound: float) -> torch.Tensor:
    """``total + a`` (in place where it can), in float64 once the sum's ``bound`` reaches 2**24 (float32's
    exact integers) or ``a`` is float64."""
    if total.dtype != torch.float64 and (a.dtype == torch.float64 or bound >= EXACT_FLOAT32):
        total = total.to(torch.float64)
    return total.add_(a)
