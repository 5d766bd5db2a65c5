"""MoCo mechanics: momentum update by hand, queue wrap-around, gradients to the query encoder only, BN shuffle."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from neuromoco.train.moco import MoCo
from neuromoco.train.models.deployable import DeployableCNN


class TinyEncoder(nn.Module):
    feature_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):  # [T,B,C,H,W] -> [T,B,3]
        return self.fc(x.flatten(2)[..., :4])


def tiny_moco(**kw) -> MoCo:
    kw = {"dim": 2, "hidden": 5, "queue_size": 5, "momentum": 0.9, **kw}
    return MoCo(TinyEncoder(), **kw)


def test_momentum_update_by_hand():
    moco = tiny_moco(momentum=0.75)
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.fill_(2.0)
        for p in moco.encoder_k.parameters():
            p.fill_(-1.0)
    moco.momentum_update()
    for p in moco.encoder_k.parameters():  # 0.75 * -1 + 0.25 * 2 = -0.25
        assert torch.allclose(p, torch.full_like(p, -0.25))
    moco.momentum_update()  # 0.75 * -0.25 + 0.25 * 2 = 0.3125
    for p in moco.encoder_k.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.3125))
    for p in moco.encoder_q.parameters():  # the query encoder is untouched
        assert torch.allclose(p, torch.full_like(p, 2.0))


def test_queue_enqueue_dequeue_wraps_around():
    moco = tiny_moco(queue_size=5)
    keys = [torch.full((2, 2), float(i)) for i in (1, 2, 3, 4)]
    moco.enqueue(keys[0])
    assert int(moco.queue_ptr) == 2 and moco.queue[:2].eq(1).all()
    moco.enqueue(keys[1])
    moco.enqueue(keys[2])  # slots 4, then wraps to 0
    assert int(moco.queue_ptr) == 1
    assert moco.queue[:, 0].tolist() == [3, 1, 2, 2, 3]
    moco.enqueue(keys[3])  # slots 1, 2: the oldest (the 1s, then a 2) are dequeued
    assert int(moco.queue_ptr) == 3
    assert moco.queue[:, 0].tolist() == [3, 4, 4, 2, 3]
    with pytest.raises(ValueError):
        moco.enqueue(torch.zeros(6, 2))


def test_forward_enqueues_normalised_mean_keys():
    moco = tiny_moco(queue_size=8)
    x = torch.randn(3, 4, 1, 2, 2)
    moco(x, x)
    assert int(moco.queue_ptr) == 4
    assert torch.allclose(moco.queue[:4].norm(dim=1), torch.ones(4))


def test_gradient_reaches_query_encoder_only():
    moco = MoCo(DeployableCNN((2, 12, 12), channels=(4, 4)), queue_size=16, momentum=0.9)
    x = (torch.rand(3, 4, 2, 12, 12) < 0.3).float() * 3
    loss, stats = moco(x, x.flip(-1))
    loss.backward()
    q_grads = [p.grad for p in moco.encoder_q.parameters()]
    assert all(g is not None for g in q_grads) and any(g.abs().sum() > 0 for g in q_grads)
    assert all(not p.requires_grad and p.grad is None for p in moco.encoder_k.parameters())
    assert moco.queue.grad is None and 0.0 <= float(stats["acc"]) <= 1.0


def test_key_shuffle_is_undone():
    """With one BatchNorm group the shuffle cannot change the keys: they come back in batch order."""
    torch.manual_seed(0)
    moco = MoCo(DeployableCNN((2, 12, 12), channels=(4,)), queue_size=16)
    x = (torch.rand(2, 6, 2, 12, 12) < 0.3).float() * 3
    plain = copy.deepcopy(moco)
    plain.shuffle_bn = False
    assert torch.allclose(moco._keys(x), plain._keys(x), atol=1e-5)


def test_bn_splits_run_sub_batches_independently():
    torch.manual_seed(0)
    moco = MoCo(DeployableCNN((2, 12, 12), channels=(4,)), queue_size=16, bn_splits=2, shuffle_bn=False)
    x = (torch.rand(2, 6, 2, 12, 12) < 0.3).float() * 3
    whole = moco.encoder_q(x)
    moco.encoder_q.splits = 1
    halves = torch.cat([moco.encoder_q(x[:, :3]), moco.encoder_q(x[:, 3:])], dim=1)
    assert torch.allclose(whole, halves)


def test_projection_head_batchnorm_removes_the_common_direction_of_spike_features():
    """Sparse non-negative spike counts through a fresh plain head land in a narrow cone (the common mode the
    contrastive loss exploits instead of learning); the BatchNorm head (the default) spreads them out."""
    from neuromoco.train.moco.builder import Projector
    from neuromoco.train.moco.loss import temporal_features

    torch.manual_seed(0)
    spikes = (torch.rand(4, 32, 512) < 0.05).float() * torch.randint(1, 5, (4, 32, 512)).float()

    def mean_cosine_between_samples(head) -> float:
        _, z = temporal_features(head.train()(spikes))
        c = z @ z.T
        return float((c.sum() - c.diag().sum()) / (c.numel() - c.shape[0]))

    assert mean_cosine_between_samples(Projector(512, 512, 128, batch_norm=False)) > 0.5
    assert abs(mean_cosine_between_samples(Projector(512, 512, 128))) < 0.1
    assert Projector(512, 64, 16)(spikes).shape == (4, 32, 16)


@pytest.mark.parametrize("bn_splits", [1, 2])
def test_zero_encoder_features_are_reported_and_warned(bn_splits):
    """An encoder whose features are all zero (no spike reaches its output) ties every logit: the step reports
    the fraction of such samples and the epoch line warns (issue 27)."""
    from neuromoco.train.engine.pretraining import zero_features_warning

    moco = tiny_moco(queue_size=8, bn_splits=bn_splits, shuffle_bn=False)
    x = torch.randn(3, 4, 1, 2, 2)
    _, mets = moco(x, x)
    assert float(mets["zero_features"]) == 0.0
    with torch.no_grad():
        moco.encoder_q.backbone.fc.weight.zero_()
        moco.encoder_q.backbone.fc.bias.zero_()
    _, mets = moco(x, x)
    assert float(mets["zero_features"]) == 1.0
    assert "features were zero for every sample" in zero_features_warning({"zero_features": 1.0})
    assert zero_features_warning({"zero_features": 0.5}) == ""
