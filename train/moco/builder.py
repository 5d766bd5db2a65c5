"""NeuroMoCo: momentum contrast for spiking encoders, in the manner of facebookresearch/moco's ``builder.py``.

* Query encoder = spiking backbone + projection head ``Linear(d, 512) - BN - ReLU - Linear(512, 128) - BN``
  applied per time step (:class:`Projector`; ``proj_bn=False`` for MoCo v2's head without BatchNorm); the key
  encoder is a copy updated as an exponential moving average (``momentum_update``), never by gradients.
* A queue of K negative keys: the normalised *mean* keys k̄ of past batches, enqueued in batch order
  (all ranks' keys, in rank order, under DDP), overwriting the oldest with wrap-around.
* Shuffled BatchNorm for the key encoder: the key batch is permuted before the key encoder and restored after,
  so the samples a query's BatchNorm statistics come from differ from its key's. Under DDP the permutation
  runs across all ranks' samples (MoCo's ``_batch_shuffle_ddp``). In one process, ``bn_splits = n`` runs both
  encoders on n sub-batches of B/n with their own BatchNorm statistics (MoCo's SplitBatchNorm, here by
  chunked forward passes), which is exactly what n DDP ranks compute.
* Loss: :class:`~neuromoco.train.moco.loss.MixInfoNCE` on the per-step projections.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from neuromoco.train.engine import distributed as du
from neuromoco.train.moco.hparams import unit_interval
from neuromoco.train.moco.loss import MixInfoNCE, temporal_features


class Projector(nn.Module):
    """The projection head on every time step of ``[T, B, d]``.

    ``batch_norm=True`` (default): ``Linear - BN - ReLU - Linear - BN(affine=False)``, MoCo v3's head, with the
    statistics over all steps and samples of the (sub-)batch. ``False``: MoCo v2's ``Linear - ReLU - Linear``.

    Why BatchNorm: spiking features are non-negative, mostly-zero spike counts, so a randomly initialised
    plain head maps every sample to nearly the same direction (cosine 0.98 between different samples). The
    contrastive loss then falls fastest by moving the queries away from the common direction of the keys: the
    positive similarity went negative (-0.8 with m = 0.999) or the encoder collapsed (m <= 0.9), and
    pre-training did not help the downstream task. Centring the projections removes that common mode: on the
    embedded data the loss falls steadily, the positive similarity rises, and the 10 %-label linear probe
    beats supervised training (see docs/training.md).
    """

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 128, batch_norm: bool = True) -> None:
        super().__init__()
        if batch_norm:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                                     nn.ReLU(inplace=True), nn.Linear(hidden, out_dim, bias=False),
                                     nn.BatchNorm1d(out_dim, affine=False))
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


class ProjectedEncoder(nn.Module):
    """Backbone then projector; with ``splits > 1`` the batch runs as that many independent sub-batches."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, splits: int = 1) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.splits = int(splits)
        #: the last forward's fraction of samples whose backbone features were all zero (no spike reached the
        #: encoder's output: the contrastive figures then say nothing)
        self.zero_features = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T,B,C,H,W] -> [T,B,out]
        if self.splits > 1 and x.shape[1] % self.splits:
            raise ValueError(f"batch of {x.shape[1]} does not split into {self.splits} BatchNorm groups")
        outs, zero = [], []
        for chunk in (x.chunk(self.splits, dim=1) if self.splits > 1 else (x,)):
            h = self.backbone(chunk)
            zero.append(h.detach().flatten(2).abs().sum(dim=(0, 2)) == 0)
            outs.append(self.projector(h))
        self.zero_features = torch.cat(zero).float().mean()
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


def infer_feature_dim(backbone: nn.Module, input_shape: Sequence[int], time_steps: int = 2) -> int:
    """The feature size ``D`` of ``backbone`` (``[T, B, *input_shape] -> [T, B, D]``), found by a dry run on
    zeros: a backbone of one's own need not declare it. Run in evaluation mode without gradients, so that no
    BatchNorm statistic or neuron state moves; a wrong output shape is one clear ``ValueError``."""
    p = next(backbone.parameters(), None)
    x = torch.zeros(int(time_steps), 2, *(int(v) for v in input_shape),
                    device=p.device if p is not None else "cpu")
    modes = {m: m.training for m in backbone.modules()}
    backbone.eval()
    try:
        with torch.no_grad():
            y = backbone(x)
    finally:
        for m, training in modes.items():
            m.train(training)
    if not isinstance(y, torch.Tensor) or y.dim() != 3 or tuple(y.shape[:2]) != tuple(x.shape[:2]):
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"the encoder must map [T, B, {', '.join(map(str, input_shape))}] to [T, B, D] features; "
                         f"for input {list(x.shape)} it gave {got} (an encoder stepping one time step at a time "
                         "goes through neuromoco.train.api.StepwiseEncoder)")
    return int(y.shape[-1])


class MoCo(nn.Module):
    """NeuroMoCo around a spiking ``backbone`` (``[T,B,C,H,W] -> [T,B,feature_dim]``).

    feature_dim: the backbone's ``D`` (default: its ``feature_dim`` attribute, else a dry run on frames of
    ``input_shape`` ``[C, H, W]``, :func:`infer_feature_dim`); dim: projection size (128); hidden: projection
    hidden size (512); queue_size: negatives K (4096); momentum: key encoder EMA m (0.999); temperature: τ (0.2);
    mix_lambda, mix_mode: MixInfoNCE's λ and mode; shuffle_bn: shuffle the key batch for BatchNorm; bn_splits:
    BatchNorm groups in one process; proj_bn: BatchNorm in the projection head (True; see :class:`Projector`).
    """

    queue: torch.Tensor  # buffers (register_buffer in __init__)
    queue_ptr: torch.Tensor

    def __init__(self, backbone: nn.Module, feature_dim: int | None = None, dim: int = 128, hidden: int = 512,
                 queue_size: int = 4096, momentum: float = 0.999, temperature: float = 0.2,
                 mix_lambda: float = 0.5, mix_mode: str = "loss", shuffle_bn: bool = True,
                 bn_splits: int = 1, proj_bn: bool = True, input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        # the backbones of train/models carry their feature size as an int attribute; others are measured
        feature_dim = feature_dim or getattr(backbone, "feature_dim", None)
        if not feature_dim:
            if input_shape is None:
                raise ValueError("the encoder has no feature_dim attribute: give feature_dim=D, or input_shape="
                                 "[C, H, W] to find it by a dry run")
            feature_dim = infer_feature_dim(backbone, input_shape)
        self.feature_dim = int(cast(int, feature_dim))  # the backbone's D
        self.momentum = unit_interval("--momentum", momentum)
        self.shuffle_bn = bool(shuffle_bn)
        self.encoder_q = ProjectedEncoder(backbone, Projector(self.feature_dim, hidden, dim, proj_bn), bn_splits)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad_(False)
        self.criterion = MixInfoNCE(temperature, mix_lambda, mix_mode)
        self.register_buffer("queue", F.normalize(torch.randn(int(queue_size), dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.__dict__["_ddp_q"] = None  # a DistributedDataParallel view of encoder_q, kept out of state_dict

    # -- distributed -------------------------------------------------------------------------------------
    def wrap_ddp(self, **ddp_kwargs) -> None:
        """Run the query encoder through DistributedDataParallel (gradients all-reduced across ranks)."""
        self.__dict__["_ddp_q"] = nn.parallel.DistributedDataParallel(self.encoder_q, **ddp_kwargs)

    @property
    def query_forward(self) -> nn.Module:
        return self.__dict__["_ddp_q"] or self.encoder_q

    # -- MoCo mechanics ----------------------------------------------------------------------------------
    @torch.no_grad()
    def momentum_update(self) -> None:
        """``θ_k ← m·θ_k + (1 − m)·θ_q`` for every parameter (buffers such as BN statistics are the key's own)."""
        m = self.momentum
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):  # k: q's copy
            pk.mul_(m).add_(pq.detach(), alpha=1.0 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys [n, dim]`` (all ranks' under DDP) over the oldest entries, wrapping around the end."""
        keys = du.concat_all_gather(keys.detach().to(self.queue.dtype), dim=0)
        n, size = keys.shape[0], self.queue.shape[0]
        if n > size:
            raise ValueError(f"{n} keys per step exceed the queue of {size}; use a larger --queue-size")
        ptr = int(self.queue_ptr)
        idx = (ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys
        self.queue_ptr[0] = (ptr + n) % size

    @torch.no_grad()
    def _keys(self, im_k: torch.Tensor) -> torch.Tensor:
        """Key projections ``[T,B,dim]`` in the original batch order, computed on a shuffled batch."""
        if not self.shuffle_bn:
            return self.encoder_k(im_k)
        if du.world_size() > 1:  # MoCo's _batch_shuffle_ddp / _batch_unshuffle_ddp, batch on dim 1
            world, r = du.world_size(), du.rank()
            x_all = du.concat_all_gather(im_k, dim=1)
            perm = du.broadcast(torch.randperm(x_all.shape[1], device=im_k.device), src=0)
            k = self.encoder_k(x_all[:, perm.view(world, -1)[r]])
            k_all = du.concat_all_gather(k, dim=1)
            return k_all[:, torch.argsort(perm).view(world, -1)[r]]
        perm = torch.randperm(im_k.shape[1], device=im_k.device)
        k = self.encoder_k(im_k[:, perm])
        return k[:, torch.argsort(perm)]

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Two views ``[T,B,C,H,W]`` -> (loss, {"acc": contrastive top-1 of the positive, "pos": mean q̄·k̄})."""
        q = self.query_forward(im_q)
        with torch.no_grad():
            self.momentum_update()
            k = self._keys(im_k)
        loss, logits = self.criterion(q, k, self.queue.clone().detach())
        _, k_bar = temporal_features(k.float())
        self.enqueue(k_bar)
        with torch.no_grad():
            acc = (logits.argmax(-1) == 0).float().mean()
            pos = logits[:, 0].mean() * self.criterion.temperature
        return loss, {"acc": acc, "pos_sim": pos, "zero_features": self.encoder_q.zero_features}
