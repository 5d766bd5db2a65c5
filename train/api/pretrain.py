"""NeuroMoCo pre-training from Python: :class:`NeuroMoCo` (the module) and :func:`pretrain` (the run).

:func:`pretrain` runs exactly what ``train pretrain`` runs, through the same task and fit loop (resume, atomic
checkpoints, ``metrics.jsonl``, TensorBoard, ``pretrain.json``), around a registry model or an encoder of
one's own, and returns a :class:`PretrainResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from neuromoco.train.api.runs import PathLike, data_options, optim_options, run_options
from neuromoco.train.engine.config import MoCoOptions, PretrainConfig, checked_pretrain
from neuromoco.train.moco import MoCo


class NeuroMoCo(MoCo):
    """The momentum-contrast module around any ``encoder`` mapping frames ``[T, B, C, H, W]`` to per-step
    features ``[T, B, D]`` (the defaults are ``train pretrain``'s).

    ``model(view_q, view_k)`` -> ``(loss, {"acc", "pos_sim", "zero_features"})`` for two augmented views of one
    batch: a training step of one's own loop is ``loss.backward(); optimizer.step()`` (the key encoder follows
    by momentum inside). :func:`pretrain` builds and trains one for you.

    Args:
        encoder: the backbone; trained in place (the query encoder is ``encoder`` itself).
        input_shape: one frame ``[C, H, W]``: finds ``D`` by a dry run when ``feature_dim`` is not given and
            the encoder has no ``feature_dim`` attribute.
        feature_dim: ``D``, the encoder's feature size.
        queue_size: K negative keys (the queue of past batches' keys).
        momentum: the key encoder's EMA momentum m (0.99 suits short runs).
        temperature: tau of the contrastive softmax.
        mix_lambda: MixInfoNCE's lambda: 1 = InfoNCE on time-averaged features, 0 = per time step.
        mix_mode: ``"loss"`` mixes the two losses, ``"logits"`` their logits.
        proj_dim: projection output size.
        proj_hidden: projection hidden size.
        proj_bn: BatchNorm in the projection head (MoCo v3's; False: MoCo v2's head).
        shuffle_bn: shuffle the key batch for BatchNorm (keeps BatchNorm from leaking the positive).
        bn_splits: BatchNorm groups in one process (SplitBatchNorm: emulates that many GPUs).
    """

    def __init__(self, encoder: nn.Module, *, input_shape: Sequence[int] | None = None,
                 feature_dim: int | None = None, queue_size: int = 4096, momentum: float = 0.999,
                 temperature: float = 0.2, mix_lambda: float = 0.5, mix_mode: str = "loss", proj_dim: int = 128,
                 proj_hidden: int = 512, proj_bn: bool = True, shuffle_bn: bool = True, bn_splits: int = 1) -> None:
        super().__init__(encoder, feature_dim=feature_dim, dim=proj_dim, hidden=proj_hidden, queue_size=queue_size,
                         momentum=momentum, temperature=temperature, mix_lambda=mix_lambda, mix_mode=mix_mode,
                         shuffle_bn=shuffle_bn, bn_splits=bn_splits, proj_bn=proj_bn, input_shape=input_shape)

    @property
    def encoder(self) -> nn.Module:
        """The (query) encoder being trained."""
        return self.encoder_q.backbone


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` leaves: the run directory, its resumable checkpoint, every epoch's summary, and
    the trained encoder (the object passed in, for an own encoder; the registry model's otherwise)."""

    run_dir: Path
    last_checkpoint: Path  # run_dir/last.pt: finetune(pretrained=...) and linear_probe(pretrained=...) start here
    history: list[dict[str, Any]]  # per epoch: loss, acc (contrastive top-1), pos_sim, samples_per_s, ...
    encoder: nn.Module
    model: MoCo  # the whole NeuroMoCo module (query and key encoders, projections, queue)


def pretrain(encoder: nn.Module | str, data: PathLike | Dataset = "embedded", *, out: PathLike, epochs: int = 20,
             batch_size: int = 64, lr: float = 1e-3, time_steps: int = 16, downsample: int = 1,
             max_samples: int | None = None, root: PathLike | None = None, sensor_size: list[int] | None = None,
             time_unit: str | None = None, moco: MoCoOptions | None = None, optimizer: str = "adamw",
             weight_decay: float = 1e-4, warmup_epochs: float = 0.0, grad_clip: float = 0.0,
             resume: bool | PathLike = False, overwrite: bool = False, **runtime: Any) -> PretrainResult:
    """Pre-train ``encoder`` with NeuroMoCo on ``data`` (labels never read); ``train pretrain``'s run.

    Args:
        encoder: an ``nn.Module`` mapping ``[T, B, C, H, W]`` to ``[T, B, D]`` (trained in place; a network that
            steps one time step at a time goes through :class:`~neuromoco.train.api.encoders.SequenceEncoder`),
            or a registry model's name (``train models``).
        data: a dataset name (``train data``), ``"tonic:ClassName"``, or a folder of one's own recordings; or
            a ``Dataset`` of two views, ``((view_q [T, C, H, W], view_k), label)`` (``load_dataset(...,
            views=2)``, or one's own; its labels are never read): the run then records no data source, so the
            downstream runs name their labelled data.
        out: the run directory (one holding a run is refused without ``resume`` or ``overwrite``).
        epochs, batch_size, lr, optimizer, weight_decay, warmup_epochs, grad_clip: as the flags.
        time_steps, downsample, max_samples, root, sensor_size, time_unit: the data's framing, as the flags.
        moco: NeuroMoCo's hyper-parameters (:class:`~neuromoco.train.engine.config.MoCoOptions`; default: the
            command's defaults, the queue sized from the training set).
        resume: True continues the run in ``out`` from ``out/last.pt``, a path from that checkpoint. An own
            encoder's checkpoint holds its weights, not its code: pass a fresh encoder of the same class.
        overwrite: start afresh in a run directory that holds a run, deleting its files.
        runtime: ``device``, ``amp``, ``seed``, ``workers``, ``progress``, ``log_every``, ``lif_impl``
            (the flags' defaults).

    Returns:
        :class:`PretrainResult`. Raises :class:`~neuromoco.errors.UserError` with one line on a bad argument.
    """
    from neuromoco.train.engine.own_encoder import own_name

    own = None if isinstance(encoder, str) else encoder
    given = data if isinstance(data, Dataset) else None
    source = None if isinstance(data, Dataset) else data
    model = encoder if isinstance(encoder, str) else "cnn3-34"  # the registry's name is unused with an own encoder
    moco = moco or MoCoOptions()
    argv = {"model": model if own is None else own_name(own), "dataset": data, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "time_steps": time_steps, "downsample": downsample,
            "max_samples": max_samples, **asdict(moco)}
    cfg = checked_pretrain(PretrainConfig(
        model=model,
        data=data_options(source, root=root, time_steps=time_steps, downsample=downsample, max_samples=max_samples,
                          sensor_size=sensor_size, time_unit=time_unit),
        optim=optim_options(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            weight_decay=weight_decay, warmup_epochs=warmup_epochs, grad_clip=grad_clip),
        run=run_options("pretrain", out, resume=resume, overwrite=overwrite, argv=argv, **runtime),
        moco=moco))
    return run_pretrain(cfg, encoder=own, dataset=given)


def run_pretrain(cfg: PretrainConfig, encoder: nn.Module | None = None,
                 dataset: Dataset | None = None) -> PretrainResult:
    """The one implementation of a pre-training run, from its typed config: :func:`pretrain` and
    ``train pretrain`` both end here. ``encoder`` / ``dataset``: an own encoder and a two-view dataset object
    instead of ``cfg.model`` and ``cfg.data``'s source."""
    from neuromoco.train.engine.fit import fit
    from neuromoco.train.engine.pretraining import Pretrain

    run = fit(Pretrain(cfg, encoder=encoder, dataset=dataset), cfg.run, cfg.optim)
    moco = run.model.module
    assert isinstance(moco, MoCo)
    return PretrainResult(run_dir=cfg.run.out, last_checkpoint=cfg.run.out / "last.pt", history=list(run.history),
                          encoder=moco.encoder_q.backbone, model=moco)
