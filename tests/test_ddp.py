"""Two CPU processes on gloo compute what one process computes on the same global batch.

The model keeps its BatchNorm and the key shuffle. The single-process reference runs with ``bn_splits=2``
(BatchNorm statistics over two sub-batches, as two ranks have) and draws the same key permutation (same
seed; under DDP rank 0 draws it and broadcasts it), so the two runs are the same computation: losses, queue,
queue pointer and weights after three SGD steps must agree to float64 rounding.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuromoco.train.moco import MoCo
from neuromoco.train.models.deployable import DeployableCNN

STEPS, BATCH, T = 3, 8, 2


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(STEPS, 2, T, BATCH, 2, 8, 8, generator=g) < 0.3).double() * 2.0
    return x[:, 0], x[:, 1]


def _model(bn_splits: int) -> MoCo:
    torch.manual_seed(0)
    enc = DeployableCNN((2, 8, 8), channels=(4, 4))
    return MoCo(enc, dim=8, hidden=16, queue_size=20, momentum=0.9, temperature=0.5, mix_lambda=0.5,
                bn_splits=bn_splits).double()


def _train(moco: MoCo, xq: torch.Tensor, xk: torch.Tensor, rank: int = 0, world: int = 1) -> list[float]:
    opt = torch.optim.SGD(moco.encoder_q.parameters(), lr=0.5)
    losses = []
    b = BATCH // world
    for s in range(STEPS):
        torch.manual_seed(100 + s)  # the key permutation
        loss, _ = moco(xq[s][:, rank * b:(rank + 1) * b], xk[s][:, rank * b:(rank + 1) * b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        val = loss.detach().clone()
        if world > 1:
            dist.all_reduce(val)
            val /= world
        losses.append(float(val))
    return losses


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        moco = _model(bn_splits=1)
        moco.wrap_ddp()
        xq, xk = _data()
        losses = _train(moco, xq, xk, rank, world)
        if rank == 0:
            torch.save({"losses": losses, "queue": moco.queue.clone(), "ptr": int(moco.queue_ptr),
                        "state": {k: v.clone() for k, v in moco.state_dict().items()}}, out)
    finally:
        # both ranks finish their work before either tears gloo down: a rank that leaves while the other still
        # talks to it made gloo abort the process ("terminate called without an active exception") on busy machines
        dist.barrier()
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_two_process_gloo_matches_single_process(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)

    moco = _model(bn_splits=2)
    xq, xk = _data()
    losses = _train(moco, xq, xk)

    assert ddp["losses"] == pytest.approx(losses, rel=1e-9, abs=1e-12)
    assert ddp["ptr"] == int(moco.queue_ptr) == (STEPS * BATCH) % 20
    assert torch.allclose(ddp["queue"], moco.queue, rtol=1e-9, atol=1e-12)
    for k, v in moco.state_dict().items():
        if "running_" in k or "num_batches" in k:
            continue  # BN running statistics: DDP keeps rank 0's; they do not enter training-mode forward passes
        assert torch.allclose(ddp["state"][k], v, rtol=1e-8, atol=1e-10), k
    assert len({round(v, 6) for v in losses}) == STEPS  # the steps really changed something
