"""NeuroMoCo pre-training as a :class:`~neuromoco.train.engine.fit.Task`: two views of unlabelled samples,
a MoCo model around the chosen encoder, ``pretrain.json`` at the end."""

from __future__ import annotations

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


class Pretrain(Task):
    kind = "pretrain"
    name = "pretrain"

    def check(self) -> None:
        a = self.args
        check_positive(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, time_steps=a.time_steps,
                       queue_size=a.queue_size, temperature=a.temperature, downsample=a.downsample,
                       bn_splits=a.bn_splits)
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
        if a.queue_size < a.batch_size:
            raise UserError(f"--queue-size {a.queue_size} must hold at least one batch ({a.batch_size})")
        if a.queue_size > n and fit.rt.is_main:
            print(f"note: the queue ({a.queue_size}) is larger than the training set ({n}): it will hold several "
                  f"keys of the same sample; consider --queue-size {max(a.batch_size, n // 2)}", file=sys.stderr)
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

    def _step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        (vq, vk), _labels = batch  # labels are never used
        vq, vk = time_major(vq.to(self.device, non_blocking=True)), time_major(vk.to(self.device, non_blocking=True))
        loss, mets = self.moco(vq, vk)
        return loss, mets, vq.shape[1]

    def epoch(self, fit: Fit, epoch: int, step: int) -> tuple[dict[str, Any], int]:
        return fit.train_over(self.train_set, self._step, epoch, step)

    def report(self, epoch: int, summary: dict[str, Any]) -> str:
        return (f"epoch {epoch}/{self.args.epochs}: loss {summary['loss']:.4f}  contrastive acc {summary['acc']:.3f}  "
                f"positive similarity {summary['pos_sim']:.3f}  {summary['samples_per_s']:.1f} samples/s")

    def checkpoint_fields(self) -> dict[str, Any]:
        a = self.args
        return {"moco": {"queue_size": a.queue_size, "momentum": a.momentum, "temperature": a.temperature,
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
