"""Turn a model into a target's artefact (a Lava network, an ONNX file): the job behind ``deploy export``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuromoco.deploy.api.model import Model, as_model


def export_artefact(model: Model, target: str, out_dir: str | Path, values: dict[str, Any], context: Any,
                    echo: Callable[[str], None] | None = None) -> tuple[Path, Any]:
    """Write ``target``'s artefact for ``model`` under ``out_dir`` with the model card beside it (so
    ``Model.load(out_dir)`` and ``deploy run OUT_DIR`` find both); returns the artefact and the target object."""
    from neuromoco.deploy.api.options import target_options, with_card_options
    from neuromoco.deploy.card import CARD_NAME

    graph = model.require_graph("export")
    values = with_card_options(model.card, {target: values}, echo)[target]
    tgt, options = target_options(target, values)
    out = Path(out_dir)
    artefact = tgt.export(graph, model.card, out, options, context)
    model.card.save(out / CARD_NAME)
    return Path(artefact), tgt


def export(model: Model | str | Path, target: str, out_dir: str | Path, options: Any = None, *, calibration: Any = None,
           dataset: str | None = None, root: str | None = None, progress: bool = False,
           **option_values: Any) -> Path:
    """Write ``model`` as ``target``'s artefact under ``out_dir`` (with its model card) and return the artefact.

    ``options`` / keyword arguments: the target's options, checked as ``-o`` checks them. ``calibration`` (frames
    or a frames ``.npz``) or ``dataset`` / ``root``: what a quantizing target (``onnx``, ``quantize="int8"``)
    calibrates on. Load the folder back with :meth:`Model.load` to run the artefact as it is.
    """
    from neuromoco.deploy.api.context import run_context
    from neuromoco.deploy.api.options import option_values as values_of

    values = values_of(target, options, option_values)
    model = as_model(model)
    artefact, _ = export_artefact(model, target, out_dir, values, run_context(dataset, root, calibration, progress))
    return artefact
