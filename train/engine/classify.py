"""Classification on labels as a :class:`~neuromoco.train.engine.fit.Task` (:class:`Classify`), one class for the
three modes of :mod:`neuromoco.train.engine.modes` (finetune, linear, supervised).

The test split is evaluated every ``--eval-every`` epochs and after the last; the best epoch's weights go
to ``best.pt``; ``accuracy.json`` and, for deployable models, ``model.nir`` + ``model_card.json`` at the end.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json
from neuromoco.train.engine import loaders as D
from neuromoco.train.engine import loops
from neuromoco.train.engine.checkpoint import load_checkpoint
from neuromoco.train.engine.cliargs import check_positive
from neuromoco.train.engine.config import ClassifyConfig
from neuromoco.train.engine.fit import Epoch, Run, TaskData, TaskModel
from neuromoco.train.engine.linear_probe import LinearProbe, cached_features
from neuromoco.train.engine.own_encoder import is_own, own_name, own_record, require_registry_model
from neuromoco.train.engine.runtime import Runtime
from neuromoco.train.export.from_checkpoint import export_classifier, export_trained
from neuromoco.train.moco.builder import infer_feature_dim
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.models.registry import build_classifier, canonical_name, get_spec

if TYPE_CHECKING:
    from neuromoco.train.qat import LoihiQAT

#: where each kind of checkpoint keeps the encoder's weights: a pre-training run's query encoder, or a trained
#: classifier's encoder (fine-tuning a float-trained classifier, e.g. onto the Loihi grid with --qat loihi)
ENCODER_PREFIX = {"pretrain": "encoder_q.backbone.", "classifier": "encoder."}
NO_BEST = {"epoch": 0, "top1": -1.0}  # the best epoch before any was evaluated
#: the readout warm start's budget: a linear readout converges in steps, not epochs, so a large training set takes
#: fewer of --head-warmup-epochs (every figure in docs/training.md ran under it: 100 epochs of at most 141 steps)
WARMUP_MAX_STEPS = 20_000


class Classify:
    """``train finetune`` / ``linear`` / ``supervised``: the :class:`~neuromoco.train.engine.fit.Task`;
    :class:`ClassifyTraining` its trainer.

    Made from the command's config: reads the pre-trained checkpoint (if the mode starts from one) and takes
    from it the data options the command line left out, so that a bad checkpoint fails before anything runs.
    ``encoder``: an encoder of one's own (``neuromoco.train.api``) instead of a registry model, trained in place
    (the pre-trained checkpoint's encoder weights are loaded into it); ``datasets``: labelled ``Dataset``
    objects ``(train, test)`` of ``(frames [T, C, H, W], label)`` instead of ``cfg.data``'s source."""

    kind = "classifier"
    batch_groups = 1

    def __init__(self, cfg: ClassifyConfig, encoder: nn.Module | None = None,
                 datasets: tuple[Dataset, Dataset] | None = None) -> None:
        self.cfg, self.mode, self.name = cfg, cfg.mode, cfg.mode.name
        self.encoder, self.datasets = encoder, datasets
        self.pre = (load_checkpoint(cfg.pretrained, kind=("pretrain", "classifier"))
                    if cfg.pretrained is not None else None)
        self.pretrained = str(self.pre["_path"]) if self.pre else ""
        if encoder is not None:
            self.model_name = own_name(encoder)
        else:
            if self.pre is not None:
                require_registry_model(self.pre, "pass the encoder (of the same class) to finetune(encoder, ...) "
                                                 "or linear_probe(encoder, ...) of neuromoco.train.api")
            model = self.pre["model"]["name"] if self.pre else cfg.model
            assert model is not None  # a mode without a pre-trained checkpoint takes --model
            self.model_name = get_spec(model).name
        d, pdata = cfg.data, self.pre.get("data", {}) if self.pre else {}
        if d.dataset is None and pdata.get("object") and datasets is None:
            raise UserError(f"{self.pretrained} was pre-trained on a {pdata['object']} object, not a named dataset: "
                            "give the labelled data")
        precipe = pdata.get("recipe") or {}  # a recordings folder's recipe holds its sensor and time unit
        #: the data options, with the pre-trained run's where not given (a recordings folder's sensor and time
        #: unit only while the dataset is not given either)
        self.data_options = dataclasses.replace(
            d, dataset=d.dataset or pdata.get("dataset") or "embedded",
            time_steps=d.time_steps or pdata.get("time_steps") or 16,
            downsample=d.downsample or pdata.get("downsample") or 1,
            sensor_size=d.sensor_size or (precipe.get("sensor_size") if not d.dataset else None),
            time_unit=d.time_unit or (precipe.get("time_unit") if not d.dataset else None))
        check_positive(time_steps=self.data_options.time_steps, downsample=self.data_options.downsample)
        #: the sensor size came from the pre-trained run, which had inferred it from the recordings
        self.sensor_inferred = bool(not d.sensor_size and not d.dataset and precipe.get("sensor_size_inferred"))

    def load_data(self, rt: Runtime) -> TaskData:
        if self.datasets is not None:
            return self._given_data()
        d, cfg = self.data_options, self.cfg
        assert d.dataset is not None and d.time_steps is not None and d.downsample is not None  # set in __init__
        own = D.own_options(d.sensor_size, d.time_unit, self.sensor_inferred)
        frames = {"root": d.root, "time_steps": d.time_steps, "downsample": d.downsample, **own}
        full_train = D.labelled(d.dataset, "train", **frames, augment=None if self.mode.frozen else cfg.augment)
        meta = D.metadata(d.dataset, **own)
        train = D.class_balanced_subset(D.first_n(full_train, d.max_samples), cfg.label_fraction, cfg.run.seed)
        test = D.first_n(D.labelled(d.dataset, "test", **frames), d.max_samples)
        input_shape = D.frame_shape(test)[1:]
        recipe = meta.get("recipe") or {"name": d.dataset, "time_unit": None}
        record = {"dataset": recipe["name"], "time_steps": d.time_steps, "downsample": d.downsample,
                  "sensor_size": meta["sensor_size"], "time_unit": recipe["time_unit"], "recipe": recipe,
                  "class_names": meta["class_names"], "label_fraction": cfg.label_fraction,
                  "train_samples": D.length(train), "test_samples": D.length(test)}
        return TaskData(train=train, test=test, input_shape=input_shape, record=record,
                        num_classes=meta["num_classes"])

    def _given_data(self) -> TaskData:
        """Labelled dataset objects: the classes are 0 .. the largest label; no source to record (``train eval``
        of such a run names its data)."""
        assert self.datasets is not None
        cfg, n = self.cfg, self.cfg.data.max_samples
        full_train, test = self.datasets
        train = D.class_balanced_subset(D.first_n(full_train, n), cfg.label_fraction, cfg.run.seed)
        test = D.first_n(test, n)
        shape = D.frame_shape(test)
        classes = int(max(D.labels_of(full_train).max(initial=0), D.labels_of(test).max(initial=0))) + 1
        record = {"dataset": None, "object": type(full_train).__name__, "time_steps": shape[0], "downsample": 1,
                  "sensor_size": None, "time_unit": None, "recipe": None,
                  "class_names": [str(c) for c in range(classes)], "label_fraction": cfg.label_fraction,
                  "train_samples": D.length(train), "test_samples": D.length(test)}
        return TaskData(train=train, test=test, input_shape=shape[1:], record=record, num_classes=classes)

    def build_model(self, rt: Runtime, data: TaskData) -> TaskModel:
        batch = self.cfg.optim.batch_size
        if self.encoder is None:
            model = build_classifier(self.model_name, data.input_shape, data.num_classes)
        else:
            try:
                dim = getattr(self.encoder, "feature_dim", None) or infer_feature_dim(self.encoder, data.input_shape)
            except ValueError as err:  # an own encoder whose output is no [T, B, D]
                raise UserError(str(err)) from None
            model = SpikingClassifier(self.encoder, data.num_classes, feature_dim=int(dim))  # type: ignore[arg-type]
        if self.pre is not None:
            prefix = ENCODER_PREFIX[self.pre["kind"]]
            enc = {k[len(prefix):]: v for k, v in self.pre["state_dict"].items() if k.startswith(prefix)}
            try:
                model.encoder.load_state_dict(enc)
            except RuntimeError as err:
                raise UserError(f"{self.cfg.pretrained}: the encoder weights do not fit {self.model_name} for input "
                                f"{data.input_shape}: {str(err).splitlines()[0]}") from None
        model = model.to(rt.device)
        if self.mode.frozen:
            for p in model.encoder.parameters():
                p.requires_grad_(False)
            steps = -(-D.length(data.train) // batch)  # the probe keeps the last, partial batch
        else:
            steps = D.length(data.train) // batch
            if steps == 0:
                raise UserError(f"{D.length(data.train)} labelled training samples is fewer than --batch-size {batch}; "
                                "lower it")
        params = [p for p in model.parameters() if p.requires_grad]
        qat = self.cfg.qat.record() if self.cfg.qat else None
        record = ({"name": self.model_name, "input_shape": list(data.input_shape), "kwargs": {}}
                  if self.encoder is None else own_record(self.encoder, data.input_shape, model.head.in_features))
        return TaskModel(module=model, params=params, lr_groups=self._lr_groups(model, params), steps_per_epoch=steps,
                         record={**record, "num_classes": data.num_classes},
                         fields={"mode": self.name, "pretrained": self.pretrained, "qat": qat},
                         config={"mode": self.name, "model": self.model_name, "pretrained": self.pretrained or None,
                                 "qat": qat})

    def _lr_groups(self, model: SpikingClassifier,
                   params: list[torch.nn.Parameter]) -> list[tuple[list[torch.nn.Parameter], float]]:
        """Fine-tuning: the readout at --lr, the encoder at --lr x --backbone-lr-scale (readout first: logged)."""
        scale = self.cfg.recipe.backbone_lr_scale
        if scale == 1.0:
            return [(params, 1.0)]
        mine = {id(p) for p in model.encoder.parameters()}
        groups = [([p for p in params if id(p) not in mine], 1.0), ([p for p in params if id(p) in mine], scale)]
        return [g for g in groups if g[0]]

    def check_resume(self, ckpt: dict[str, Any], model: TaskModel) -> None:
        name = ckpt["model"]["name"]
        if canonical_name(name) != self.model_name or ckpt.get("mode") != self.name:
            raise UserError(f"{ckpt['_path']} is a {ckpt.get('mode')} run of {name}, not {self.name} of "
                            f"{self.model_name}")
        mine = model.fields["qat"]
        if ckpt.get("qat") != mine:
            raise UserError(f"{ckpt['_path']} was trained with quantization-aware training {ckpt.get('qat')}, "
                            f"this run asks for {mine}: give the same --qat options")

    def start(self, run: Run, resumed: dict[str, Any] | None) -> ClassifyTraining:
        """Features of the frozen encoder (linear), or: QAT's BatchNorm calibration, the readout's warm start
        (LP-FT), the QAT and DDP wrappers (a resumed run has its statistics and readout in the checkpoint)."""
        cfg, rt, model = self.cfg, run.rt, run.model.module
        assert isinstance(model, SpikingClassifier)
        best = dict(resumed["metrics"].get("best", NO_BEST)) if resumed else dict(NO_BEST)
        batch, test = cfg.optim.batch_size, run.data.test
        assert test is not None
        if self.mode.frozen:
            if rt.is_main:
                print(f"features of the frozen encoder, computed once: one forward pass over the "
                      f"{D.length(run.data.train):,} training and {D.length(test):,} test samples, then every epoch "
                      "trains the readout on them", file=sys.stderr)
            feats = cached_features(model, {"train": run.data.train, "test": test}, batch, run.workers, rt)
            probe = LinearProbe(model, feats["train"], feats["test"], batch, cfg.run.seed)
            return ClassifyTraining(self, run, model, best, probe=probe)
        fresh = run.start_epoch == 1
        if cfg.qat is not None and fresh:
            from neuromoco.train.qat import calibrate_batchnorm

            calibrate_batchnorm(model, loops.eval_loader(run.data.train, batch, workers=run.workers, rt=rt), rt.device)
        if cfg.recipe.head_warmup_epochs and fresh:
            self._warm_start_head(run, model)  # on the statistics QAT freezes
        qat = None
        if cfg.qat is not None:
            from neuromoco.train.qat import LoihiQAT

            qat = LoihiQAT(model, cfg.qat, run.data.input_shape)
        net: torch.nn.Module = qat if qat is not None else model
        if rt.dist.enabled:
            net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        test_loader = loops.eval_loader(test, max(batch, 64), workers=run.workers, rt=rt)
        return ClassifyTraining(self, run, model, best, net=net, qat=qat, test_loader=test_loader)

    def _warm_start_head(self, run: Run, model: SpikingClassifier) -> None:
        """LP-FT: the readout trained alone on the frozen encoder's cached features, before everything trains.

        Announced before it starts: it costs one forward pass of the encoder over the training set (the
        features, without gradients, shown like an epoch) and then ``--head-warmup-epochs`` epochs of the linear
        readout alone on those features, at most :data:`WARMUP_MAX_STEPS` steps of it (docs/training.md,
        "Fine-tuning recipe")."""
        cfg, r, rt = self.cfg, self.cfg.recipe, run.rt
        n, batch = D.length(run.data.train), cfg.optim.batch_size
        per_epoch = -(-n // batch)  # the probe keeps the last, partial batch
        epochs = min(r.head_warmup_epochs, max(1, WARMUP_MAX_STEPS // per_epoch))
        if rt.is_main:
            cut = f" (of {r.head_warmup_epochs}: at most {WARMUP_MAX_STEPS:,} steps)" if epochs < r.head_warmup_epochs \
                else ""
            print(f"readout warm start: {epochs} epochs{cut} of the readout alone on the frozen encoder's features of "
                  f"the {n:,} training samples (one forward pass computes them, then {epochs * per_epoch:,} readout "
                  "steps; --head-warmup-epochs 0: none)", file=sys.stderr)
        t0 = time.perf_counter()
        feats = cached_features(model, {"train": run.data.train}, batch, run.workers, rt)
        probe = LinearProbe(model, feats["train"], feats["train"], batch, cfg.run.seed)
        summary = probe.warm_start(epochs, r.head_warmup_lr, cfg.optim.weight_decay)
        if rt.is_main:
            print(f"readout warm start done in {time.perf_counter() - t0:.1f} s: train loss {summary['loss']:.4f} "
                  f"acc {summary['acc']:.3f}", file=sys.stderr)


class ClassifyTraining:
    """A classifier's epochs: the readout on cached features (``probe``), or the network (``net``, wrapped for
    QAT and DDP) over the frames; test accuracy when due; the best epoch; ``accuracy.json`` and the export."""

    def __init__(self, task: Classify, run: Run, model: SpikingClassifier, best: dict[str, Any], *,
                 probe: LinearProbe | None = None, net: torch.nn.Module | None = None, qat: LoihiQAT | None = None,
                 test_loader: DataLoader | None = None) -> None:
        self.task, self.cfg, self.run, self.model = task, task.cfg, run, model
        self.best = best  # {"epoch", "top1"} of the best epoch so far
        self.probe, self.net, self.qat, self.test_loader = probe, net, qat, test_loader

    def _train_mode(self) -> None:
        self.model.train()
        if self.cfg.mode.tunes_backbone and self.cfg.recipe.freeze_bn:
            for m in self.model.encoder.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()  # normalise with the pre-trained statistics and keep them; scale and shift train

    def _step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        assert self.net is not None
        frames, labels = batch
        device = self.run.rt.device
        frames = loops.time_major(frames.to(device, non_blocking=True))
        labels = labels.to(device, non_blocking=True)
        logits = self.net(frames)
        acc = (logits.detach().argmax(-1) == labels).float().mean()
        return torch.nn.functional.cross_entropy(logits.float(), labels), {"acc": acc}, labels.shape[0]

    def epoch(self, epoch: int) -> Epoch:
        run, epochs = self.run, self.cfg.optim.epochs
        if self.probe is not None:
            summary, run.step = self.probe.epoch(run.optimizer, run.scheduler, epoch=epoch, step=run.step,
                                                 logger=run.logger, log_every=self.cfg.run.log_every)
        else:
            self._train_mode()
            if self.qat is not None:
                self.qat.update_grid()  # the observer: the plan's grid for this epoch's starting weights
            summary = run.train_over(run.data.train, self._step, epoch)
        improved = False
        if epoch % self.cfg.eval_every == 0 or epoch == epochs:
            res = self._test(epoch)
            summary.update(test_top1=res["top1"], test_loss=res["loss"])
            if res["top1"] > self.best["top1"]:
                self.best, improved = {"epoch": epoch, "top1": res["top1"]}, True
        line = f"epoch {epoch}/{epochs}: loss {summary['loss']:.4f} train acc {summary['acc']:.3f}"
        if "test_top1" in summary:
            line += f"  test top-1 {summary['test_top1']:.4f} (best {self.best['top1']:.4f} @ {self.best['epoch']})"
        return Epoch(summary, line, improved)

    def _test(self, epoch: int) -> dict[str, Any]:
        """Top-1 and loss on the test split: of the readout on cached features, else of the network (on the QAT
        grid with --qat)."""
        if self.probe is not None:
            return self.probe.evaluate()
        assert self.test_loader is not None
        net = self.qat if self.qat is not None else self.model
        return loops.evaluate(net, self.test_loader, self.run.rt, f"test {epoch}")

    def metrics(self) -> dict[str, Any]:
        last = _last_tested(self.run.history)
        return {"history": self.run.history, "best": self.best, "test_top1": last["test_top1"] if last else None}

    def finish(self) -> None:
        run, task, best = self.run, self.task, self.best
        if not run.rt.is_main:
            return
        history = run.history
        last = _last_tested(history)
        assert run.data.test is not None
        assert last is not None  # the last epoch is always tested
        dataset = task.data_options.dataset if task.datasets is None else None  # None: dataset objects (the API's)
        accuracy = {"mode": task.name, "model": task.model_name, "dataset": dataset,
                    "label_fraction": self.cfg.label_fraction, "train_samples": D.length(run.data.train),
                    "test_samples": D.length(run.data.test), "best": {"epoch": best["epoch"], "top1": best["top1"]},
                    "last": {"epoch": last["epoch"], "top1": last["test_top1"]},
                    "pretrained": task.pretrained or None,
                    "train_samples_per_s": sum(h["samples_per_s"] for h in history) / len(history)}
        atomic_write_json(run.run_dir / "accuracy.json", accuracy)
        print(f"test top-1: last {last['test_top1']:.4f} (epoch {last['epoch']}), best "
              f"{best['top1']:.4f} (epoch {best['epoch']})  -> {run.run_dir / 'accuracy.json'}", file=sys.stderr)
        if not self.cfg.export:
            return
        src = run.run_dir / ("best.pt" if self.cfg.export_weights == "best" else "last.pt")
        if is_own(run.model.record):
            self._export_own(load_checkpoint(src, kind="classifier"))
            return
        if not self.model.deployable:
            print(f"{task.model_name} is not deployable: no model.nir written", file=sys.stderr)
            return
        path = export_classifier(load_checkpoint(src, kind="classifier"), run.run_dir)  # QAT: weights on the grid
        print(f"NIR graph: {path}", file=sys.stderr)

    def _export_own(self, ckpt: dict[str, Any]) -> None:
        """An own encoder's classifier to NIR when its layers are the project's deployable ones (a copy, with the
        checkpoint's weights); else say why not: the run itself succeeded."""
        from neuromoco.train.export import ExportError

        model = copy.deepcopy(self.model).cpu()
        model.load_state_dict(ckpt["state_dict"])
        try:
            path = export_trained(model.eval(), ckpt, self.run.run_dir)
        except (ExportError, UserError) as err:
            print(f"{self.task.model_name} is not deployable ({str(err).splitlines()[0]}): no model.nir written",
                  file=sys.stderr)
            return
        print(f"NIR graph: {path}", file=sys.stderr)


def _last_tested(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last epoch of ``history`` that was evaluated on the test split."""
    return next((h for h in reversed(history) if "test_top1" in h), None)
