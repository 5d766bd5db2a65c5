"""MixInfoNCE (NeuroMoCo's temporal contrastive loss) and plain InfoNCE on time-averaged features.

With ``q_t``, ``k_t`` the L2-normalised projections of query and key at time step t, ``q̄``, ``k̄`` the
L2-normalised means of those over T, a queue of K negative keys ``n_j`` (mean keys, normalised) and a
temperature τ::

    l(q, k+)   = -log( exp(q·k+/τ) / (exp(q·k+/τ) + Σ_j exp(q·n_j/τ)) )
    L_mean     = l(q̄, k̄)
    L_step     = (1/T) Σ_t l(q_t, k_t)           each step against the same queue
    MixInfoNCE = λ · L_mean + (1 − λ) · L_step    (mode "loss", the default)

averaged over the batch. Mode ``"logits"`` mixes the logits instead of the losses:
``l = CE(λ·z̄ + (1−λ)·(1/T)Σ_t z_t)`` with ``z`` the vector ``[q·k+, q·n_1..K]/τ``. λ = 1 is plain InfoNCE
on the time-averaged features (the ablation baseline; both modes agree there), λ = 0 the per-step loss.
The formula is the project's reading of the paper's description (see docs/training.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuromoco.train.moco.hparams import unit_interval


def temporal_features(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step projections ``z [T, B, D]`` -> (normalised steps ``[T,B,D]``, normalised mean ``[B,D]``)."""
    steps = F.normalize(z, dim=-1)
    return steps, F.normalize(steps.mean(0), dim=-1)


def contrastive_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[..., 1 + K]`` logits: the positive ``q·k`` first, then ``q·n_j`` for the queue ``[K, D]``, over τ."""
    pos = (q * k).sum(-1, keepdim=True)
    neg = q @ queue.t()
    return torch.cat([pos, neg], dim=-1) / temperature


def _positive_first_ce(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.reshape(-1, logits.shape[-1])
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the log-sum-exp in full precision under autocast
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


class MixInfoNCE(nn.Module):
    """``forward(q, k, queue)`` with raw per-step projections ``q, k [T,B,D]`` and the queue ``[K,D]``.

    Returns ``(loss, logits_mean)``; ``logits_mean [B, 1+K]`` are the time-averaged logits (positive first),
    for the contrastive accuracy. ``k`` should carry no gradient (it comes from the momentum encoder).
    """

    def __init__(self, temperature: float = 0.2, mix_lambda: float = 0.5, mode: str = "loss") -> None:
        super().__init__()
        mix_lambda = unit_interval("--mix-lambda", mix_lambda)
        if mode not in ("loss", "logits"):
            raise ValueError(f"mode must be 'loss' or 'logits', got {mode!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.mix_lambda, self.mode = float(temperature), float(mix_lambda), mode

    def forward(self, q: torch.Tensor, k: torch.Tensor,
                queue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam, tau = self.mix_lambda, self.temperature
        q_t, q_bar = temporal_features(q)
        k_t, k_bar = temporal_features(k)
        queue = queue.to(q_t.dtype)
        z_mean = contrastive_logits(q_bar, k_bar, queue, tau)  # [B, 1+K]
        if lam == 1.0:
            return _positive_first_ce(z_mean), z_mean
        z_step = contrastive_logits(q_t, k_t, queue, tau)  # [T, B, 1+K]
        if self.mode == "logits":
            return _positive_first_ce(lam * z_mean + (1.0 - lam) * z_step.mean(0)), z_mean
        loss_step = _positive_first_ce(z_step)  # mean over T and B = (1/T) Σ_t mean_B l(q_t, k_t)
        if lam == 0.0:
            return loss_step, z_mean
        return lam * _positive_first_ce(z_mean) + (1.0 - lam) * loss_step, z_mean

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, mix_lambda={self.mix_lambda}, mode={self.mode!r}"


class InfoNCE(MixInfoNCE):
    """Plain InfoNCE on time-averaged features (MixInfoNCE with λ = 1)."""

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__(temperature=temperature, mix_lambda=1.0)
