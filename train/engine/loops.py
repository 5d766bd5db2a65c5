"""Training and evaluation loops shared by every command: optimiser, schedule, loaders, epochs, progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sized
from typing import Any, TypeVar, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler, Subset

from neuromoco.errors import UserError
from neuromoco.train.engine import distributed as du
from neuromoco.train.engine.progress import Progress
from neuromoco.train.engine.run_log import MetricsLogger
from neuromoco.train.engine.runtime import Runtime
from neuromoco.train.engine.seeding import epoch_seed, loader_generator, seed_worker

T = TypeVar("T")
StepFn = Callable[[Any], tuple[torch.Tensor, dict[str, torch.Tensor], int]]


# -- optimisation ---------------------------------------------------------------------------------------
def build_optimizer(params: Iterable[nn.Parameter], name: str, lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD (momentum, as MoCo) or AdamW; weight decay only on weights of rank >= 2 (not on BN, biases)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise UserError(f"unknown optimizer {name!r}; choose sgd or adamw")


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to zero over ``total_steps`` optimiser steps (stepped per batch)."""
    total, warm = max(1, int(total_steps)), max(0, int(warmup_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# -- data ------------------------------------------------------------------------------------------------
def train_loader(dataset: Dataset, batch_size: int, *, seed: int, epoch: int, workers: int, rt: Runtime,
                 drop_last: bool) -> DataLoader:
    """Shuffled loader for one epoch; its order depends only on (seed, epoch), sharded by rank under DDP."""
    sampler: Sampler[int]
    if rt.dist.enabled:
        sampler = DistributedSampler(dataset, num_replicas=rt.dist.world_size, rank=rt.dist.rank, shuffle=True,
                                     seed=seed, drop_last=drop_last)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(_sized(dataset), generator=loader_generator(epoch_seed(seed, epoch)))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=workers,
                      worker_init_fn=seed_worker, generator=loader_generator(epoch_seed(seed, epoch, rt.dist.rank)),
                      pin_memory=rt.device.type == "cuda", persistent_workers=False)


def eval_loader(dataset: Dataset, batch_size: int, *, workers: int, rt: Runtime) -> DataLoader:
    """Every sample exactly once over all ranks (rank r takes samples r, r+W, ...; no padding)."""
    if rt.dist.enabled:
        dataset = Subset(dataset, list(range(rt.dist.rank, len(_sized(dataset)), rt.dist.world_size)))
    return DataLoader(dataset, batch_size=batch_size, sampler=SequentialSampler(_sized(dataset)),
                      num_workers=workers, pin_memory=rt.device.type == "cuda")


def _sized(dataset: Dataset) -> Sized:
    """``dataset`` as what it is here, a map-style dataset with a length (torch's ``Dataset`` declares none)."""
    return cast(Sized, dataset)


def to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    return x


def time_major(frames: torch.Tensor) -> torch.Tensor:
    """Loader batches are ``[B, T, C, H, W]``; the models take ``[T, B, C, H, W]``."""
    return frames.transpose(0, 1).contiguous()


# -- loops -----------------------------------------------------------------------------------------------
def progress(loader: Iterable[T], desc: str, rt: Runtime, unit: str = "step") -> Progress[T]:
    """``loader`` with its progress on stderr where ``rt`` shows it (main rank, no ``--no-progress``): a bar on
    a terminal, else a line every ``--log-every`` steps (:mod:`neuromoco.train.engine.progress`)."""
    return Progress(loader, desc, show=rt.shows_progress, every=rt.log_every, unit=unit)


def optimise(loss: torch.Tensor, optimizer: torch.optim.Optimizer, rt: Runtime, params: list[nn.Parameter] | None,
             grad_clip: float) -> None:
    """One optimiser step on ``loss``: backward (through the AMP scaler when on), gradient clipping, step."""
    optimizer.zero_grad(set_to_none=True)
    params = params or []
    clip = grad_clip > 0 and len(params) > 0
    if rt.scaler is not None and rt.scaler.is_enabled():
        rt.scaler.scale(loss).backward()
        if clip:
            rt.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, grad_clip)
        rt.scaler.step(optimizer)
        rt.scaler.update()
    else:
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()


def train_epoch(step_fn: StepFn, loader: DataLoader, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None, rt: Runtime, *, epoch: int, step: int,
                logger: MetricsLogger | None, desc: str, params: list[nn.Parameter] | None = None,
                grad_clip: float = 0.0, log_every: int = 10) -> tuple[dict[str, float], int]:
    """One epoch of ``step_fn`` (which returns ``(loss, metrics, n_samples)``); returns (summary, step)."""
    sums: dict[str, float] = {}
    seen = 0
    t0 = time.perf_counter()
    bar = progress(loader, desc, rt)
    for batch in bar:
        with rt.autocast():
            loss, mets, n = step_fn(batch)
        if not torch.isfinite(loss.detach()):
            raise UserError(f"the loss became {loss.item()} at step {step + 1} (epoch {epoch}); "
                            "lower --lr, or train in float32 (--amp off)")
        optimise(loss, optimizer, rt, params, grad_clip)
        if scheduler is not None:
            scheduler.step()
        step += 1
        seen += n
        vals = {"loss": float(loss.detach())} | {k: float(v) for k, v in mets.items()}
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + v * n
        rate = seen * rt.dist.world_size / max(1e-9, time.perf_counter() - t0)
        bar.done(n * rt.dist.world_size, loss=sums["loss"] / seen)
        if logger is not None and (step % log_every == 0):
            logger.log("step", step, epoch, lr=optimizer.param_groups[0]["lr"], samples_per_s=rate, **vals)
    bar.close()
    elapsed = time.perf_counter() - t0
    if seen == 0:
        raise UserError("an epoch saw no batch: the training set is smaller than --batch-size "
                        "(batches are full-sized; lower --batch-size)")
    tot = torch.tensor([seen] + [sums[k] for k in sorted(sums)], dtype=torch.float64)
    tot = du.all_reduce_sum(tot)
    summary = {k: float(v / tot[0]) for k, v in zip(sorted(sums), tot[1:], strict=True)}
    summary.update(samples=int(tot[0]), seconds=elapsed, samples_per_s=float(tot[0]) / max(1e-9, elapsed),
                   lr=optimizer.param_groups[0]["lr"])
    return summary, step


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, rt: Runtime, desc: str = "eval") -> dict[str, float]:
    """Top-1 accuracy and cross-entropy of a classifier over the loader (all ranks together)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    bar = progress(loader, desc, rt, unit="batch")
    for frames, labels in bar:
        frames, labels = time_major(frames.to(rt.device)), labels.to(rt.device)
        with rt.autocast():
            logits = model(frames)
        loss_sum += float(nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += int((logits.argmax(-1) == labels).sum())
        total += labels.numel()
        bar.done(labels.numel() * rt.dist.world_size, acc=correct / total)
    bar.close()
    model.train(was_training)
    t = du.all_reduce_sum(torch.tensor([correct, total, loss_sum], dtype=torch.float64))
    n = max(1.0, float(t[1]))
    return {"top1": float(t[0]) / n, "loss": float(t[2]) / n, "n": int(t[1])}
