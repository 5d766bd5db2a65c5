"""The one training loop that ``train pretrain``, ``finetune``, ``linear`` and ``supervised`` run: :func:`fit`.

:func:`fit` does what every training command does the same way, top to bottom: the runtime (device, AMP, DDP
rank) and its clean-up; the seeds (data, then model initialisation, then every epoch from ``(seed, epoch,
rank)``, so that a run resumed after epoch e-1 repeats epoch e bit for bit); optimiser and cosine schedule;
``--resume``; ``metrics.jsonl`` and TensorBoard; ``config.json``; the epoch loop; ``last.pt`` after every epoch
(atomic, resumable) and ``best.pt`` when an epoch improved; the barrier that keeps ranks in step. What a run
directory that already holds a run allows is :mod:`neuromoco.train.engine.run_dir`'s.

A :class:`Task` brings what differs between the commands, as values: its data (:class:`TaskData`), its model
(:class:`TaskModel`) and, once the run is set up (:class:`Run`), a :class:`Trainer` that trains and evaluates
one epoch at a time (:class:`Epoch`) and writes the run's summary at the end.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from neuromoco.errors import UserError
from neuromoco.train import __version__
from neuromoco.train.engine import distributed as du
from neuromoco.train.engine import loops
from neuromoco.train.engine.checkpoint import load_checkpoint, restore_training_state, save_checkpoint
from neuromoco.train.engine.cliargs import resolve_workers, write_config
from neuromoco.train.engine.config import OptimOptions, RunOptions
from neuromoco.train.engine.run_dir import clear, plan_start
from neuromoco.train.engine.run_log import MetricsLogger
from neuromoco.train.engine.runtime import Runtime, make_runtime
from neuromoco.train.engine.seeding import epoch_seed, seed_everything
from neuromoco.train.models.neurons import set_lif_impl


@dataclass(frozen=True)
class TaskData:
    """A task's datasets and what the checkpoint says about them."""

    train: Dataset
    test: Dataset | None  # None: no labelled test split (pre-training)
    input_shape: list[int]  # one frame, [C, H, W]
    record: dict[str, Any]  # the checkpoint's (and config.json's) ``data``
    num_classes: int = 0  # 0: not a classification task


@dataclass(frozen=True)
class TaskModel:
    """A task's model and what the checkpoint records about it (fixed for the whole run)."""

    module: nn.Module  # whose state dict is checkpointed (never DDP-wrapped)
    record: dict[str, Any]  # the checkpoint's ``model``: what rebuilds the architecture
    params: list[nn.Parameter]  # what the optimiser trains and --grad-clip clips
    lr_groups: list[tuple[list[nn.Parameter], float]]  # ``params`` by learning-rate factor (of --lr)
    steps_per_epoch: int  # optimiser steps per epoch (the schedule's length)
    fields: dict[str, Any]  # the task's own top-level checkpoint fields
    config: dict[str, Any]  # the task's own fields of config.json


class Epoch(NamedTuple):
    """What one epoch came to."""

    summary: dict[str, Any]  # its metrics.jsonl line and history entry
    line: str  # its line on stderr
    improved: bool  # the best epoch so far: best.pt is written too


class Trainer(Protocol):
    """A task's training once the run is set up (made by :meth:`Task.start`)."""

    def epoch(self, epoch: int) -> Epoch:
        """Train (and, when due, evaluate) one epoch, advancing ``Run.step``."""
        ...

    def metrics(self) -> dict[str, Any]:
        """The checkpoint's ``metrics``: the per-epoch history plus what the task adds."""
        ...

    def finish(self) -> None:
        """After the last epoch: the run's summary file and exports (main rank)."""
        ...


class Task(Protocol):
    """What a training command brings to :func:`fit`."""

    kind: str  # checkpoint kind: written, and required of a --resume checkpoint
    name: str  # command name: progress bars, messages
    batch_groups: int  # the global batch must divide into world size x this many groups

    def load_data(self, rt: Runtime) -> TaskData:
        """The datasets (called with the data's seed set)."""
        ...

    def build_model(self, rt: Runtime, data: TaskData) -> TaskModel:
        """The model on ``rt.device`` (called with the model's seed set)."""
        ...

    def check_resume(self, ckpt: dict[str, Any], model: TaskModel) -> None:
        """Refuse (:class:`UserError`) a --resume checkpoint of another model or mode."""
        ...

    def start(self, run: Run, resumed: dict[str, Any] | None) -> Trainer:
        """The last set-up before the first epoch (DDP wrapping, cached features, the task's state from the
        --resume checkpoint ``resumed``)."""
        ...


@dataclass
class Run:
    """One run as :func:`fit` set it up, which the task's trainer reads; ``step`` and ``history`` advance."""

    name: str
    rt: Runtime
    opts: RunOptions
    optim: OptimOptions
    data: TaskData
    model: TaskModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    logger: MetricsLogger
    local_batch: int  # this rank's share of --batch-size
    workers: int
    start_epoch: int = 1
    step: int = 0  # optimiser steps so far
    history: list[dict[str, Any]] = field(default_factory=list)  # one summary per epoch, resumed ones included

    @property
    def run_dir(self) -> Path:
        return self.opts.out

    def train_over(self, dataset: Dataset, step_fn: loops.StepFn, epoch: int) -> dict[str, Any]:
        """One epoch of ``step_fn`` over ``dataset``: shuffled by (seed, epoch), sharded by rank, full batches."""
        loader = loops.train_loader(dataset, self.local_batch, seed=self.opts.seed, epoch=epoch,
                                    workers=self.workers, rt=self.rt, drop_last=True)
        summary, self.step = loops.train_epoch(
            step_fn, loader, self.optimizer, self.scheduler, self.rt, epoch=epoch, step=self.step,
            logger=self.logger, desc=f"{self.name} {epoch}/{self.optim.epochs}", params=self.model.params,
            grad_clip=self.optim.grad_clip, log_every=self.opts.log_every)
        return summary


def fit(task: Task, opts: RunOptions, optim: OptimOptions) -> Run:
    """Train ``task`` from its first (or resumed) epoch through ``optim.epochs``; the finished run (its model
    and every epoch's summary: what ``neuromoco.train.api``'s results hold)."""
    start = plan_start(opts)  # a run directory holding a run is refused here, before anything loads
    resume = start.checkpoint
    resumed = load_checkpoint(resume, kind=task.kind) if resume is not None else None  # refused before set-up
    rt = make_runtime(opts.device, opts.amp, progress=opts.progress, lif_impl=opts.lif_impl,
                      log_every=opts.log_every)
    try:
        local_batch = _local_batch(optim.batch_size, rt.dist.world_size, task.batch_groups)
        workers = resolve_workers(opts.workers, rt.device.type)
        seed_everything(epoch_seed(opts.seed, 0, rt.dist.rank))
        data = task.load_data(rt)
        seed_everything(opts.seed)  # model initialisation depends on the seed only
        model = task.build_model(rt, data)
        set_lif_impl(model.module, rt.lif_impl)
        optimizer = _optimizer(model.lr_groups, optim)
        scheduler = loops.cosine_schedule(optimizer, model.steps_per_epoch * optim.epochs,
                                          round(optim.warmup_epochs * model.steps_per_epoch))
        start_epoch, step, history = 1, 0, []
        if resumed is not None:
            task.check_resume(resumed, model)
            start_epoch, step = restore_training_state(resumed, model.module, optimizer, scheduler, rt.scaler)
            history = list(resumed.get("metrics", {}).get("history", []))
            if rt.is_main:
                print(f"resuming {resume} after epoch {resumed['epoch']} (step {step})", file=sys.stderr)
        if rt.is_main and start.note:
            print(start.note, file=sys.stderr)
        if rt.is_main and start.replaces:
            clear(opts.out, start.replaces)  # --overwrite, once data and model have loaded
        logger = MetricsLogger(opts.out, enabled=rt.is_main, resume_epoch=start_epoch - 1 if start.continues else None,
                               resume_step=step if start.continues else None)
        if rt.is_main:
            print(f"runtime: {rt.device}, AMP {'on' if rt.amp else 'off'}, LIF {rt.lif_impl}", file=sys.stderr)
            write_config(opts, runtime=rt.describe(), input_shape=data.input_shape, data=data.record,
                         version=__version__, **model.config)
        run = Run(task.name, rt, opts, optim, data, model, optimizer, scheduler, logger, local_batch, workers,
                  start_epoch, step, history)
        trainer = task.start(run, resumed)
        del resumed  # its weights are in the model now
        for epoch in range(start_epoch, optim.epochs + 1):
            seed_everything(epoch_seed(opts.seed, epoch, rt.dist.rank))
            result = trainer.epoch(epoch)
            run.history.append({"epoch": epoch, **result.summary})
            logger.log("epoch", run.step, epoch, **result.summary)
            if rt.is_main:
                print(result.line, file=sys.stderr)
                save_checkpoint(opts.out / "last.pt", _payload(task.kind, run, trainer, epoch, resumable=True))
                if result.improved:
                    save_checkpoint(opts.out / "best.pt", _payload(task.kind, run, trainer, epoch, resumable=False))
            du.barrier()
        logger.close()
        trainer.finish()
        du.barrier()  # no rank tears the process group down while rank 0 still writes its reports
        return run
    finally:
        du.cleanup()


def _local_batch(batch_size: int, world: int, groups: int) -> int:
    """This rank's share of the global batch, which must divide into ``world`` ranks x ``groups``."""
    if batch_size % (world * groups):
        splits = f" x {groups} BatchNorm split(s)" if groups > 1 else ""
        raise UserError(f"--batch-size {batch_size} must divide into {world} rank(s){splits}")
    return batch_size // world


def _optimizer(groups: list[tuple[list[nn.Parameter], float]], optim: OptimOptions) -> torch.optim.Optimizer:
    """One optimiser over the parameter groups, each at ``--lr`` x its factor (the schedule scales all)."""
    opt: torch.optim.Optimizer | None = None
    for params, scale in groups:
        part = loops.build_optimizer(params, optim.optimizer, optim.lr * scale, optim.weight_decay)
        if opt is None:
            opt = part
        else:
            for group in part.param_groups:
                opt.add_param_group(group)
    if opt is None:
        raise UserError("nothing to train: the model has no trainable parameters")
    return opt


def _payload(kind: str, run: Run, trainer: Trainer, epoch: int, resumable: bool) -> dict[str, Any]:
    """The checkpoint after ``epoch``; ``resumable`` adds optimiser, schedule and AMP scaler state."""
    out = {"kind": kind, "version": __version__, "model": run.model.record, "data": run.data.record,
           "epoch": epoch, "step": run.step, "state_dict": run.model.module.state_dict(),
           **run.model.fields, "metrics": trainer.metrics()}
    if resumable:
        scaler = run.rt.scaler
        out.update(optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                   scaler=scaler.state_dict() if scaler is not None else {})
    return out
