"""torchrun / DistributedDataParallel support: process group from the environment, collectives, helpers.

Under ``torchrun`` (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) the process
group is initialised with NCCL on CUDA and gloo on CPU; without it every helper degrades to the single
process case, so the same code runs both ways.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group if launched by torchrun (and not yet joined); return this process's place."""
    if is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def concat_all_gather(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """All ranks' ``x`` concatenated along ``dim`` in rank order (no gradient), as MoCo's ``concat_all_gather``."""
    if not is_initialized() or world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=dim)


def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    if is_initialized() and world_size() > 1:
        dist.broadcast(x, src=src)
    return x


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks, in place. NCCL reduces only CUDA tensors, so a CPU tensor (epoch totals)
    takes a round trip through this rank's GPU there; gloo reduces it where it is."""
    if is_initialized() and world_size() > 1:
        if x.device.type != "cuda" and dist.get_backend() == "nccl":
            on_gpu = x.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
            x.copy_(on_gpu)
        else:
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x
