"""From a classifier checkpoint to ``model.nir`` + ``model_card.json`` (through ``neuromoco.train.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.errors import UserError
from neuromoco.train.export import export_model
from neuromoco.train.models.base import SpikingClassifier
from neuromoco.train.models.neurons import LIF
from neuromoco.train.models.registry import build_classifier


def classifier_from_checkpoint(ckpt: dict[str, Any]) -> SpikingClassifier:
    m = ckpt["model"]
    model = build_classifier(m["name"], m["input_shape"], int(m["num_classes"]), **m.get("kwargs", {}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{ckpt.get('_path', 'checkpoint')}: weights do not fit {m['name']}: "
                        f"{str(err).splitlines()[0]}") from None
    return model.eval()


def model_dt(model: SpikingClassifier) -> float:
    for mod in model.modules():
        if isinstance(mod, LIF):
            return float(mod.config.dt)
    return 1e-3


def export_classifier(ckpt: dict[str, Any], out_dir: str | Path,
                      accuracy: dict[str, float] | None = None) -> Path:
    """Write the NIR graph and card of a deployable classifier; return the graph's path.

    A checkpoint trained with ``--qat loihi`` is exported with its weights projected onto the Loihi 2 grid
    it was trained on, and its card records that grid and the matching deploy options (``extra.qat``).
    """
    model = classifier_from_checkpoint(ckpt)
    if not model.deployable:
        raise UserError(f"{ckpt['model']['name']} is not deployable (see `train models`); nothing to export")
    qat = ckpt.get("qat")
    if qat:
        from neuromoco.train.models.qat import QATConfig, project_state_dict

        config = QATConfig(**qat)
        model.load_state_dict(project_state_dict(model, config, list(ckpt["model"]["input_shape"])))
    data = ckpt.get("data", {})
    if accuracy is None:
        top1 = ckpt.get("metrics", {}).get("test_top1")
        accuracy = {"test": float(top1)} if top1 is not None else {}
    # the recipe (name, kind, sensor, time unit, framing) lets deploy frame the same data from the card alone
    dataset = {**data.get("recipe", {}), "name": data.get("dataset"), "time_steps": int(data.get("time_steps", 16)),
               "downsample": int(data.get("downsample", 1)), "sensor_size": list(data.get("sensor_size", [])),
               "split": "test"}
    try:
        path = export_model(model.deploy_modules(), Path(out_dir), input_shape=list(ckpt["model"]["input_shape"]),
                            time_steps=dataset["time_steps"], dt=model_dt(model), dataset=dataset,
                            class_names=list(data.get("class_names", [])), accuracy=accuracy,
                            model_name=ckpt["model"]["name"])
    except ValueError as err:  # neuromoco.train.export.ExportError names the module with no exact NIR form
        raise UserError(f"NIR export failed: {err}") from None
    if qat:
        lifted = lift_thresholds(path, config, list(ckpt["model"]["input_shape"]), model_dt(model))
        _record_qat(Path(out_dir), config, lifted)
    return path


#: a QAT graph's thresholds sit this fraction of the plan's voltage unit above the grid (see lift_thresholds)
THRESHOLD_MARGIN = 1.0 / 3.0


def lift_thresholds(path: Path, config: Any, input_shape: list[int], dt: float) -> list[str]:
    """Lift every spiking neuron's threshold in the graph at ``path`` by a third of its voltage unit in the
    plan ``config`` compiles (``1 / (64 sigma)`` volts); returns the nodes changed.

    QAT puts weights, biases and thresholds on one integer grid, so a membrane voltage often equals its
    threshold exactly; Loihi's ``v > vth`` then does not spike, while float32 executors decide by rounding
    noise (torch and onnxruntime sum in different orders: one flipped spike in 32 samples measured on the
    residual model). A third of a unit lies off the grid's halvings (the decay halves voltages), so an exact
    voltage does not land on it, and it is below the plan's resolution: the recompiled plan must hold the same
    integers (mantissas, exponents, thresholds, biases, decays), else the graph is left as it was. Where the
    24-bit state bound holds a layer's scale, its float scale moves with the threshold (``sigma * vth`` stays
    an integer), so ``lava_export.json`` reads the weights off the grid by about ``1 / (192 sigma vth)``.
    """
    import nir

    from neuromoco.deploy.loihi.compile import compile_graph
    from neuromoco.io import atomic_write

    def plan_of(graph: Any) -> Any:
        return compile_graph(graph, dt, precision="fixed", input_shape=input_shape,
                             input_scale=config.input_scale, input_max=config.input_max,
                             per_neuron_scale=config.scale == "neuron", weight_bits=config.weight_bits,
                             sign_split=False)

    graph = nir.read(path)
    before = plan_of(graph)
    changed: list[str] = []
    for lay in before.layers:
        node = graph.nodes[lay.name]
        if not lay.spiking or not isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF)):
            continue
        sigma = np.broadcast_to(np.asarray(lay.scale, dtype=np.float64), (lay.size,)).reshape(lay.shape)
        vth = np.broadcast_to(np.asarray(node.v_threshold, dtype=np.float64), lay.shape)
        node.v_threshold = (vth + THRESHOLD_MARGIN / (64.0 * sigma)).astype(np.float32)
        changed.append(lay.name)
    if not changed or not _same_integers(before, plan_of(graph)):
        return []
    atomic_write(path, lambda tmp: nir.write(tmp, graph))
    return changed


def _same_integers(a: Any, b: Any) -> bool:
    """Whether two fixed-point plans hold the same integers: thresholds, biases, decays, every connection's
    mantissas and exponents (what Loihi runs; the float scales may move in their last digits)."""
    for x, y in zip(a.layers, b.layers):
        if not all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("vth", "bias_mant", "bias_exp", "du", "dv")):
            return False
        if len(x.conns) != len(y.conns) or any(
                c.weight_exp != d.weight_exp or not _same_weights(c, d) for c, d in zip(x.conns, y.conns)):
            return False
    return len(a.layers) == len(b.layers)


def _same_weights(c: Any, d: Any) -> bool:
    """Whether two plan connections hold the same integer weights (two matrices, or two kernels)."""
    if (c.kernel is None) != (d.kernel is None):
        return False
    if c.kernel is not None:
        return c.kernel.weight.shape == d.kernel.weight.shape and bool(np.array_equal(c.kernel.weight, d.kernel.weight))
    return (c.matrix != d.matrix).nnz == 0


def _record_qat(out_dir: Path, config: Any, lifted: list[str]) -> None:
    """Note in the model card what the weights were trained for (and the deploy options that match)."""
    from neuromoco.deploy.card import CARD_NAME, ModelCard

    card = ModelCard.load(out_dir / CARD_NAME)
    qat = {**config.record(), "deploy_options": config.deploy_options()}
    if lifted:
        qat["threshold_margin"] = (f"v_threshold of {', '.join(lifted)} lifted by {THRESHOLD_MARGIN:.4g} of the "
                                   "plan's voltage unit 1/(64 sigma): exact ties on the grid do not spike on "
                                   "Loihi (v > vth), and no float executor sees a tie")
    card.extra = {**card.extra, "qat": qat}
    card.save(out_dir / CARD_NAME)
