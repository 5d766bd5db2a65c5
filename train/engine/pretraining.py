"""NeuroMoCo pre-training as a :class:`~neuromoco.train.engine.fit.Task` (:class:`Pretrain`): two views of
unlabelled samples, a MoCo model around the chosen encoder, ``pretrain.json`` at the end.

Defaults that follow the data:

* **Queue size**: without ``--queue-size``, K is :func:`auto_queue_size` of the training set (the largest
  multiple of the batch size that is at most ``QUEUE_FRACTION`` of the training samples, at most
  ``QUEUE_MAX``, at least one batch), said in the run's first log line. A queue larger than the training set
  holds several keys of one sample, stale copies of the positive among the negatives.
* **Collapse warning**: when the positive similarity ``pos_sim`` has fallen ``--collapse-epochs`` epochs in
  a row (default ``COLLAPSE_EPOCHS``), the epoch line carries a warning and the epoch's summary (metrics.jsonl,
  the checkpoint's history, pretrain.json) ``collapse_warning: true``; ``pos_sim_falling_epochs`` counts the
  epochs of the current fall every epoch. It is the collapse signal docs/training.md describes.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json
from neuromoco.train.engine import loaders as D
from neuromoco.train.engine.config import PretrainConfig
from neuromoco.train.engine.fit import Epoch, Run, TaskData, TaskModel
from neuromoco.train.engine.loops import time_major
from neuromoco.train.engine.own_encoder import OWN_PREFIX, own_name, own_record
from neuromoco.train.engine.runtime import Runtime
from neuromoco.train.moco import MoCo
from neuromoco.train.models.registry import build_encoder, canonical_name, get_spec

#: the automatic queue: at most this fraction of the training set ...
QUEUE_FRACTION = 0.5
#: ... and at most this many keys (MoCo v2's K on ImageNet is 65536; NEUROMOCO.md's default 4096)
QUEUE_MAX = 4096
#: epochs in a row of falling positive similarity that raise the collapse warning
COLLAPSE_EPOCHS = 3


def auto_queue_size(train_samples: int, batch_size: int, fraction: float = QUEUE_FRACTION,
                    cap: int = QUEUE_MAX) -> int:
    """The largest multiple of ``batch_size`` that is at most ``fraction`` of ``train_samples`` and at most
    ``cap``, and at least one batch."""
    k = int(train_samples * fraction) // batch_size * batch_size
    return max(batch_size, min(cap // batch_size * batch_size or batch_size, k))


def scheduled_momentum(base: float, step: int, total_steps: int, schedule: str = "constant") -> float:
    """The key encoder's momentum at optimiser ``step`` of ``total_steps``: ``base`` throughout ("constant"),
    or rising from ``base`` to 1 on a half cosine ("cosine", BYOL's and MoCo v3's
    ``1 - (1 - m0) (cos(pi k / K) + 1) / 2``)."""
    if schedule == "constant" or total_steps <= 0:
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown momentum schedule {schedule!r}")
    frac = min(max(step / total_steps, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * frac) + 1.0) / 2.0


def zero_features_warning(summary: dict[str, Any]) -> str:
    """A warning for the epoch line when the encoder's features were zero for every sample (tied zero logits make
    the contrastive accuracy look perfect); empty otherwise."""
    if summary.get("zero_features", 0.0) < 1.0:
        return ""
    return ("  warning: the encoder's features were zero for every sample (no spike reached its output), so the "
            "contrastive accuracy and similarity mean nothing: check the frames (--time-steps, --downsample) "
            "and the model")


def falling_epochs(values: list[float | None]) -> int:
    """How many epochs in a row, up to the last, ``values`` fell (each strictly below the one before)."""
    n = 0
    for i in range(len(values) - 1, 0, -1):
        cur, prev = values[i], values[i - 1]
        if not isinstance(cur, (int, float)) or not isinstance(prev, (int, float)) or not cur < prev:
            break
        n += 1
    return n


class Pretrain:
    """``train pretrain``: the :class:`~neuromoco.train.engine.fit.Task`; :class:`PretrainTraining` its trainer.

    ``encoder``: an encoder of one's own (``neuromoco.train.api.pretrain``) instead of the registry's
    ``cfg.model``, trained in place; ``dataset``: a two-view ``Dataset`` object (``((view_q, view_k), label)``)
    instead of ``cfg.data``'s source."""

    kind = "pretrain"
    name = "pretrain"

    def __init__(self, cfg: PretrainConfig, encoder: nn.Module | None = None, dataset: Dataset | None = None) -> None:
        self.cfg = cfg
        self.encoder, self.dataset = encoder, dataset
        self.model_name = get_spec(cfg.model).name if encoder is None else own_name(encoder)
        self.batch_groups = cfg.moco.bn_splits

    def load_data(self, rt: Runtime) -> TaskData:
        if self.dataset is not None:
            return self._given_data()
        d = self.cfg.data
        assert d.dataset is not None and d.time_steps is not None and d.downsample is not None  # pretrain's defaults
        own = D.own_options(d.sensor_size, d.time_unit)
        train = D.first_n(D.contrastive(d.dataset, "train", root=d.root, time_steps=d.time_steps,
                                        downsample=d.downsample, strength=self.cfg.moco.augment_strength, **own),
                          d.max_samples)
        input_shape = D.frame_shape(train)[1:]
        n, batch = D.length(train), self.cfg.optim.batch_size
        if n < batch:
            raise UserError(f"the training set has {n} samples, fewer than --batch-size {batch}")
        recipe = D.metadata(d.dataset, **own).get("recipe") or {"name": d.dataset}
        record = {"dataset": recipe["name"], "time_steps": d.time_steps, "downsample": d.downsample,
                  "sensor_size": recipe.get("sensor_size"), "time_unit": recipe.get("time_unit"), "recipe": recipe,
                  "train_samples": n}
        return TaskData(train=train, test=None, input_shape=input_shape, record=record)

    def _given_data(self) -> TaskData:
        """A two-view dataset object: no source to record (a downstream run names its labelled data)."""
        assert self.dataset is not None
        train = D.first_n(self.dataset, self.cfg.data.max_samples)
        shape = D.frame_shape(train)
        n, batch = D.length(train), self.cfg.optim.batch_size
        if n < batch:
            raise UserError(f"the training set has {n} samples, fewer than --batch-size {batch}")
        record = {"dataset": None, "object": type(self.dataset).__name__, "time_steps": shape[0], "downsample": 1,
                  "sensor_size": None, "time_unit": None, "recipe": None, "train_samples": n}
        return TaskData(train=train, test=None, input_shape=shape[1:], record=record)

    def _queue_size(self, rt: Runtime, n: int) -> int:
        """K: ``--queue-size``, else :func:`auto_queue_size` of the ``n`` training samples (said on stderr)."""
        batch, k = self.cfg.optim.batch_size, self.cfg.moco.queue_size
        if k is None:
            k = auto_queue_size(n, batch)
            if rt.is_main:
                print(f"queue {k:,} = {100 * k / n:.0f} % of {n:,} training samples (automatic: the largest "
                      f"multiple of the batch {batch} that is at most {QUEUE_FRACTION:.0%} of them, at most "
                      f"{QUEUE_MAX}; --queue-size K sets it)", file=sys.stderr)
        if k < batch:
            raise UserError(f"--queue-size {k} must hold at least one batch ({batch})")
        if k > n and rt.is_main:
            print(f"note: the queue ({k}) is larger than the training set ({n}): it will hold several keys of the "
                  f"same sample; consider --queue-size {auto_queue_size(n, batch)} (the automatic choice when "
                  "--queue-size is left out)", file=sys.stderr)
        return k

    def build_model(self, rt: Runtime, data: TaskData) -> TaskModel:
        m, n = self.cfg.moco, D.length(data.train)
        k = self._queue_size(rt, n)
        backbone = build_encoder(self.model_name, data.input_shape) if self.encoder is None else self.encoder
        try:
            moco = MoCo(backbone, dim=m.proj_dim, hidden=m.proj_hidden, queue_size=k, momentum=m.momentum,
                        temperature=m.temperature, mix_lambda=m.mix_lambda, mix_mode=m.mix_mode,
                        shuffle_bn=m.shuffle_bn, bn_splits=m.bn_splits, proj_bn=m.proj_bn,
                        input_shape=data.input_shape).to(rt.device)
        except ValueError as err:  # an own encoder whose output is no [T, B, D]
            raise UserError(str(err)) from None
        params = list(moco.encoder_q.parameters())
        moco_record = {"queue_size": k, "momentum": m.momentum, "momentum_schedule": m.momentum_schedule,
                       "temperature": m.temperature, "mix_lambda": m.mix_lambda, "mix_mode": m.mix_mode,
                       "proj_dim": m.proj_dim, "proj_hidden": m.proj_hidden, "proj_bn": m.proj_bn}
        argv = {k_: v for k_, v in self.cfg.run.argv.items() if isinstance(v, (int, float, str, bool))}
        auto = m.queue_size is None
        return TaskModel(module=moco, params=params, lr_groups=[(params, 1.0)],
                         steps_per_epoch=n // self.cfg.optim.batch_size,
                         record=self._record(data.input_shape, moco.feature_dim),
                         fields={"moco": moco_record, "config": {**argv, "queue_size": k}},
                         config={"queue_size": k, "queue_size_auto": auto})

    def _record(self, input_shape: list[int], feature_dim: int) -> dict[str, Any]:
        """The checkpoint's ``model``: the registry name, or what identifies an own encoder."""
        if self.encoder is not None:
            return own_record(self.encoder, input_shape, feature_dim)
        return {"name": self.model_name, "input_shape": list(input_shape), "kwargs": {}}

    def check_resume(self, ckpt: dict[str, Any], model: TaskModel) -> None:
        m, mine = ckpt["model"], model.record
        if canonical_name(m["name"]) != mine["name"] or list(m["input_shape"]) != mine["input_shape"]:
            hint = (": an encoder of one's own resumes with the same encoder class, pretrain(encoder, ..., "
                    "resume=True)" if str(m["name"]).startswith(OWN_PREFIX) else "")
            raise UserError(f"{ckpt['_path']} holds a {m['name']} for input {m['input_shape']}, not a "
                            f"{mine['name']} for {mine['input_shape']}{hint}")

    def start(self, run: Run, resumed: dict[str, Any] | None) -> PretrainTraining:
        return PretrainTraining(self.cfg, run)


class PretrainTraining:
    """Pre-training's epochs: MoCo steps over the two views, the collapse watch, ``pretrain.json``."""

    def __init__(self, cfg: PretrainConfig, run: Run) -> None:
        self.cfg, self.run = cfg, run
        moco = run.model.module
        assert isinstance(moco, MoCo)
        self.moco = moco
        rt = run.rt
        if rt.dist.enabled:
            moco.wrap_ddp(device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        moco.train()
        self.t_start = time.perf_counter()
        self.k_step = run.step  # the key encoder's momentum schedule counts optimiser steps
        self.total_steps = run.model.steps_per_epoch * cfg.optim.epochs
        self.final: dict[str, Any] = {}  # the last epoch's summary in this invocation

    def _step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        (vq, vk), _labels = batch  # labels are never used
        device, m = self.run.rt.device, self.cfg.moco
        vq, vk = time_major(vq.to(device, non_blocking=True)), time_major(vk.to(device, non_blocking=True))
        if m.momentum_schedule != "constant":
            self.moco.momentum = scheduled_momentum(m.momentum, self.k_step, self.total_steps, m.momentum_schedule)
        self.k_step += 1
        loss, mets = self.moco(vq, vk)
        return loss, mets, vq.shape[1]

    def epoch(self, epoch: int) -> Epoch:
        summary = self.run.train_over(self.run.data.train, self._step, epoch)
        fall = None
        if "pos_sim" in summary:
            sims = [h.get("pos_sim") for h in self.run.history] + [summary["pos_sim"]]
            n = falling_epochs(sims)
            limit = self.cfg.moco.collapse_epochs
            summary["pos_sim_falling_epochs"] = n
            summary["collapse_warning"] = bool(limit and n >= limit)
            fall = (sims[-1 - n], sims[-1])
        if self.cfg.moco.momentum_schedule != "constant":
            summary["momentum"] = self.moco.momentum  # the last step's
        self.final = summary
        return Epoch(summary, self._line(epoch, summary, fall), improved=False)

    def _line(self, epoch: int, summary: dict[str, Any], fall: tuple[Any, Any] | None) -> str:
        line = (f"epoch {epoch}/{self.cfg.optim.epochs}: loss {summary['loss']:.4f}  contrastive acc "
                f"{summary['acc']:.3f}  positive similarity {summary['pos_sim']:.3f}  "
                f"{summary['samples_per_s']:.1f} samples/s")
        if summary.get("collapse_warning") and fall is not None:
            line += (f"  warning: positive similarity has fallen {summary['pos_sim_falling_epochs']} epochs in a row "
                     f"({fall[0]:.3f} -> {fall[1]:.3f}), the collapse signal (docs/training.md)")
        return line + zero_features_warning(summary)

    def metrics(self) -> dict[str, Any]:
        return {"history": self.run.history}

    def finish(self) -> None:
        run = self.run
        if not run.rt.is_main:
            return
        atomic_write_json(run.run_dir / "pretrain.json", {
            "model": run.model.record["name"], "dataset": self.cfg.data.dataset, "epochs": self.cfg.optim.epochs,
            "steps": run.step, "final": self.final, "history": run.history, "runtime": run.rt.describe(),
            "wall_seconds_this_invocation": time.perf_counter() - self.t_start})
        print(f"pre-trained encoder: {run.run_dir / 'last.pt'}", file=sys.stderr)
