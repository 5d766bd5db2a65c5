"""NIR export of trained deployable models: ``model.nir`` plus ``model_card.json``.

The mapping is the project's own (:mod:`neuromoco.train.export.to_nir`), with BatchNorm folded first
(:mod:`neuromoco.train.export.bn_fold`). ``deploy`` reads the result without importing ``train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import nir
from torch import nn

from neuromoco.train.export.bn_fold import (
    ExportError,
    flatten_graph,
    flatten_modules,
    fold_batchnorm,
    fold_graph,
    fold_layers,
    fold_model,
)
from neuromoco.train.export.to_nir import PlannedNode, layer_names, plan_graph, plan_layers, to_nir

if TYPE_CHECKING:
    from neuromoco.deploy.card import ModelCard

MODEL_FILE = "model.nir"

__all__ = [
    "MODEL_FILE",
    "ExportError",
    "PlannedNode",
    "deploy_modules_of",
    "export_model",
    "flatten_graph",
    "flatten_modules",
    "fold_batchnorm",
    "fold_graph",
    "fold_layers",
    "fold_model",
    "layer_names",
    "model_card",
    "plan_graph",
    "plan_layers",
    "to_nir",
]


def deploy_modules_of(model: nn.Module | list[nn.Module]) -> list[nn.Module]:
    """The multi-step module sequence the exporter walks for ``model``: its ``deploy_modules()`` (registry
    models), a classifier's encoder then its readout per time step when the encoder is a plain module of the
    project's layers (``nn.Sequential`` of ``TimeDistributed`` and ``LIF``, say), else ``model`` itself."""
    from neuromoco.train.models.base import SpikingClassifier
    from neuromoco.train.models.layers import TimeDistributed

    if isinstance(model, list):
        return model
    if isinstance(model, SpikingClassifier) and not hasattr(model.encoder, "deploy_modules"):
        return [model.encoder, TimeDistributed(model.head)]
    deploy = getattr(model, "deploy_modules", None)
    return list(deploy()) if callable(deploy) else [model]


def export_model(modules: list[nn.Module] | nn.Module, out_dir: Path, *, input_shape: list[int], time_steps: int,
                 dt: float, dataset: dict[str, Any], class_names: list[str], accuracy: dict[str, float],
                 model_name: str, graph: nir.NIRGraph | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/model.nir`` and ``out_dir/model_card.json`` (each atomically); return the graph's path.

    ``modules``: the deployable model's layer sequence (multi-step modules as trained; BatchNorm is folded
    with its running statistics, Dropout dropped). ``input_shape``: one frame ``[C, H, W]``.
    ``graph``: ``to_nir(modules, ...)`` already made by the caller and adjusted (QAT lifts its thresholds);
    ``extra``: more entries of the card's ``extra`` (QAT's ``qat``).
    Raises :class:`ExportError` naming the module that has no exact NIR form.
    """
    from neuromoco.deploy.card import CARD_NAME
    from neuromoco.io import atomic_write

    if graph is None:
        graph = to_nir(modules, list(input_shape), dt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = atomic_write(out_dir / MODEL_FILE, lambda tmp: nir.write(tmp, graph))
    model_card(input_shape=input_shape, time_steps=time_steps, dt=dt, dataset=dataset, class_names=class_names,
               accuracy=accuracy, model_name=model_name, extra=extra).save(out_dir / CARD_NAME)
    return path


def model_card(*, input_shape: list[int], time_steps: int, dt: float, dataset: dict[str, Any],
               class_names: list[str], accuracy: dict[str, float], model_name: str,
               extra: dict[str, Any] | None = None) -> ModelCard:
    """The card ``deploy`` reads beside an exported graph (what :func:`export_model` writes)."""
    from neuromoco.deploy.card import ModelCard
    from neuromoco.train import __version__ as version

    return ModelCard(
        input_shape=[int(v) for v in input_shape], time_steps=int(time_steps), dt=float(dt), dataset=dict(dataset),
        class_names=list(class_names), accuracy={k: float(v) for k, v in accuracy.items()}, model=model_name,
        version=version,
        extra={"exporter": "neuromoco.train.export", "nir_version": getattr(nir, "version", ""),
               "readout": "prediction = arg-max over classes of the output node summed over time",
               "initial_state": "all neuron states start at 0", **(extra or {})},
    )
