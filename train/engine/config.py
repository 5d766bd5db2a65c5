"""The training commands' options as typed values, built from the command line in one place.

``train pretrain`` calls :func:`pretrain_config`, ``train finetune`` / ``linear`` / ``supervised`` call
:func:`classify_config`; the engine (:func:`~neuromoco.train.engine.fit.fit` and its tasks) reads only these
dataclasses, never the argparse ``Namespace``; ``neuromoco.train.api`` builds the same dataclasses from its
keyword arguments. Defaults live in the flags (``train/engine/cliargs.py``,
``train/commands/``), not here; what a value must satisfy on its own is checked here, before anything loads.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromoco.errors import UserError
from neuromoco.train.engine.cliargs import check_positive, plain_args
from neuromoco.train.engine.modes import Mode

if TYPE_CHECKING:
    from neuromoco.train.qat import QATConfig


@dataclass(frozen=True)
class DataOptions:
    """Which data, framed how (``--dataset`` ... ``--max-samples``). None: the task's default (a downstream
    run takes its pre-trained checkpoint's dataset, time steps and downsampling)."""

    dataset: str | None
    root: str | None
    time_steps: int | None
    downsample: int | None
    max_samples: int | None
    sensor_size: list[int] | None  # a recordings folder's sensor, W,H,P
    time_unit: str | None  # a recordings folder's timestamp unit


@dataclass(frozen=True)
class OptimOptions:
    """The optimisation every training command shares (``--epochs`` ... ``--grad-clip``)."""

    epochs: int
    batch_size: int  # global: split over DDP ranks
    lr: float
    optimizer: str  # adamw | sgd
    weight_decay: float
    warmup_epochs: float
    grad_clip: float  # 0: off


@dataclass(frozen=True)
class RunOptions:
    """Where a run writes and how it computes (``--out`` ... ``--no-progress``)."""

    command: str
    out: Path
    resume: str | None  # None: a fresh run; "auto": RUN_DIR/last.pt; else the checkpoint given
    overwrite: bool
    log_every: int
    device: str
    amp: str
    seed: int
    workers: int | None  # None: by device
    progress: bool
    argv: dict[str, Any]  # the command line as given (config.json's "args", the pre-training checkpoint's "config")
    lif_impl: str = "auto"  # --lif-impl: auto, norse, fused, native or triton


@dataclass(frozen=True)
class MoCoOptions:
    """NeuroMoCo's own options (``train pretrain``'s "NeuroMoCo" group). The defaults are the flags' (a test
    pins them), so that ``neuromoco.train.api.pretrain`` runs what ``train pretrain`` runs."""

    queue_size: int | None = None  # K negative keys; None: automatic, from the training set
    momentum: float = 0.999  # key encoder EMA momentum m (0.99 suits short runs)
    momentum_schedule: str = "constant"  # constant | cosine (m rises from momentum to 1 over the run)
    temperature: float = 0.2  # tau of the contrastive softmax
    mix_lambda: float = 0.5  # MixInfoNCE: 1 = InfoNCE on time-averaged features, 0 = per time step
    mix_mode: str = "loss"  # loss | logits: mix the two losses or their logits
    augment_strength: str = "default"  # none | weak | default | strong: the two views' event augmentations
    proj_dim: int = 128  # projection output size
    proj_hidden: int = 512  # projection hidden size
    proj_bn: bool = True  # BatchNorm in the projection head (MoCo v3); False: MoCo v2's head
    shuffle_bn: bool = True  # shuffle the key batch for BatchNorm
    collapse_epochs: int = 3  # warn when the positive similarity fell this many epochs in a row; 0: off
    bn_splits: int = 1  # BatchNorm groups per process (SplitBatchNorm; emulates that many GPUs)


@dataclass(frozen=True)
class PretrainConfig:
    model: str
    data: DataOptions
    optim: OptimOptions
    run: RunOptions
    moco: MoCoOptions


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning recipe (docs/training.md); the defaults change nothing, as for modes without it."""

    backbone_lr_scale: float = 1.0  # the encoder's learning rate is --lr x this
    head_warmup_epochs: int = 0  # linear-probe epochs that warm-start the readout (LP-FT)
    head_warmup_lr: float = 1e-2
    freeze_bn: bool = False  # the encoder's BatchNorm statistics stay the pre-trained ones


@dataclass(frozen=True)
class ClassifyConfig:
    mode: Mode
    model: str | None  # --model; None: the pre-trained checkpoint names the architecture
    pretrained: str | None  # --pretrained (modes that start from a pre-trained encoder)
    data: DataOptions
    optim: OptimOptions
    run: RunOptions
    label_fraction: float
    augment: str
    eval_every: int
    recipe: Recipe
    qat: QATConfig | None  # --qat loihi: the grid trained onto
    export: bool
    export_weights: str  # last | best


def pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    """``train pretrain``'s command line as a :class:`PretrainConfig` (values checked)."""
    data, optim = _data(args), _optim(args)
    moco = MoCoOptions(queue_size=args.queue_size, momentum=args.momentum, momentum_schedule=args.momentum_schedule,
                       temperature=args.temperature, mix_lambda=args.mix_lambda, mix_mode=args.mix_mode,
                       augment_strength=args.augment_strength, proj_dim=args.proj_dim, proj_hidden=args.proj_hidden,
                       proj_bn=args.proj_bn, shuffle_bn=args.shuffle_bn, collapse_epochs=args.collapse_epochs,
                       bn_splits=args.bn_splits)
    return checked_pretrain(PretrainConfig(model=args.model, data=data, optim=optim, run=_run(args), moco=moco))


def checked_pretrain(cfg: PretrainConfig) -> PretrainConfig:
    """``cfg`` when its values are in range (the command line's and the Python API's, one check); else a
    :class:`UserError` naming the flag."""
    data, optim, moco = cfg.data, cfg.optim, cfg.moco
    check_positive(epochs=optim.epochs, batch_size=optim.batch_size, lr=optim.lr, time_steps=data.time_steps,
                   temperature=moco.temperature, downsample=data.downsample, bn_splits=moco.bn_splits)
    if moco.queue_size is not None:
        check_positive(queue_size=moco.queue_size)
    if moco.collapse_epochs < 0:
        raise UserError(f"--collapse-epochs must be 0 (off) or more, got {moco.collapse_epochs}")
    return cfg


def classify_config(args: argparse.Namespace, mode: Mode) -> ClassifyConfig:
    """``train finetune`` / ``linear`` / ``supervised``'s command line as a :class:`ClassifyConfig` (values
    checked; time steps and downsampling, which may come from the pre-trained checkpoint, by the task)."""
    optim = _optim(args)
    check_positive(epochs=optim.epochs, batch_size=optim.batch_size, lr=optim.lr, eval_every=args.eval_every)
    recipe = Recipe()
    if mode.tunes_backbone:
        recipe = Recipe(backbone_lr_scale=args.backbone_lr_scale, head_warmup_epochs=args.head_warmup_epochs,
                        head_warmup_lr=args.head_warmup_lr, freeze_bn=args.freeze_bn)
    return checked_classify(ClassifyConfig(
        mode=mode, model=args.model if mode.takes_model else None,
        pretrained=args.pretrained if mode.pretrained else None, data=_data(args), optim=optim, run=_run(args),
        label_fraction=args.label_fraction, augment=args.augment, eval_every=args.eval_every, recipe=recipe,
        qat=None if mode.frozen else _qat(args), export=args.export, export_weights=args.export_weights))


def checked_classify(cfg: ClassifyConfig) -> ClassifyConfig:
    """``cfg`` when its values are in range (the command line's and the Python API's, one check); else a
    :class:`UserError` naming the flag."""
    optim, recipe = cfg.optim, cfg.recipe
    check_positive(epochs=optim.epochs, batch_size=optim.batch_size, lr=optim.lr, eval_every=cfg.eval_every)
    if cfg.mode.tunes_backbone:
        if recipe.backbone_lr_scale < 0 or recipe.head_warmup_epochs < 0:
            raise UserError("--backbone-lr-scale and --head-warmup-epochs must be >= 0")
        check_positive(head_warmup_lr=recipe.head_warmup_lr)
    return cfg


def _data(args: argparse.Namespace) -> DataOptions:
    return DataOptions(dataset=args.dataset, root=args.data_root, time_steps=args.time_steps,
                       downsample=args.downsample, max_samples=args.max_samples, sensor_size=args.sensor_size,
                       time_unit=args.time_unit)


def _optim(args: argparse.Namespace) -> OptimOptions:
    return OptimOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, grad_clip=args.grad_clip)


def _run(args: argparse.Namespace) -> RunOptions:
    return RunOptions(command=args.command, out=Path(args.out), resume=args.resume, overwrite=args.overwrite,
                      log_every=args.log_every, device=args.device, amp=args.amp, seed=args.seed,
                      workers=args.workers, progress=not args.no_progress, argv=plain_args(args),
                      lif_impl=args.lif_impl)


def _qat(args: argparse.Namespace) -> QATConfig | None:
    """``--qat``'s grid, or None (``--qat none``)."""
    if args.qat == "none":
        return None
    from neuromoco.train.qat import QATConfig

    return QATConfig(scheme=args.qat, weight_bits=args.qat_weight_bits, scale=args.qat_scale)
