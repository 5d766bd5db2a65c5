"""Surrogate derivatives d(spike)/dh of Norse's threshold methods (``norse.torch.functional.threshold``), h = v - v_th.

Each entry is the factor Norse's autograd Function multiplies the incoming gradient by, written with the same
operations, so the fused backward equals Norse's to rounding; it may overwrite ``h`` (a temporary).
``heaviside`` has no gradient (Norse's heaviside is a comparison): ``None``. Norse's ``super`` ignores ``alpha``:
1 / (|h| + 1)^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Surrogate = Callable[[torch.Tensor, float], torch.Tensor]


def _super(h: torch.Tensor, alpha: float) -> torch.Tensor:
    return h.abs_().add_(1.0).square_().reciprocal_()


def _triangle(h: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * torch.relu(1 - h.abs())


def _tanh(h: torch.Tensor, alpha: float) -> torch.Tensor:
    return 1 - (h * alpha).tanh().pow(2)


def _circ(h: torch.Tensor, alpha: float) -> torch.Tensor:
    h2 = h.pow(2)
    return (-(h2 / (2 * (alpha**2 + h2).pow(1.5))) + 1 / (2 * (alpha**2 + h2).sqrt())) * 2 * alpha


def _heavi_erfc(h: torch.Tensor, alpha: float) -> torch.Tensor:
    return (2 * torch.exp(-(alpha * h).pow(2))) / torch.as_tensor(math.pi).sqrt()  # float32 sqrt(pi), as Norse


SURROGATES: dict[str, Surrogate | None] = {
    "super": _super,
    "triangle": _triangle,
    "tanh": _tanh,
    "circ": _circ,
    "heavi_erfc": _heavi_erfc,
    "heaviside": None,
}

# Surrogates written as 1 / d(h): the backward divides by d, as Norse's SuperSpike does (one kernel less).
SURROGATE_DENOMINATORS: dict[str, Surrogate] = {
    "super": lambda h, alpha: h.abs_().add_(1.0).square_(),
}
