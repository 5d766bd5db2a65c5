"""Training on labels from Python: :func:`finetune`, :func:`linear_probe` and :func:`supervised`, the
``train finetune`` / ``linear`` / ``supervised`` runs (one task, one fit loop, the same files), around a
registry model or an encoder of one's own; each returns a :class:`ClassifyResult`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from neuromoco.errors import UserError
from neuromoco.train.api.pretrain import PretrainResult
from neuromoco.train.api.runs import PathLike, data_options, optim_options, run_options
from neuromoco.train.engine.config import ClassifyConfig, Recipe, checked_classify
from neuromoco.train.engine.modes import MODES, Mode
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.qat import QATConfig

#: labelled data: a source the commands read (a name, ``tonic:Class``, a recordings folder), or dataset objects
#: ``(train, test)`` of ``(frames [T, C, H, W] float32, label)`` (classes 0 .. the largest label)
Data = PathLike | tuple[Dataset, Dataset]


@dataclass(frozen=True)
class ClassifyResult:
    """What a labelled run leaves: the run directory, its checkpoints, every epoch's summary, the trained
    classifier (``model.encoder`` + ``model.head``; logits = mean over T of the per-step readout), the test
    accuracy (``accuracy.json``) and the NIR graph when one was written."""

    run_dir: Path
    last_checkpoint: Path  # resumable; the weights ``model`` holds
    best_checkpoint: Path  # the best tested epoch's weights
    history: list[dict[str, Any]]  # per epoch: loss, acc, test_top1 and test_loss when tested, ...
    model: SpikingClassifier
    accuracy: dict[str, Any]  # accuracy.json: {"best": {"epoch", "top1"}, "last": {...}, ...}
    nir: Path | None  # run_dir/model.nir, or None (export off, or the model has layers with no NIR form)


def finetune(encoder: nn.Module | None, pretrained: PathLike | PretrainResult, data: Data | None = None, *,
             out: PathLike, epochs: int = MODES["finetune"].epochs, lr: float = MODES["finetune"].lr,
             recipe: Recipe | None = None, **options: Any) -> ClassifyResult:
    """Fine-tune a pre-trained encoder with a new linear readout, all trained; ``train finetune``'s run.

    The readout is first warm-started as a linear probe on the frozen encoder (LP-FT, ``recipe``'s
    ``head_warmup_epochs``; the defaults are the command's, see docs/training.md).

    Args:
        encoder: the encoder of one's own that was pre-trained (the same class; the checkpoint's weights are
            loaded into it and it trains in place), or None for the registry model the checkpoint names.
        pretrained: a :func:`~neuromoco.train.api.pretrain` result, or its checkpoint (or run directory); a
            trained classifier's checkpoint works too.
        data: the labelled data (default: the pre-training's, framed as it was): a dataset name, ``"tonic:Class"``
            or a recordings folder, or ``Dataset`` objects ``(train, test)`` of ``(frames [T, C, H, W], label)``
            (the framing options and ``augment`` then do not apply).
        out, epochs, lr: the run directory, epochs, peak learning rate.
        recipe: the fine-tuning recipe (:class:`~neuromoco.train.engine.config.Recipe`; default the command's).
        options: what every labelled run takes (:func:`supervised` lists them).
    """
    mode = MODES["finetune"]
    recipe = recipe or Recipe(backbone_lr_scale=mode.backbone_lr_scale, head_warmup_epochs=mode.head_warmup_epochs,
                              freeze_bn=mode.freeze_bn)
    options.setdefault("warmup_epochs", mode.warmup_epochs)
    return _classify(mode, encoder, pretrained, data, out=out, epochs=epochs, lr=lr, recipe=recipe, **options)


def linear_probe(encoder: nn.Module | None, pretrained: PathLike | PretrainResult, data: Data | None = None,
                 *, out: PathLike, epochs: int = MODES["linear"].epochs, lr: float = MODES["linear"].lr,
                 **options: Any) -> ClassifyResult:
    """A linear readout on the frozen pre-trained encoder (features computed once; exact, the readout is
    linear); ``train linear``'s run. Arguments as :func:`finetune`'s."""
    return _classify(MODES["linear"], encoder, pretrained, data, out=out, epochs=epochs, lr=lr, recipe=Recipe(),
                     **options)


def supervised(encoder: nn.Module | str, data: Data = "embedded", *, out: PathLike,
               epochs: int = MODES["supervised"].epochs, lr: float = MODES["supervised"].lr,
               **options: Any) -> ClassifyResult:
    """The same classifier from random initialisation (the baseline); ``train supervised``'s run.

    Args:
        encoder: an own encoder (``[T, B, C, H, W] -> [T, B, D]``, trained in place) or a registry name.
        data, out, epochs, lr: as :func:`finetune`'s.
        options: what every labelled run takes, with the flags' defaults: ``batch_size`` (32),
            ``label_fraction`` (1.0), ``augment`` ("none"), ``eval_every`` (1), ``time_steps`` (16, or the
            pre-training's), ``downsample``, ``max_samples``, ``root``, ``sensor_size``, ``time_unit``,
            ``optimizer``, ``weight_decay``, ``warmup_epochs``, ``grad_clip``, ``export`` (True: ``model.nir``
            when the layers have NIR forms), ``export_weights`` ("last"), ``qat`` (None; ``"loihi"`` or a
            :class:`~neuromoco.train.qat.QATConfig`: train onto the Loihi plan's grid, as ``--qat loihi``; not for
            :func:`linear_probe`, which trains no encoder weight), ``resume``, ``overwrite``, and the
            runtime's ``device``, ``amp``, ``seed``, ``workers``, ``progress``, ``log_every``, ``lif_impl``.
    """
    own = None if isinstance(encoder, str) else encoder
    return _classify(MODES["supervised"], own, None, data, out=out, epochs=epochs, lr=lr, recipe=Recipe(),
                     model=encoder if isinstance(encoder, str) else None, **options)


def _classify(mode: Mode, encoder: nn.Module | None, pretrained: PathLike | PretrainResult | None,
              data: Data | None, *, out: PathLike, epochs: int, lr: float, recipe: Recipe,
              model: str | None = None, batch_size: int = 32, label_fraction: float = 1.0, augment: str = "none",
              eval_every: int = 1, time_steps: int | None = None, downsample: int | None = None,
              max_samples: int | None = None, root: PathLike | None = None, sensor_size: list[int] | None = None,
              time_unit: str | None = None, optimizer: str = "adamw", weight_decay: float = 1e-4,
              warmup_epochs: float = 0.0, grad_clip: float = 0.0, export: bool = True, export_weights: str = "last",
              qat: QATConfig | str | None = None, resume: bool | PathLike = False, overwrite: bool = False,
              **runtime: Any) -> ClassifyResult:
    """One labelled run of ``mode``: the configs the command line would build, the task, the fit loop."""
    from neuromoco.train.engine.own_encoder import own_name

    ckpt = pretrained.last_checkpoint if isinstance(pretrained, PretrainResult) else pretrained
    given = data if isinstance(data, tuple) else None
    source = None if isinstance(data, tuple) else data
    argv = {"model": own_name(encoder) if encoder is not None else model, "pretrained": ckpt,
            "dataset": source if given is None else "Dataset objects (train, test)",
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "label_fraction": label_fraction,
            "augment": augment, "time_steps": time_steps, "downsample": downsample, "max_samples": max_samples}
    cfg = checked_classify(ClassifyConfig(
        mode=mode, model=model if mode.takes_model and encoder is None else None,
        pretrained=None if ckpt is None else str(ckpt),
        data=data_options(source, root=root, time_steps=time_steps, downsample=downsample, max_samples=max_samples,
                          sensor_size=sensor_size, time_unit=time_unit),
        optim=optim_options(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            weight_decay=weight_decay, warmup_epochs=warmup_epochs, grad_clip=grad_clip),
        run=run_options(mode.name, out, resume=resume, overwrite=overwrite, argv=argv, **runtime),
        label_fraction=label_fraction, augment=augment, eval_every=eval_every, recipe=recipe,
        qat=_qat_config(qat, mode),
        export=export, export_weights=export_weights))
    return run_classify(cfg, encoder=encoder, datasets=given)


def _qat_config(qat: QATConfig | str | None, mode: Mode) -> QATConfig | None:
    """``qat`` as the config the run records: None, a scheme name (``"loihi"``, the flag's defaults) or a config."""
    if qat is None or qat == "none":
        return None
    if mode.frozen:
        raise UserError(f"qat={qat!r}: a {mode.name} run trains no encoder weight (QAT is for finetune and supervised)")
    return qat if isinstance(qat, QATConfig) else QATConfig(scheme=str(qat))


def run_classify(cfg: ClassifyConfig, encoder: nn.Module | None = None,
                 datasets: tuple[Dataset, Dataset] | None = None) -> ClassifyResult:
    """The one implementation of a labelled run, from its typed config: :func:`finetune`, :func:`linear_probe`,
    :func:`supervised` and ``train finetune`` / ``linear`` / ``supervised`` all end here. ``encoder``: an own
    encoder instead of the registry's model; ``datasets``: labelled ``(train, test)`` dataset objects instead of
    ``cfg.data``'s source."""
    from neuromoco.train.engine.classify import Classify
    from neuromoco.train.engine.fit import fit

    run = fit(Classify(cfg, encoder=encoder, datasets=datasets), cfg.run, cfg.optim)
    model = run.model.module
    assert isinstance(model, SpikingClassifier)
    out = cfg.run.out
    accuracy, nir = out / "accuracy.json", out / "model.nir"  # written by the main rank
    return ClassifyResult(run_dir=out, last_checkpoint=out / "last.pt", best_checkpoint=out / "best.pt",
                          history=list(run.history), model=model,
                          accuracy=json.loads(accuracy.read_text()) if accuracy.is_file() else {},
                          nir=nir if cfg.export and nir.is_file() else None)
