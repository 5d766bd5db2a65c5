"""A plan layer's neuron constants as tensors, and the bounds that let the fast neuron kernels run exactly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from neuromoco.deploy.loihi.plan import Layer
from neuromoco.deploy.targets.reference_fixed import arith
from neuromoco.deploy.targets.reference_fixed.connection import EXACT_FLOAT32, FixedConn, merge_conns, share_weights
from neuromoco.deploy.targets.reference_fixed.definition import Neuron
from neuromoco.deploy.targets.reference_fixed.strategy import DEFAULT, Strategy


@dataclass(frozen=True)
class StepConstants:
    """A layer's neuron constants in one dtype: the start voltage ``v0``, the threshold ``vth`` and the per-step
    constants ``const0 = bias + b0 << 6`` (first step) and ``const = bias + (b0 + b1) << 6`` (after; None where
    zero)."""

    v0: torch.Tensor
    vth: torch.Tensor
    const0: torch.Tensor | None
    const: torch.Tensor | None


@dataclass
class FixedLayer:
    """A plan layer's integer constants (:class:`.definition.Neuron`) as ``[n]`` float64 tensors holding
    integers (broadcast over the samples of a ``[B, n]`` state); ``None`` for a constant that is zero
    everywhere (and so skipped)."""

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
    _constants: dict[torch.dtype, StepConstants] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def memoryless(self) -> bool:
        """No current memory (``du = 4095``, uniform) and no recurrent input: the current is this step's input
        alone (and a bias below ``2**30``, so that no int32 voltage wrap can happen)."""
        return (not any(c.recurrent for c in self.conns) and isinstance(self.u_factor, float)
                and self.u_factor == 0.0 and self.bias_max < 2.0 ** 30)

    def state_dtype(self, a_max: float) -> torch.dtype:
        """float32 for the voltage of :func:`.neurons.run_memoryless` where it is exact: a uniform voltage
        decay by a power of two (``trunc(v / 2**k)``), ``|v0| < 2**23``, and every constant (``vth << 6``,
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

    def constants(self, dtype: torch.dtype) -> StepConstants:
        """The layer's :class:`StepConstants` in ``dtype``, made once."""
        if dtype not in self._constants:
            act = float(1 << arith.ACT_SHIFT)
            zero = torch.zeros_like(self.vth)
            bias = self.bias if self.bias is not None else zero
            b0 = self.b0 if self.b0 is not None else zero
            b1 = self.b1 if self.b1 is not None else zero
            const0 = bias + act * b0
            const = const0 + act * b1
            self._constants[dtype] = StepConstants(
                self.v0.to(dtype), self.vth.to(dtype), const0.to(dtype) if bool(const0.any()) else None,
                const.to(dtype) if bool(const.any()) else None)
        return self._constants[dtype]

    @classmethod
    def from_plan(cls, lay: Layer, device: torch.device, shapes: dict[str, tuple[int, ...]],
                  strategy: Strategy = DEFAULT) -> FixedLayer:
        """The layer's constants on ``device`` and its connections (:func:`layer_conns`; ``shapes``: every
        unit's shape, for the convolutions)."""
        def col(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(a, dtype=np.float64).reshape(-1)).to(device)

        def uniform_or_col(a: np.ndarray) -> torch.Tensor | float:
            return float(a[0]) if np.all(a == a[0]) else col(a)

        def col_or_none(a: np.ndarray) -> torch.Tensor | None:
            return col(a) if np.any(a) else None

        n = Neuron.from_plan(lay)
        return cls(lay.name, tuple(lay.shape), bool(lay.spiking), uniform_or_col(n.u_factor),
                   uniform_or_col(n.v_factor), col(n.vth), col_or_none(n.bias), col_or_none(n.b0),
                   col_or_none(n.b1), col(n.v0), float(np.abs(n.bias).max(initial=0)),
                   float(np.abs(n.b0).max(initial=0) + np.abs(n.b1).max(initial=0)),
                   layer_conns(lay, device, shapes, strategy))


def layer_conns(lay: Layer, device: torch.device, shapes: dict[str, tuple[int, ...]],
                strategy: Strategy = DEFAULT) -> list[FixedConn]:
    """The layer's connections; where the strategy is structured, sign-split parts merged, shared weights
    found and convolutions recovered from the units' ``shapes``."""
    conns = [FixedConn.from_plan(c, device, strategy) for c in lay.conns]
    if not strategy.structured:
        return conns
    conns = share_weights(merge_conns(conns))
    for c in conns:
        c.use_conv(shapes, tuple(lay.shape))
    return conns
