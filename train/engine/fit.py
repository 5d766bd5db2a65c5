"""The one training skeleton that ``train pretrain``, ``finetune``, ``linear`` and ``supervised`` plug into.

:class:`Fit` owns what every training command does the same way: the runtime (device, AMP, DDP rank) and its
clean-up; the seeds (data, then model initialisation, then every epoch from ``(seed, epoch, rank)``, so that
a run resumed after epoch e-1 repeats epoch e bit for bit); optimiser and cosine schedule; ``--resume``;
``metrics.jsonl`` and TensorBoard; ``config.json``; the epoch loop; ``last.pt`` after every epoch (atomic,
resumable) and ``best.pt`` when the task says an epoch improved; the barrier that keeps ranks in step.
A :class:`Task` brings the rest: its data, model, one epoch's training, its checkpoint fields, the summary.
"""

from __future__ import annotations

import argparse
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from neuromoco.errors import UserError
from neuromoco.train import __version__
from neuromoco.train.engine import distributed as du
from neuromoco.train.engine import loops
from neuromoco.train.engine.checkpoint import load_checkpoint, restore_training_state, save_checkpoint
from neuromoco.train.engine.cliargs import resolve_workers, resume_path, write_config
from neuromoco.train.engine.logging import MetricsLogger
from neuromoco.train.engine.runtime import make_runtime
from neuromoco.train.engine.seeding import epoch_seed, seed_everything


class Task(ABC):
    """One training command's own parts. :meth:`build_data` sets ``model_name``, ``input_shape`` (one frame,
    ``[C, H, W]``) and ``data`` (the checkpoint's description of the data)."""

    kind: str  # checkpoint kind: written, and required of a --resume checkpoint
    name: str  # command name: progress bars, messages
    batch_groups: int = 1  # the global batch must divide into world size x this many groups

    model_name: str
    input_shape: list[int]
    data: dict[str, Any]

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def check(self) -> None:
        """Read and check the arguments before the runtime starts (cheap: fail before loading data)."""

    @abstractmethod
    def build_data(self, fit: Fit) -> None:
        """Datasets (seeded for the data)."""

    @abstractmethod
    def build_model(self, fit: Fit) -> tuple[nn.Module, list[nn.Parameter], int]:
        """(module whose state is checkpointed, parameters to optimise, optimiser steps per epoch)."""

    @abstractmethod
    def check_resume(self, ckpt: dict[str, Any]) -> None:
        """Refuse (:class:`UserError`) a --resume checkpoint of another model or mode."""

    def lr_scales(self, params: list[nn.Parameter]) -> list[tuple[list[nn.Parameter], float]]:
        """``params`` split into groups, each with its learning-rate factor (of ``--lr``); default one group."""
        return [(params, 1.0)]

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Take the task's own state (beyond weights, optimiser, history) from a --resume checkpoint."""

    def config(self) -> dict[str, Any]:
        """The task's fields of ``config.json``."""
        return {}

    def prepare(self, fit: Fit) -> None:
        """Last set-up before the first epoch (DDP wrapping, step function, cached features)."""

    @abstractmethod
    def epoch(self, fit: Fit, epoch: int, step: int) -> tuple[dict[str, Any], int]:
        """Train (and evaluate) one epoch from optimiser step ``step``; returns (summary, step)."""

    def improved(self, epoch: int, summary: dict[str, Any]) -> bool:
        """Whether this epoch is the best so far (then ``best.pt`` is written too)."""
        return False

    @abstractmethod
    def report(self, epoch: int, summary: dict[str, Any]) -> str:
        """The epoch's line on stderr."""

    def model_record(self) -> dict[str, Any]:
        """The checkpoint's ``model``: what rebuilds the architecture."""
        return {"name": self.model_name, "input_shape": list(self.input_shape), "kwargs": {}}

    def checkpoint_fields(self) -> dict[str, Any]:
        """The task's own top-level checkpoint fields."""
        return {}

    def metrics_record(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint's ``metrics`` (the per-epoch history, plus what the task adds)."""
        return {"history": history}

    @abstractmethod
    def finish(self, fit: Fit) -> None:
        """After the last epoch: the run's summary file (main rank), exports."""


class Fit:
    """Runs a :class:`Task`; during the run its attributes are the shared state tasks read: ``args``,
    ``rt``, ``run_dir``, ``local_batch``, ``workers``, ``model``, ``params``, ``optimizer``, ``scheduler``,
    ``logger``, ``step``, ``history`` and ``summary`` (the last epoch run in this invocation; empty if none)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.args = task.args
        self.run_dir = Path(self.args.out)

    def run(self) -> int:
        self.task.check()
        resume = resume_path(self.args)
        self.rt = make_runtime(self.args.device, self.args.amp)
        try:
            self._set_up(resume)
            self._epochs()
            self.logger.close()
            self.task.finish(self)
            du.barrier()  # no rank tears the process group down while rank 0 still writes its reports
            return 0
        finally:
            du.cleanup()

    def _set_up(self, resume: Path | None) -> None:
        args, task, rt = self.args, self.task, self.rt
        world, groups = rt.dist.world_size, task.batch_groups
        if args.batch_size % (world * groups):
            splits = f" x {groups} BatchNorm split(s)" if groups > 1 else ""
            raise UserError(f"--batch-size {args.batch_size} must divide into {world} rank(s){splits}")
        self.local_batch = args.batch_size // world
        self.workers = resolve_workers(args.workers, rt.device.type)
        seed_everything(epoch_seed(args.seed, 0, rt.dist.rank))
        task.build_data(self)
        seed_everything(args.seed)  # model initialisation depends on the seed only
        self.model, self.params, batches = task.build_model(self)
        self.optimizer = self._optimizer()
        self.scheduler = loops.cosine_schedule(self.optimizer, batches * args.epochs,
                                               round(args.warmup_epochs * batches))
        self.start_epoch, self.step, self.history, self.summary = 1, 0, [], {}
        if resume is not None:
            ckpt = load_checkpoint(resume, kind=task.kind)
            task.check_resume(ckpt)
            self.start_epoch, self.step = restore_training_state(ckpt, self.model, self.optimizer,
                                                                 self.scheduler, rt.scaler)
            self.history = list(ckpt.get("metrics", {}).get("history", []))
            task.restore(ckpt)
            if rt.is_main:
                print(f"resuming {resume} after epoch {ckpt['epoch']} (step {self.step})", file=sys.stderr)
        self.logger = MetricsLogger(self.run_dir, enabled=rt.is_main,
                                    resume_epoch=self.start_epoch - 1 if resume else None,
                                    resume_step=self.step if resume else None)
        if rt.is_main:
            write_config(self.run_dir, args, runtime=rt.describe(), input_shape=task.input_shape, data=task.data,
                         version=__version__, **task.config())
        task.prepare(self)

    def _optimizer(self) -> Any:
        """One optimiser over the task's parameter groups, each at ``--lr`` x its factor (the schedule scales all)."""
        args, opt = self.args, None
        for params, scale in self.task.lr_scales(self.params):
            part = loops.build_optimizer(params, args.optimizer, args.lr * scale, args.weight_decay)
            if opt is None:
                opt = part
            else:
                for group in part.param_groups:
                    opt.add_param_group(group)
        return opt

    def _epochs(self) -> None:
        args, task, rt = self.args, self.task, self.rt
        for epoch in range(self.start_epoch, args.epochs + 1):
            seed_everything(epoch_seed(args.seed, epoch, rt.dist.rank))
            self.summary, self.step = task.epoch(self, epoch, self.step)
            self.history.append({"epoch": epoch, **self.summary})
            self.logger.log("epoch", self.step, epoch, **self.summary)
            improved = task.improved(epoch, self.summary)
            if rt.is_main:
                print(task.report(epoch, self.summary), file=sys.stderr)
                save_checkpoint(self.run_dir / "last.pt", self.payload(epoch, resumable=True))
                if improved:
                    save_checkpoint(self.run_dir / "best.pt", self.payload(epoch, resumable=False))
            du.barrier()

    def payload(self, epoch: int, resumable: bool) -> dict[str, Any]:
        """The checkpoint after ``epoch``; ``resumable`` adds optimiser, schedule and AMP scaler state."""
        task, rt = self.task, self.rt
        out = {"kind": task.kind, "version": __version__, "model": task.model_record(), "data": task.data,
               "epoch": epoch, "step": self.step, "state_dict": self.model.state_dict(),
               **task.checkpoint_fields(), "metrics": task.metrics_record(self.history)}
        if resumable:
            out.update(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                       scaler=rt.scaler.state_dict() if rt.scaler is not None else {})
        return out

    def train_over(self, dataset: Dataset, step_fn: loops.StepFn, epoch: int, step: int) -> tuple[dict, int]:
        """One epoch of ``step_fn`` over ``dataset``: shuffled by (seed, epoch), sharded by rank, full batches."""
        args, rt = self.args, self.rt
        loader = loops.train_loader(dataset, self.local_batch, seed=args.seed, epoch=epoch, workers=self.workers,
                                    rt=rt, drop_last=True)
        return loops.train_epoch(step_fn, loader, self.optimizer, self.scheduler, rt, epoch=epoch, step=step,
                                 logger=self.logger, desc=f"{self.task.name} {epoch}/{args.epochs}",
                                 params=self.params, grad_clip=args.grad_clip, log_every=args.log_every)

