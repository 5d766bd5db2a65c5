"""NIR export from Python: :func:`export_nir` turns a model built from the project's deployable layers (a
registry model, a classifier from :func:`~neuromoco.train.api.finetune`, or one's own ``nn.Sequential`` of
``TimeDistributed`` stateless layers and ``LIF`` neurons) into a NIR graph and the model card ``deploy``
reads, as the training commands export theirs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nir
from torch import nn

from neuromoco.errors import UserError
from neuromoco.train.api.runs import PathLike

if TYPE_CHECKING:
    from neuromoco.deploy.card import ModelCard


@dataclass(frozen=True)
class ExportResult:
    """The exported graph, its card, and where they were written (None: not written, ``out`` was None)."""

    graph: nir.NIRGraph
    card: ModelCard
    path: Path | None  # out/model.nir (its card beside it: out/model_card.json)


def export_nir(model: nn.Module | Sequence[nn.Module], input_shape: Sequence[int], dt: float | None = None, *,
               out: PathLike | None = None, time_steps: int = 16, dataset: str | dict[str, Any] | None = None,
               downsample: int = 1, class_names: Sequence[str] | None = None,
               accuracy: dict[str, float] | None = None, name: str | None = None) -> ExportResult:
    """The NIR graph and model card of ``model`` (BatchNorm folded into the layer before it, Dropout dropped);
    written to ``out/model.nir`` and ``out/model_card.json`` when ``out`` is given (``deploy run`` takes them).

    Args:
        model: a model of the project's layers: one with ``deploy_modules()`` (registry models and their
            classifiers), a classifier whose encoder is one's own module of those layers, or that module (or
            list of modules) itself, in multi-step form (``[T, B, ...]``: stateless layers in
            ``TimeDistributed``, ``LIF`` as is).
        input_shape: one frame, ``[C, H, W]``.
        dt: seconds per time step (default: the model's ``LIF`` neurons' ``dt``, else 1 ms).
        out: the folder to write to (None: return the graph and card only).
        time_steps: frames per sample, for the card.
        dataset: a dataset name or path (the card then records how to frame it, so that ``deploy`` frames the
            same data, and its class names), or the card's ``dataset`` entry itself.
        downsample: the frames' spatial downsampling, for the card.
        class_names, accuracy, name: the card's class names (default: the dataset's), accuracy, model name.

    Raises :class:`~neuromoco.errors.UserError` naming the first module with no exact NIR form.
    """
    from neuromoco.train.export import deploy_modules_of, export_model, model_card, to_nir
    from neuromoco.train.export.from_checkpoint import model_dt

    modules = deploy_modules_of(list(model) if isinstance(model, (list, tuple)) else model)  # type: ignore[arg-type]
    if dt is None:
        dt = model_dt(nn.ModuleList(modules))
    shape = [int(v) for v in input_shape]
    try:
        graph = to_nir(modules, shape, dt)
    except ValueError as err:  # ExportError names the module with no exact NIR form
        raise UserError(f"NIR export failed: {err}") from None
    record, names = _dataset_record(dataset, time_steps, downsample)
    names = list(class_names) if class_names is not None else names
    label = name or (type(model).__name__ if isinstance(model, nn.Module) else "model")
    fields = {"input_shape": shape, "time_steps": time_steps, "dt": dt, "dataset": record, "class_names": names,
              "accuracy": dict(accuracy or {}), "model_name": label}
    card = model_card(**fields)  # type: ignore[arg-type]
    path = None
    if out is not None:
        path = export_model(modules, Path(os.fspath(out)), graph=graph, **fields)  # type: ignore[arg-type]
    return ExportResult(graph=graph, card=card, path=path)


def _dataset_record(dataset: str | dict[str, Any] | None, time_steps: int,
                    downsample: int) -> tuple[dict[str, Any], list[str]]:
    """The card's ``dataset`` entry and class names for ``dataset`` (a name or path: its recipe, as a trained
    run's card records it)."""
    if dataset is None:
        return {}, []
    if isinstance(dataset, dict):
        return dict(dataset), []
    from neuromoco.train.engine import loaders as D

    meta = D.metadata(os.fspath(dataset))
    recipe = meta.get("recipe") or {"name": os.fspath(dataset)}
    return ({**recipe, "name": recipe.get("name"), "time_steps": int(time_steps), "downsample": int(downsample),
             "sensor_size": list(meta["sensor_size"]), "split": "test"}, list(meta["class_names"]))
