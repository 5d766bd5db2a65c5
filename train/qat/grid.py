"""One weight layer's Loihi grid and the fake-quantization onto it (straight-through gradients).

A grid is what the observer (:mod:`neuromoco.train.qat.observer`) reads off the compiled plan; the rounding
is the plan's own (:func:`~neuromoco.deploy.loihi.fixed_point.split_weights` and ``split_bias``), so training
and export share one definition of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Grid:
    """One weight layer's grid: ``w_q = split_weights(w * m, fixed=pieces) / m`` per output channel."""

    m: torch.Tensor  # [out] float64: integer units per unit of the (folded) weight
    pieces: list[tuple[int, bool]]  # (exponent, mixed sign) of each 8-bit piece
    top: float  # largest |w * m| on the grid (mantissa 254 or 255 at the first exponent)
    #: the plan's integer bias units per unit of the folded bias, over ``m`` (None: a host-side readout bias)
    bias_factor: float | None = None
    bias_own: torch.Tensor | None = None  # [out] the neuron's own bias (v_leak), in bias units over ``m``
    bias_split: bool = True  # a membrane bias (13-bit mantissa, 3-bit exponent) or a synaptic one (rounded)


def set_bias_grid(grid: Grid, membrane: bool, own: np.ndarray, gain: np.ndarray, in_scale: float) -> None:
    """Give ``grid`` the plan's bias grid for a neuron layer's weight layer: a constant input ``b`` of the layer
    arrives as ``gain * b`` volts per step; without a current filter (``membrane``) it joins the membrane bias
    (``64 * sigma`` units per volt, 13-bit mantissa and 3-bit exponent, after the neuron's ``own`` bias), else
    the synaptic bias (``sigma`` units per volt, rounded). With ``m = sigma * gain / in_scale`` per output
    channel, both are multiples of ``m``."""
    from neuromoco.deploy.loihi.fixed_point import ACT_SHIFT

    per_volt = float(1 << ACT_SHIFT) if membrane else 1.0
    grid.bias_factor = per_volt * in_scale
    grid.bias_own = torch.from_numpy(own / gain * per_volt * in_scale if membrane else np.zeros(len(gain)))
    grid.bias_split = membrane


def same_grid(a: Grid, b: Grid) -> bool:
    """Whether two grids round alike (the same pieces and, to 1e-12, the same scales)."""
    return a.pieces == b.pieces and a.m.shape == b.m.shape and bool(
        torch.allclose(a.m, b.m, rtol=1e-12, atol=0.0))


def clip_to_core(w: torch.Tensor, core: torch.Tensor | None, scale: str) -> torch.Tensor:
    """Per-neuron scales: every output channel of ``w`` clipped to its largest magnitude among ``core``, the
    kernel taps every output position sees (so that all neurons of a channel get one scale and one grid)."""
    if scale != "neuron" or core is None or bool(core.all()):
        return w
    lim = (w.detach().abs() * core.to(w.device)).flatten(1).amax(1)
    lim = lim.reshape(-1, *([1] * (w.dim() - 1)))
    return torch.maximum(torch.minimum(w, lim), -lim)


def fake_quant_weight(w: torch.Tensor, grid: Grid, shrink: np.ndarray | None = None) -> torch.Tensor:
    """``w`` on ``grid``: straight-through inside the range, no gradient where it clips; ``shrink``: per output
    channel, how many weights the export projection rounds down one step more (see :func:`shrunk`)."""
    from neuromoco.deploy.loihi.fixed_point import split_weights

    m = grid.m.to(device=w.device, dtype=torch.float64).reshape(-1, *([1] * (w.dim() - 1)))
    real = (w.double() * m).clamp(-grid.top, grid.top)
    with torch.no_grad():
        total, _ = split_weights(real.detach(), fixed=grid.pieces)
        if shrink is not None:
            total = shrunk(total, real.detach(), grid, shrink)
    wc = (real / m).to(w.dtype)
    return wc + ((total / m).to(w.dtype) - wc).detach()


def fake_quant_bias(b: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The folded bias ``b`` on ``grid``'s bias grid (straight-through); unchanged for a readout."""
    if grid.bias_factor is None:
        return b
    from neuromoco.deploy.loihi.fixed_point import split_bias

    assert grid.bias_own is not None, "a bias grid has the neuron's own bias"
    with torch.no_grad():
        m = grid.m.to(device=b.device, dtype=torch.float64)
        u, off = grid.bias_factor * m, grid.bias_own.to(m) * m
        x = b.detach().double() * u + off
        if grid.bias_split:
            mant, exp, _ = split_bias(x.cpu().numpy())
            q = torch.from_numpy(mant * 2.0 ** exp).to(x)
        else:
            q = torch.round(x)
        bq = ((q - off) / u).to(b.dtype)
    return b + (bq - b).detach()


def shrunk(total: torch.Tensor, real: torch.Tensor, grid: Grid, counts: np.ndarray) -> torch.Tensor:
    """``total`` with, per output channel ``c``, the ``counts[c]`` weights that rounded up the most in
    magnitude rounded down one grid step instead (never a channel's largest weight, never to zero): it
    lowers the channel's sum of magnitudes, which the plan's 24-bit state bound reads, by the least error."""
    if len(grid.pieces) != 1 or not counts.any():
        return total
    exp, mixed = grid.pieces[0]
    step = 2.0 ** exp * (2.0 if mixed else 1.0)
    out = total.clone().reshape(total.shape[0], -1)
    mag, wanted = out.abs(), real.reshape(total.shape[0], -1).abs()
    eligible = (mag >= 2 * step) & (mag < grid.top * (1 - 1e-12))
    score = torch.where(eligible, mag - wanted, torch.full_like(mag, -torch.inf))
    for c in np.flatnonzero(counts):
        k = int(min(counts[c], int(eligible[c].sum())))
        if k:
            idx = torch.topk(score[c], k).indices
            out[c, idx] -= torch.sign(out[c, idx]) * step
    return out.reshape(total.shape)
