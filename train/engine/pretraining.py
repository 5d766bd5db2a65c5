"""NeuroMoCo pre-training as a :class:`~neuromoco.train.engine.fit.Task`: two views of unlabelled samples,
a MoCo model around the chosen encoder, ``pretrain.json`` at the end.

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

from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json
from neuromoco.train.engine import data as D
from neuromoco.train.engine.cliargs import check_positive
from neuromoco.train.engine.fit import Fit, Task
from neuromoco.train.engine.loops import time_major
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


def falling_epochs(values: list[float | None]) -> int:
    """How many epochs in a row, up to the last, ``values`` fell (each strictly below the one before)."""
    n = 0
    for i in range(len(values) - 1, 0, -1):
        cur, prev = values[i], values[i - 1]
        if not isinstance(cur, (int, float)) or not isinstance(prev, (int, float)) or not cur < prev:
            break
        n += 1
    return n


class Pretrain(Task):
    kind = "pretrain"
    name = "pretrain"

    def check(self) -> None:
        a = self.args
        check_positive(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, time_steps=a.time_steps,
                       temperature=a.temperature, downsample=a.downsample, bn_splits=a.bn_splits)
        if a.queue_size is not None:
            check_positive(queue_size=a.queue_size)
        if getattr(a, "collapse_epochs", COLLAPSE_EPOCHS) < 0:
            raise UserError(f"--collapse-epochs must be 0 (off) or more, got {a.collapse_epochs}")
        self.queue_auto = a.queue_size is None
        self.model_name = get_spec(a.model).name
        self.batch_groups = a.bn_splits

    def build_data(self, fit: Fit) -> None:
        a = self.args
        own = D.own_options(getattr(a, "sensor_size", None), getattr(a, "time_unit", None))
        self.train_set = D.first_n(D.contrastive(a.dataset, "train", root=a.data_root, time_steps=a.time_steps,
                                                 downsample=a.downsample, strength=a.augment_strength, **own),
                                   a.max_samples)
        self.input_shape = D.frame_shape(self.train_set)[1:]
        n = len(self.train_set)
        if n < a.batch_size:
            raise UserError(f"the training set has {n} samples, fewer than --batch-size {a.batch_size}")
        if self.queue_auto:
            a.queue_size = auto_queue_size(n, a.batch_size)
            if fit.rt.is_main:
                print(f"queue {a.queue_size:,} = {100 * a.queue_size / n:.0f} % of {n:,} training samples "
                      f"(automatic: the largest multiple of the batch {a.batch_size} that is at most "
                      f"{QUEUE_FRACTION:.0%} of them, at most {QUEUE_MAX}; --queue-size K sets it)", file=sys.stderr)
        if a.queue_size < a.batch_size:
            raise UserError(f"--queue-size {a.queue_size} must hold at least one batch ({a.batch_size})")
        if a.queue_size > n and fit.rt.is_main:
            print(f"note: the queue ({a.queue_size}) is larger than the training set ({n}): it will hold several "
                  f"keys of the same sample; consider --queue-size {auto_queue_size(n, a.batch_size)} (the automatic "
                  f"choice when --queue-size is left out)", file=sys.stderr)
        recipe = D.metadata(a.dataset, **own).get("recipe") or {"name": a.dataset}
        self.data = {"dataset": recipe["name"], "time_steps": a.time_steps, "downsample": a.downsample,
                     "sensor_size": recipe.get("sensor_size"), "time_unit": recipe.get("time_unit"), "recipe": recipe,
                     "train_samples": n}

    def build_model(self, fit: Fit) -> tuple[MoCo, list[torch.nn.Parameter], int]:
        a = self.args
        self.moco = MoCo(build_encoder(self.model_name, self.input_shape), dim=a.proj_dim, hidden=a.proj_hidden,
                         queue_size=a.queue_size, momentum=a.momentum, temperature=a.temperature,
                         mix_lambda=a.mix_lambda, mix_mode=a.mix_mode, shuffle_bn=a.shuffle_bn,
                         bn_splits=a.bn_splits, proj_bn=a.proj_bn).to(fit.rt.device)
        return self.moco, list(self.moco.encoder_q.parameters()), len(self.train_set) // a.batch_size

    def check_resume(self, ckpt: dict[str, Any]) -> None:
        m = ckpt["model"]
        if canonical_name(m["name"]) != self.model_name or list(m["input_shape"]) != list(self.input_shape):
            raise UserError(f"{ckpt['_path']} holds a {m['name']} for input {m['input_shape']}, not a "
                            f"{self.model_name} for {self.input_shape}")

    def prepare(self, fit: Fit) -> None:
        rt = fit.rt
        if rt.dist.enabled:
            self.moco.wrap_ddp(device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        self.device = rt.device
        self.moco.train()
        self.t_start = time.perf_counter()
        a = self.args
        self.schedule = getattr(a, "momentum_schedule", "constant")
        self.k_step, self.total_steps = fit.step, len(self.train_set) // a.batch_size * a.epochs

    def _step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        (vq, vk), _labels = batch  # labels are never used
        vq, vk = time_major(vq.to(self.device, non_blocking=True)), time_major(vk.to(self.device, non_blocking=True))
        if self.schedule != "constant":
            self.moco.momentum = scheduled_momentum(self.args.momentum, self.k_step, self.total_steps, self.schedule)
        self.k_step += 1
        loss, mets = self.moco(vq, vk)
        return loss, mets, vq.shape[1]

    def config(self) -> dict[str, Any]:
        return {"queue_size_auto": self.queue_auto}

    def epoch(self, fit: Fit, epoch: int, step: int) -> tuple[dict[str, Any], int]:
        summary, step = fit.train_over(self.train_set, self._step, epoch, step)
        if "pos_sim" in summary:
            sims = [h.get("pos_sim") for h in fit.history] + [summary["pos_sim"]]
            n = falling_epochs(sims)
            limit = getattr(self.args, "collapse_epochs", COLLAPSE_EPOCHS)
            summary["pos_sim_falling_epochs"] = n
            summary["collapse_warning"] = bool(limit and n >= limit)
            self._fall = (sims[-1 - n], sims[-1])
        if self.schedule != "constant":
            summary["momentum"] = self.moco.momentum  # the last step's
        return summary, step

    def report(self, epoch: int, summary: dict[str, Any]) -> str:
        line = (f"epoch {epoch}/{self.args.epochs}: loss {summary['loss']:.4f}  contrastive acc {summary['acc']:.3f}  "
                f"positive similarity {summary['pos_sim']:.3f}  {summary['samples_per_s']:.1f} samples/s")
        if summary.get("collapse_warning"):
            first, last = self._fall
            line += (f"  warning: positive similarity has fallen {summary['pos_sim_falling_epochs']} epochs in a row "
                     f"({first:.3f} -> {last:.3f}), the collapse signal (docs/training.md)")
        return line

    def checkpoint_fields(self) -> dict[str, Any]:
        a = self.args
        return {"moco": {"queue_size": a.queue_size, "momentum": a.momentum,
                         "momentum_schedule": getattr(a, "momentum_schedule", "constant"), "temperature": a.temperature,
                         "mix_lambda": a.mix_lambda, "mix_mode": a.mix_mode, "proj_dim": a.proj_dim,
                         "proj_hidden": a.proj_hidden, "proj_bn": a.proj_bn},
                "config": {k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, bool))}}

    def finish(self, fit: Fit) -> None:
        if not fit.rt.is_main:
            return
        a = self.args
        atomic_write_json(fit.run_dir / "pretrain.json", {
            "model": self.model_name, "dataset": a.dataset, "epochs": a.epochs, "steps": fit.step,
            "final": fit.summary, "history": fit.history, "runtime": fit.rt.describe(),
            "wall_seconds_this_invocation": time.perf_counter() - self.t_start})
        print(f"pre-trained encoder: {fit.run_dir / 'last.pt'}", file=sys.stderr)
