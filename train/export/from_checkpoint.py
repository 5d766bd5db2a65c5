"""From a classifier checkpoint to ``model.nir`` + ``model_card.json`` (through ``neuromoco.train.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from neuromoco.errors import UserError
from neuromoco.train.engine.own_encoder import require_registry_model
from neuromoco.train.export import deploy_modules_of, export_model, to_nir
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.models.neurons import LIF
from neuromoco.train.models.registry import build_classifier


def classifier_from_checkpoint(ckpt: dict[str, Any]) -> SpikingClassifier:
    """The registry classifier of ``ckpt`` with its weights, in evaluation mode (an own encoder's is refused:
    its code is not in the checkpoint)."""
    require_registry_model(ckpt, "export the model object instead: export_nir(model, ...) of neuromoco.train.api")
    m = ckpt["model"]
    model = build_classifier(m["name"], m["input_shape"], int(m["num_classes"]), **m.get("kwargs", {}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{ckpt.get('_path', 'checkpoint')}: weights do not fit {m['name']}: "
                        f"{str(err).splitlines()[0]}") from None
    return model.eval()


def model_dt(model: nn.Module) -> float:
    for mod in model.modules():
        if isinstance(mod, LIF):
            return float(mod.config.dt)
    return 1e-3


def export_classifier(ckpt: dict[str, Any], out_dir: str | Path,
                      accuracy: dict[str, float] | None = None) -> Path:
    """Write the NIR graph and card of a deployable classifier; return the graph's path.

    A checkpoint trained with ``--qat loihi`` is exported with its weights projected onto the Loihi 2 grid
    it was trained on and its thresholds lifted off that grid (:mod:`neuromoco.train.qat`); its card records
    the grid and the matching deploy options (``extra.qat``). Each file is written once.
    """
    model = classifier_from_checkpoint(ckpt)
    if not model.deployable:
        raise UserError(f"{ckpt['model']['name']} is not deployable (see `train models`); nothing to export")
    return export_trained(model, ckpt, out_dir, accuracy)


def export_trained(model: SpikingClassifier, ckpt: dict[str, Any], out_dir: str | Path,
                   accuracy: dict[str, float] | None = None) -> Path:
    """Write the NIR graph and card of ``model`` (a classifier holding ``ckpt``'s weights, registry or own
    encoder), its card from ``ckpt``'s data record, QAT grid and test accuracy; return the graph's path."""
    input_shape = list(ckpt["model"]["input_shape"])
    dt = model_dt(model)
    config = None
    if ckpt.get("qat"):
        from neuromoco.train.qat import QATConfig, project_state_dict

        config = QATConfig.from_record(ckpt["qat"])
        model.load_state_dict(project_state_dict(model, config, input_shape))
    data = ckpt.get("data", {})
    if accuracy is None:
        top1 = ckpt.get("metrics", {}).get("test_top1")
        accuracy = {"test": float(top1)} if top1 is not None else {}
    # the recipe (name, kind, sensor, time unit, framing) lets deploy frame the same data from the card alone
    time_steps = int(data.get("time_steps", 16))
    dataset = {**data.get("recipe", {}), "name": data.get("dataset"), "time_steps": time_steps,
               "downsample": int(data.get("downsample", 1)), "sensor_size": list(data.get("sensor_size", [])),
               "split": "test"} if data.get("dataset") else {}  # none: trained on dataset objects (the API's)
    modules = deploy_modules_of(model)
    try:
        graph = to_nir(modules, input_shape, dt)
    except ValueError as err:  # neuromoco.train.export.ExportError names the module with no exact NIR form
        raise UserError(f"NIR export failed: {err}") from None
    extra: dict[str, Any] = {}
    if config is not None:
        from neuromoco.train.qat import lift_thresholds

        graph, lifted = lift_thresholds(graph, config, input_shape, dt)
        extra["qat"] = config.card_entry(lifted)
    return export_model(modules, Path(out_dir), input_shape=input_shape, time_steps=time_steps, dt=dt,
                        dataset=dataset, class_names=list(data.get("class_names", [])), accuracy=accuracy,
                        model_name=ckpt["model"]["name"], graph=graph, extra=extra)
