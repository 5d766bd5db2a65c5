"""Exact integer matmuls as int8 limbs with int32 sums (``torch._int_mm``: AMX / VNNI fast on x86 CPUs).

An integer weight matrix ``W`` with ``|w| <= 2047`` is ``16 * hi + lo`` with ``hi = w >> 4`` (floor, so
``|hi| <= 128``) and ``0 <= lo < 16``: two int8 matrices, one where ``|w| <= 127``. With int8 inputs
(spikes, pooled spikes, small graded inputs) ``x @ W == 16 * (x @ hi) + x @ lo`` in int32, exact while no
sum can reach ``2**31`` (:func:`fits`).
"""

from __future__ import annotations

import numpy as np
import torch

INT32_HALF = float(1 << 30)  # each limb's part below this: their sum stays below 2**31


def available(device: torch.device) -> bool:
    """On the CPU with a torch whose ``_int_mm`` runs and is exact here (whether to use it is the caller's
    :class:`~.strategy.Strategy`)."""
    return device.type == "cpu" and _int_mm_works()


_PROBED: list[bool] = []


def _int_mm_works() -> bool:
    """``torch._int_mm`` is private: probe it once on this torch and CPU against an exact float product
    (odd sizes, extreme values, an int32 sum above 2**24), and use the float path where it fails or differs."""
    if not _PROBED:
        ok = hasattr(torch, "_int_mm")
        if ok:
            try:
                g = torch.Generator().manual_seed(0)
                a = torch.randint(-128, 128, (33, 1031), generator=g, dtype=torch.int8)
                b = torch.randint(-128, 128, (1031, 24), generator=g, dtype=torch.int8)
                a[0], b[:, 0] = 127, 127  # one sum of 1031 * 127**2 > 2**24: exact only in int32
                ok = bool(torch.equal(torch._int_mm(a, b).to(torch.float64), a.double() @ b.double()))
            except (RuntimeError, NotImplementedError, TypeError):
                ok = False
        _PROBED.append(ok)
    return _PROBED[0]


def limbs(w: np.ndarray) -> list[tuple[np.ndarray, float, float]] | None:
    """``w`` ``[K, N]`` (integers) as int8 limbs ``(L_i, scale_i, largest column sum of |L_i|)`` with
    ``w == sum_i scale_i * L_i``, highest first; None where ``|w| > 2047``."""
    w = np.asarray(w).astype(np.int64)
    top = int(np.abs(w).max(initial=0))
    if top <= 127:
        parts = [(w, 1.0)]
    elif top <= 2047:
        hi = w >> 4  # floor: the low limb is 0..15
        parts = [(hi, 16.0), (w - 16 * hi, 1.0)]
    else:
        return None
    return [(np.ascontiguousarray(m.astype(np.int8)), scale, float(np.abs(m).sum(axis=0).max(initial=0)))
            for m, scale in parts]


def fits(parts: list[tuple[torch.Tensor, float, float]], x_max: float) -> bool:
    """No int32 sum can overflow for inputs ``|x| <= x_max <= 127``."""
    return x_max <= 127 and all(scale * col * x_max < INT32_HALF for _, scale, col in parts)


def matmul(a: torch.Tensor, parts: list[tuple[torch.Tensor, float, float]]) -> torch.Tensor:
    """``a @ W`` (int32) for int8 ``a`` ``[M, K]`` and ``W``'s limbs (from :func:`limbs`, as tensors)."""
    y = torch._int_mm(a, parts[0][0])
    if len(parts) == 2:  # 16 * (a @ hi) + a @ lo
        y.mul_(16).add_(torch._int_mm(a, parts[1][0]))
    return y


def as_int8(x: torch.Tensor) -> torch.Tensor:
    """Integer values ``|x| <= 127`` (or bool spikes, viewed) as int8."""
    return x.view(torch.int8) if x.dtype == torch.bool else x.to(torch.int8)


def to_device(parts: list[tuple[np.ndarray, float, float]],
              device: torch.device) -> list[tuple[torch.Tensor, float, float]]:
    """The limbs of :func:`limbs` as tensors on ``device``."""
    return [(torch.from_numpy(m).to(device), scale, col) for m, scale, col in parts]
