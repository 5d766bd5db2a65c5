"""Classification on labels as a :class:`~neuromoco.train.engine.fit.Task`, one class for the three modes of
:mod:`neuromoco.train.engine.modes` (finetune, linear, supervised).

The test split is evaluated every ``--eval-every`` epochs and after the last; the best epoch's weights go
to ``best.pt``; ``accuracy.json`` and, for deployable models, ``model.nir`` + ``model_card.json`` at the end.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json
from neuromoco.train.engine import data as D
from neuromoco.train.engine import loops
from neuromoco.train.engine.checkpoint import load_checkpoint
from neuromoco.train.engine.cliargs import check_positive
from neuromoco.train.engine.export import export_classifier
from neuromoco.train.engine.fit import Fit, Task
from neuromoco.train.engine.linear_probe import LinearProbe, cached_features
from neuromoco.train.engine.modes import Mode
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.models.registry import build_classifier, canonical_name, get_spec

ENCODER_PREFIX = "encoder_q.backbone."  # where a pre-training checkpoint keeps the encoder's weights


class Classify(Task):
    kind = "classifier"

    def __init__(self, args: argparse.Namespace, mode: Mode) -> None:
        super().__init__(args)
        self.mode, self.name = mode, mode.name
        self.best = {"epoch": 0, "top1": -1.0}
        self.probe: LinearProbe | None = None
        self.qat = None  # the LoihiQAT network with --qat loihi

    def check(self) -> None:
        a = self.args
        self.pre = load_checkpoint(a.pretrained, kind="pretrain") if self.mode.pretrained else None
        self.model_name = get_spec(self.pre["model"]["name"] if self.pre else a.model).name
        pdata = self.pre.get("data", {}) if self.pre else {}
        self.dataset = a.dataset or pdata.get("dataset") or "embedded"
        self.time_steps = a.time_steps or pdata.get("time_steps") or 16
        self.downsample = a.downsample or pdata.get("downsample") or 1
        # a recordings folder's sensor and time unit: as given, else as pre-training read it
        self.sensor_size = getattr(a, "sensor_size", None) or (pdata.get("sensor_size") if not a.dataset else None)
        self.time_unit = getattr(a, "time_unit", None) or (pdata.get("time_unit") if not a.dataset else None)
        check_positive(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, time_steps=self.time_steps,
                       downsample=self.downsample, eval_every=a.eval_every)
        if self.mode.tunes_backbone:
            if a.backbone_lr_scale < 0 or a.head_warmup_epochs < 0:
                raise UserError("--backbone-lr-scale and --head-warmup-epochs must be >= 0")
            check_positive(head_warmup_lr=a.head_warmup_lr)
        self.qat_config = None
        if getattr(a, "qat", "none") != "none":
            from neuromoco.train.qat import config_from_args

            self.qat_config = config_from_args(a)

    def build_data(self, fit: Fit) -> None:
        a = self.args
        own = D.own_options(self.sensor_size, self.time_unit)
        frames = {"root": a.data_root, "time_steps": self.time_steps, "downsample": self.downsample, **own}
        full_train = D.labelled(self.dataset, "train", **frames, augment=None if self.mode.frozen else a.augment)
        self.meta = D.metadata(self.dataset, **own)
        self.train_set = D.class_balanced_subset(D.first_n(full_train, a.max_samples), a.label_fraction, a.seed)
        self.test_set = D.first_n(D.labelled(self.dataset, "test", **frames), a.max_samples)
        self.input_shape = D.frame_shape(self.test_set)[1:]
        recipe = self.meta.get("recipe") or {"name": self.dataset, "time_unit": None}
        self.data = {"dataset": recipe["name"], "time_steps": self.time_steps, "downsample": self.downsample,
                     "sensor_size": self.meta["sensor_size"], "time_unit": recipe["time_unit"], "recipe": recipe,
                     "class_names": self.meta["class_names"],
                     "label_fraction": a.label_fraction, "train_samples": len(self.train_set),
                     "test_samples": len(self.test_set)}

    def build_model(self, fit: Fit) -> tuple[SpikingClassifier, list[torch.nn.Parameter], int]:
        a = self.args
        model = build_classifier(self.model_name, self.input_shape, self.meta["num_classes"])
        if self.pre is not None:
            enc = {k[len(ENCODER_PREFIX):]: v for k, v in self.pre["state_dict"].items()
                   if k.startswith(ENCODER_PREFIX)}
            try:
                model.encoder.load_state_dict(enc)
            except RuntimeError as err:
                raise UserError(f"{a.pretrained}: the encoder weights do not fit {self.model_name} for input "
                                f"{self.input_shape}: {str(err).splitlines()[0]}") from None
        self.model = model.to(fit.rt.device)
        if self.mode.frozen:
            for p in model.encoder.parameters():
                p.requires_grad_(False)
            batches = -(-len(self.train_set) // a.batch_size)  # the probe keeps the last, partial batch
        else:
            batches = len(self.train_set) // a.batch_size
            if batches == 0:
                raise UserError(f"{len(self.train_set)} labelled training samples is fewer than --batch-size "
                                f"{a.batch_size}; lower it")
        return model, [p for p in model.parameters() if p.requires_grad], batches

    def lr_scales(self, params: list[torch.nn.Parameter]) -> list[tuple[list[torch.nn.Parameter], float]]:
        """Fine-tuning: the readout at --lr, the encoder at --lr x --backbone-lr-scale (readout first: logged)."""
        scale = self.args.backbone_lr_scale if self.mode.tunes_backbone else 1.0
        if scale == 1.0:
            return [(params, 1.0)]
        mine = {id(p) for p in self.model.encoder.parameters()}
        groups = [([p for p in params if id(p) not in mine], 1.0), ([p for p in params if id(p) in mine], scale)]
        return [g for g in groups if g[0]]

    def check_resume(self, ckpt: dict[str, Any]) -> None:
        name = ckpt["model"]["name"]
        if canonical_name(name) != self.model_name or ckpt.get("mode") != self.name:
            raise UserError(f"{ckpt['_path']} is a {ckpt.get('mode')} run of {name}, not {self.name} of "
                            f"{self.model_name}")
        mine = self.qat_config.record() if self.qat_config else None
        if ckpt.get("qat") != mine:
            raise UserError(f"{ckpt['_path']} was trained with quantization-aware training {ckpt.get('qat')}, "
                            f"this run asks for {mine}: give the same --qat options")

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.best = dict(ckpt["metrics"].get("best", self.best))

    def config(self) -> dict[str, Any]:
        return {"mode": self.name, "model": self.model_name, "pretrained": self._pretrained() or None,
                "qat": self.qat_config.record() if self.qat_config else None}

    def _pretrained(self) -> str:
        return str(self.pre["_path"]) if self.pre else ""

    def prepare(self, fit: Fit) -> None:
        a, rt = self.args, fit.rt
        if self.mode.frozen:
            feats = cached_features(self.model, {"train": self.train_set, "test": self.test_set}, a.batch_size,
                                    fit.workers, rt)
            self.probe = LinearProbe(self.model, feats["train"], feats["test"], a.batch_size, a.seed)
            return
        self.net = self.model
        if self.qat_config is not None and fit.start_epoch == 1:  # resumed: the statistics are in the checkpoint
            from neuromoco.train.qat import calibrate_batchnorm

            loader = loops.eval_loader(self.train_set, a.batch_size, workers=fit.workers, rt=rt)
            calibrate_batchnorm(self.model, loader, rt.device)
        if self.mode.tunes_backbone and a.head_warmup_epochs and fit.start_epoch == 1:
            self._warm_start_head(fit)  # on the statistics QAT freezes; a resumed run has its readout in last.pt
        if self.qat_config is not None:
            from neuromoco.train.qat import LoihiQAT

            self.qat = self.net = LoihiQAT(self.model, self.qat_config, self.input_shape)
        if rt.dist.enabled:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        self.device = rt.device
        self.test_loader = loops.eval_loader(self.test_set, max(a.batch_size, 64), workers=fit.workers, rt=rt)

    def _warm_start_head(self, fit: Fit) -> None:
        """LP-FT: the readout trained alone on the frozen encoder's cached features, before everything trains."""
        a = self.args
        feats = cached_features(self.model, {"train": self.train_set}, a.batch_size, fit.workers, fit.rt)
        probe = LinearProbe(self.model, feats["train"], feats["train"], a.batch_size, a.seed)
        summary = probe.warm_start(a.head_warmup_epochs, a.head_warmup_lr, a.weight_decay)
        if fit.rt.is_main:
            print(f"readout warm start: {a.head_warmup_epochs} epochs on the frozen encoder, train loss "
                  f"{summary['loss']:.4f} acc {summary['acc']:.3f}", file=sys.stderr)

    def _train_mode(self) -> None:
        self.model.train()
        if self.mode.tunes_backbone and self.args.freeze_bn:
            for m in self.model.encoder.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()  # normalise with the pre-trained statistics and keep them; scale and shift train

    def _step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        frames, labels = batch
        frames = loops.time_major(frames.to(self.device, non_blocking=True))
        labels = labels.to(self.device, non_blocking=True)
        logits = self.net(frames)
        acc = (logits.detach().argmax(-1) == labels).float().mean()
        return torch.nn.functional.cross_entropy(logits.float(), labels), {"acc": acc}, labels.shape[0]

    def epoch(self, fit: Fit, epoch: int, step: int) -> tuple[dict[str, Any], int]:
        a = self.args
        if self.probe is not None:
            summary, step = self.probe.epoch(fit.optimizer, fit.scheduler, epoch=epoch, step=step,
                                             logger=fit.logger, log_every=a.log_every)
        else:
            self._train_mode()
            if self.qat is not None:
                self.qat.update_grid()  # the observer: the plan's grid for this epoch's starting weights
            summary, step = fit.train_over(self.train_set, self._step, epoch, step)
        if epoch % a.eval_every == 0 or epoch == a.epochs:
            net = self.qat if self.qat is not None else self.model
            res = (self.probe.evaluate() if self.probe is not None
                   else loops.evaluate(net, self.test_loader, fit.rt, f"test {epoch}"))
            summary.update(test_top1=res["top1"], test_loss=res["loss"])
        return summary, step

    def improved(self, epoch: int, summary: dict[str, Any]) -> bool:
        if "test_top1" in summary and summary["test_top1"] > self.best["top1"]:
            self.best = {"epoch": epoch, "top1": summary["test_top1"]}
            return True
        return False

    def report(self, epoch: int, summary: dict[str, Any]) -> str:
        line = f"epoch {epoch}/{self.args.epochs}: loss {summary['loss']:.4f} train acc {summary['acc']:.3f}"
        if "test_top1" in summary:
            line += f"  test top-1 {summary['test_top1']:.4f} (best {self.best['top1']:.4f} @ {self.best['epoch']})"
        return line

    def model_record(self) -> dict[str, Any]:
        return {**super().model_record(), "num_classes": self.meta["num_classes"]}

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"mode": self.name, "pretrained": self._pretrained(),
                "qat": self.qat_config.record() if self.qat_config else None}

    def metrics_record(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        last = _last_tested(history)
        return {"history": history, "best": self.best, "test_top1": last["test_top1"] if last else None}

    def finish(self, fit: Fit) -> None:
        if not fit.rt.is_main:
            return
        a, history, best = self.args, fit.history, self.best
        last = _last_tested(history)
        accuracy = {"mode": self.name, "model": self.model_name, "dataset": self.dataset,
                    "label_fraction": a.label_fraction, "train_samples": len(self.train_set),
                    "test_samples": len(self.test_set), "best": {"epoch": best["epoch"], "top1": best["top1"]},
                    "last": {"epoch": last["epoch"], "top1": last["test_top1"]} if last else None,
                    "pretrained": self._pretrained() or None,
                    "train_samples_per_s": (sum(h["samples_per_s"] for h in history) / len(history)
                                            if history else None)}
        atomic_write_json(fit.run_dir / "accuracy.json", accuracy)
        print(f"test top-1: last {accuracy['last']['top1']:.4f} (epoch {accuracy['last']['epoch']}), best "
              f"{best['top1']:.4f} (epoch {best['epoch']})  -> {fit.run_dir / 'accuracy.json'}", file=sys.stderr)
        if not a.export:
            return
        if not self.model.deployable:
            print(f"{self.model_name} is not deployable: no model.nir written", file=sys.stderr)
            return
        src = fit.run_dir / ("best.pt" if a.export_weights == "best" else "last.pt")
        path = export_classifier(load_checkpoint(src, kind="classifier"), fit.run_dir)  # QAT: weights on the grid
        print(f"NIR graph: {path}", file=sys.stderr)


def _last_tested(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last epoch of ``history`` that was evaluated on the test split."""
    return next((h for h in reversed(history) if "test_top1" in h), None)
