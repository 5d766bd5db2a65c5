"""MixInfoNCE against a hand computation in numpy, and its reductions at the mixing extremes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromoco.train.moco.loss import InfoNCE, MixInfoNCE, contrastive_logits, temporal_features


def _norm(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _l(q: np.ndarray, k: np.ndarray, queue: np.ndarray, tau: float) -> float:
    """-log(exp(q.k/tau) / (exp(q.k/tau) + sum_j exp(q.n_j/tau))) for one query, written out."""
    pos = np.exp(q @ k / tau)
    neg = np.exp(queue @ q / tau).sum()
    return float(-np.log(pos / (pos + neg)))


def _hand(q: np.ndarray, k: np.ndarray, queue: np.ndarray, tau: float, lam: float) -> tuple[float, float, float]:
    """(mix, L_mean, L_step) for raw projections q, k [T, B, D] as NEUROMOCO.md states them."""
    t, b, _ = q.shape
    qt, kt = _norm(q), _norm(k)
    qbar, kbar = _norm(qt.mean(0)), _norm(kt.mean(0))
    l_mean = np.mean([_l(qbar[i], kbar[i], queue, tau) for i in range(b)])
    l_step = np.mean([np.mean([_l(qt[s, i], kt[s, i], queue, tau) for s in range(t)]) for i in range(b)])
    return lam * l_mean + (1 - lam) * l_step, l_mean, l_step


@pytest.fixture
def tiny():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(3, 2, 4))  # T=3, B=2, D=4
    k = rng.normal(size=(3, 2, 4))
    queue = _norm(rng.normal(size=(5, 4)))  # K=5
    return q, k, queue


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_mix_infonce_matches_hand_computation(tiny, lam, tau):
    q, k, queue = tiny
    expected, _, _ = _hand(q, k, queue, tau, lam)
    loss, logits = MixInfoNCE(tau, lam)(*(torch.tensor(a, dtype=torch.float64) for a in (q, k, queue)))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert logits.shape == (2, 6)


def test_extremes_reduce_to_infonce_on_mean_and_to_per_step(tiny):
    q, k, queue = (torch.tensor(a, dtype=torch.float64) for a in tiny)
    _, l_mean, l_step = _hand(*tiny, 0.2, 0.5)
    assert MixInfoNCE(0.2, 1.0)(q, k, queue)[0].item() == pytest.approx(l_mean, rel=1e-10)
    assert InfoNCE(0.2)(q, k, queue)[0].item() == pytest.approx(l_mean, rel=1e-10)
    assert MixInfoNCE(0.2, 0.0)(q, k, queue)[0].item() == pytest.approx(l_step, rel=1e-10)
    # InfoNCE on the mean is the same whatever T's per-step detail, as long as the normalised mean agrees
    q1 = q[:1]
    k1 = k[:1]
    assert MixInfoNCE(0.2, 0.0)(q1, k1, queue)[0].item() == pytest.approx(
        MixInfoNCE(0.2, 1.0)(q1, k1, queue)[0].item(), rel=1e-10)  # T = 1: both are the same loss


def test_mix_logits_variant_by_hand(tiny):
    q, k, queue = tiny
    tau, lam = 0.2, 0.5
    qt, kt = _norm(q), _norm(k)
    qbar, kbar = _norm(qt.mean(0)), _norm(kt.mean(0))

    def z(a, b):  # [.., 1+K]
        return np.concatenate([(a * b).sum(-1, keepdims=True), a @ queue.T], -1) / tau

    mixed = lam * z(qbar, kbar) + (1 - lam) * z(qt, kt).mean(0)
    expected = np.mean(-mixed[:, 0] + np.log(np.exp(mixed).sum(-1)))
    loss, _ = MixInfoNCE(tau, lam, mode="logits")(*(torch.tensor(a, dtype=torch.float64) for a in tiny))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    # at lambda = 1 both modes are plain InfoNCE on the mean
    a = MixInfoNCE(tau, 1.0, mode="logits")(*(torch.tensor(x, dtype=torch.float64) for x in tiny))[0]
    b = MixInfoNCE(tau, 1.0, mode="loss")(*(torch.tensor(x, dtype=torch.float64) for x in tiny))[0]
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_helpers_and_bad_hyper_parameters():
    z = torch.randn(4, 3, 8)
    steps, mean = temporal_features(z)
    assert torch.allclose(steps.norm(dim=-1), torch.ones(4, 3)) and torch.allclose(mean.norm(dim=-1), torch.ones(3))
    logits = contrastive_logits(mean, mean, torch.eye(8)[:5], 0.5)
    assert logits.shape == (3, 6) and torch.allclose(logits[:, 0], torch.full((3,), 2.0))
    for bad in ({"mix_lambda": 1.5}, {"temperature": 0.0}, {"mode": "other"}):
        with pytest.raises(ValueError):
            MixInfoNCE(**bad)
