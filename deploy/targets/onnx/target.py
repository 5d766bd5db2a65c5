"""The ONNX target object (:data:`TARGET`): export, load and runner over the package's modules.

Options: :class:`~neuromoco.deploy.targets.onnx.options.OnnxOptions`; files: see
:mod:`neuromoco.deploy.targets.onnx`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import nir
import numpy as np

from neuromoco.deploy.card import CARD_NAME, ModelCard
from neuromoco.deploy.targets.base import Target, time_steps_beside
from neuromoco.deploy.targets.onnx.options import OnnxOptions
from neuromoco.deploy.targets.options import RunContext
from neuromoco.errors import UserError

FP32_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"


class OnnxTarget(Target):
    name = "onnx"
    Options = OnnxOptions

    def write(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, options: OnnxOptions,
              context: RunContext) -> Path:
        """Write ``model.onnx`` (and with ``quantize="int8"`` ``model.int8.onnx``); return the one to run.

        With ``sequence`` the step model (fp32 or int8) is also wrapped in a ``Scan`` over time, written as
        ``model.seq.onnx`` / ``model.int8.seq.onnx``, and that one is returned.
        """
        import onnx

        from neuromoco.deploy.graph import check_graph
        from neuromoco.deploy.targets.onnx.builder import build_step_model

        out_dir.mkdir(parents=True, exist_ok=True)
        input_shape = list(card.input_shape) if card.input_shape else None
        check_graph(graph, input_shape=input_shape)
        model, spec = build_step_model(graph, card.dt, opset=options.opset, spike_tensors=options.record_spikes,
                                       input_shape=input_shape)
        fp32 = out_dir / FP32_NAME
        _atomic_save(model, fp32)
        if options.quantize == "none":
            return _sequence(fp32) if options.sequence else fp32
        from neuromoco.deploy.targets.onnx.calibration import calibration_frames
        from neuromoco.deploy.targets.onnx.keep_float import keep_float_names
        from neuromoco.deploy.targets.onnx.quant import quantize_int8
        from neuromoco.io import atomic_write_json

        calibration = context.calibration
        if calibration is None:
            calibration = calibration_frames(card, context.dataset, context.root, options.calibration_samples)
        calibration = np.asarray(calibration, dtype=np.float32)
        if calibration.ndim >= 2 and list(calibration.shape[2:]) != list(spec.input_shape) and \
                int(np.prod(calibration.shape[2:])) == int(np.prod(spec.input_shape)):
            calibration = calibration.reshape(*calibration.shape[:2], *spec.input_shape)
        int8 = out_dir / INT8_NAME
        report = quantize_int8(fp32, int8, calibration, batch_size=min(options.batch_size, 16),
                               calibrate_method=options.calibrate_method,
                               quantize_currents=options.quantize_currents,
                               keep_float=keep_float_names(options.keep_float, graph))
        atomic_write_json(out_dir / "model.int8.quant.json", report)
        onnx.checker.check_model(str(int8))
        return _sequence(int8) if options.sequence else int8

    def open(self, artefact: Path, options: OnnxOptions, context: RunContext,
             workdir: tempfile.TemporaryDirectory | None = None) -> Any:
        from neuromoco.deploy.targets.onnx.runner import OnnxRunner

        if artefact.is_dir():  # an export folder: the file the options name
            name = INT8_NAME if options.quantize == "int8" else FP32_NAME
            if options.sequence:
                name = name.replace(".onnx", ".seq.onnx")
            if not (artefact / name).exists():
                raise UserError(f"{artefact} holds no {name}; export it with `deploy export --target onnx"
                                f"{' --int8' if options.quantize == 'int8' else ''}`"
                                + (" -o sequence=true" if options.sequence else ""))
            artefact = artefact / name
        return OnnxRunner(artefact, batch_size=options.batch_size, progress=context.progress or None,
                          record_spikes=options.record_spikes, threads=options.threads, workdir=workdir,
                          time_steps=time_steps_beside(artefact))

    def build(self, graph: nir.NIRGraph, card: ModelCard, options: OnnxOptions, context: RunContext) -> Any:
        """Export to a temporary folder (the card beside, as ``deploy export`` leaves it) and open it: the runner
        owns the folder."""
        tmp = tempfile.TemporaryDirectory(prefix="neuromoco-onnx-")
        card.save(Path(tmp.name) / CARD_NAME)
        return self.open(self.write(graph, card, Path(tmp.name), options, context), options, context, workdir=tmp)


def _sequence(step_path: Path) -> Path:
    import onnx

    from neuromoco.deploy.targets.onnx.sequence import wrap_sequence

    path = step_path.with_name(step_path.name.replace(".onnx", ".seq.onnx"))
    _atomic_save(wrap_sequence(onnx.load(str(step_path))), path)
    return path


def _atomic_save(model: Any, path: Path) -> None:
    import onnx

    from neuromoco.io import atomic_write

    atomic_write(path, lambda tmp: onnx.save(model, tmp))


TARGET = OnnxTarget()
