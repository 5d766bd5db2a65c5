"""ONNX target: a streaming one-time-step ONNX graph from the NIR graph, optional int8 (QDQ), onnxruntime runs.

``export`` writes ``model.onnx`` (float32, opset 17 by default): one time step with every neuron's state
as explicit inputs and outputs and per-layer spike counts as extra outputs (see
:mod:`neuromoco.deploy.targets.onnx_build`). With ``quantize="int8"`` it also writes ``model.int8.onnx``: static
QDQ quantization of the synapses with onnxruntime, calibrated on real samples replayed over time (see
:mod:`neuromoco.deploy.targets.onnx_quant`), and ``model.int8.quant.json`` with the report of what was quantized.
``load`` opens either file in an onnxruntime session on CPU that loops over the time steps carrying the
states (:class:`neuromoco.deploy.targets.onnx_run.OnnxRunner`).

Options (keywords, as ``deploy export/run`` and ``deploy parity`` pass them):

* ``quantize``: ``None`` (float32) or ``"int8"``;
* ``calibration``: frames ``[N, T, C, H, W]`` for int8; when ``None`` the model card's dataset is read
  through :func:`neuromoco.deploy.datasets.load_frames` (train split, ``calibration_samples`` samples);
* ``opset`` (default 17), ``batch_size`` (samples per onnxruntime call, default 64),
  ``spike_tensors`` (also output the full 0/1 spike tensors, for rasters and divergence analysis),
  ``calibrate_method`` (``minmax``/``entropy``/``percentile``), ``calibration_samples`` (64),
  ``quantize_currents`` (also quantize the synapse outputs, the currents into the neurons, so
  onnxruntime runs integer kernels; default False: measured less faithful and no faster here),
  ``keep_float`` (NIR node names whose synapses stay float32, a list or a comma-separated string;
  default: the synapses that read the graph's input, see :func:`input_synapses`; ``""`` or ``[]`` for a
  model with every synapse in int8), ``threads`` (onnxruntime intra-op threads), ``progress``;
* ``sequence`` (alias ``unroll``): also write the whole sequence as one graph (a ``Scan`` over time of the
  step graph, :mod:`neuromoco.deploy.targets.onnx_sequence`) and run that: one onnxruntime call per batch.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import nir
import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.targets.onnx_build import DEFAULT_OPSET, build_step_model
from neuromoco.deploy.targets.onnx_run import OnnxRunner
from neuromoco.errors import UserError

FP32_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"

_RUN_KEYS = {"batch_size", "progress", "spikes", "spike_tensors", "record_spikes", "threads", "optimization"}


def _check_quantize(q: Any) -> str | None:
    if q in (None, "", "none", "fp32", "float", False):
        return None
    if q in ("int8", True):
        return "int8"
    raise UserError(f"unknown ONNX quantization {q!r}; use none or int8")


def input_synapses(graph: nir.NIRGraph) -> list[str]:
    """The synapse nodes (conv, affine, linear) that read the graph's input, through reshapes and pooling.

    int8 keeps them in float32 by default. They multiply graded event counts rather than 0/1 spikes, feed
    the widest neuron layer, and hold few weights (288 of 19,322 in ``vgg34``). Measured on two trained
    ``vgg34`` over 1,554 embedded training samples that calibration did not see, keeping them float halves
    the flipped predictions: agreement 0.9910 -> 0.9961 and 0.9897 -> 0.9949.
    """
    synapses = (nir.Conv1d, nir.Conv2d, nir.Affine, nir.Linear)
    passthrough = (nir.Flatten, nir.SumPool2d, nir.AvgPool2d, nir.Scale)
    frontier = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    seen, found = set(frontier), []
    while frontier:
        here = frontier.pop()
        for src, dst in graph.edges:
            if src != here or dst in seen:
                continue
            seen.add(dst)
            if isinstance(graph.nodes[dst], synapses):
                found.append(dst)
            elif isinstance(graph.nodes[dst], passthrough):
                frontier.append(dst)
    return sorted(found)


def _keep_float(option: list[str] | str | None, graph: nir.NIRGraph) -> list[str]:
    """``keep_float`` as node names: the default (None) is :func:`input_synapses`; a string is split at commas."""
    if option is None:
        return input_synapses(graph)
    names = option.split(",") if isinstance(option, str) else list(option)
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in graph.nodes]
    if unknown:
        raise UserError(f"keep_float names no node of the graph: {', '.join(unknown)}")
    return names


class OnnxTarget:
    name = "onnx"

    def export(self, graph: nir.NIRGraph, card: ModelCard, out_dir: Path, *, quantize: str | None = None,
               calibration: np.ndarray | None = None, opset: int = DEFAULT_OPSET, batch_size: int = 64,
               spike_tensors: bool = False, calibrate_method: str = "minmax", calibration_samples: int = 64,
               quantize_currents: bool = False, keep_float: list[str] | str | None = None,
               sequence: bool = False, dataset: str | None = None,
               root: str | None = None, **_other: Any) -> Path:
        """Write ``model.onnx`` (and with ``quantize="int8"`` ``model.int8.onnx``); return the one to run.

        With ``sequence`` (alias ``unroll``) the step model (fp32 or int8) is also wrapped in a ``Scan``
        over time, written as ``model.seq.onnx`` / ``model.int8.seq.onnx``, and that one is returned.
        """
        sequence = bool(sequence or _other.get("unroll"))
        import onnx

        from neuromoco.deploy.graph import check_graph

        quantize = _check_quantize(quantize)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        check_graph(graph, input_shape=list(card.input_shape) if card.input_shape else None)
        model, spec = build_step_model(graph, card.dt, opset=int(opset), spike_tensors=spike_tensors,
                                       input_shape=list(card.input_shape) if card.input_shape else None)
        fp32 = out_dir / FP32_NAME
        _atomic_save(model, fp32)
        if quantize is None:
            return _sequence(fp32) if sequence else fp32
        from neuromoco.deploy.targets.onnx_quant import quantize_int8

        if calibration is None:
            calibration = _calibration_frames(card, dataset, root, int(calibration_samples))
        calibration = np.asarray(calibration, dtype=np.float32)
        if calibration.ndim >= 2 and list(calibration.shape[2:]) != list(spec.input_shape) and \
                int(np.prod(calibration.shape[2:])) == int(np.prod(spec.input_shape)):
            calibration = calibration.reshape(*calibration.shape[:2], *spec.input_shape)
        int8 = out_dir / INT8_NAME
        report = quantize_int8(fp32, int8, calibration, batch_size=min(int(batch_size), 16),
                               calibrate_method=calibrate_method, quantize_currents=quantize_currents,
                               keep_float=_keep_float(keep_float, graph))
        from neuromoco.io import atomic_write_json

        atomic_write_json(out_dir / "model.int8.quant.json", report)
        onnx.checker.check_model(str(int8))
        return _sequence(int8) if sequence else int8

    def load(self, artefact: Path, **options: Any) -> OnnxRunner:
        opts = {k: v for k, v in options.items() if k in _RUN_KEYS}
        for alias in ("spike_tensors", "record_spikes"):  # the names other targets use for the same thing
            if alias in opts:
                wanted = bool(opts.pop(alias))
                opts["spikes"] = bool(opts.get("spikes")) or wanted
        artefact = Path(artefact)
        if artefact.is_dir():  # an export folder: the file the options name
            q = _check_quantize(options.get("quantize"))
            name = INT8_NAME if q == "int8" else FP32_NAME
            if options.get("sequence") or options.get("unroll"):
                name = name.replace(".onnx", ".seq.onnx")
            if not (artefact / name).exists():
                raise UserError(f"{artefact} holds no {name}; export it with `deploy export --target onnx"
                                f"{' --int8' if q else ''}`" + (" -o sequence=true" if ".seq." in name else ""))
            artefact = artefact / name
        return OnnxRunner(artefact, **opts)

    def runner(self, graph: nir.NIRGraph, card: ModelCard, **options: Any) -> OnnxRunner:
        """Export to a temporary folder and open it (the folder lives as long as the runner)."""
        tmp = tempfile.TemporaryDirectory(prefix="neuromoco-onnx-")
        if options.get("record_spikes"):
            options = {**options, "spike_tensors": True}
        path = self.export(graph, card, Path(tmp.name), **options)
        run = self.load(path, **options)
        run._tmpdir = tmp  # keep the files alive with the runner
        return run


def _sequence(step_path: Path) -> Path:
    import onnx

    from neuromoco.deploy.targets.onnx_sequence import wrap_sequence

    path = step_path.with_name(step_path.name.replace(".onnx", ".seq.onnx"))
    _atomic_save(wrap_sequence(onnx.load(str(step_path))), path)
    return path


def _atomic_save(model: Any, path: Path) -> None:
    import onnx

    from neuromoco.io import atomic_write

    atomic_write(path, lambda tmp: onnx.save(model, tmp))


def _calibration_frames(card: ModelCard, dataset: str | None, root: str | None, limit: int) -> np.ndarray:
    from neuromoco.deploy.datasets import load_frames

    try:
        frames, _ = load_frames(card, dataset=dataset, split="train", root=root, limit=limit)
    except UserError as err:
        raise UserError(f"int8 quantization needs calibration samples from the model's dataset and none "
                        f"could be read ({err}); pass a dataset (--dataset NAME or a frames .npz file)") from None
    if len(frames) == 0:
        raise UserError("int8 quantization needs calibration samples; the dataset's train split is empty")
    return frames


def describe(path: str | Path) -> dict[str, Any]:
    """The interface and quantization report stored in an exported model (for ``deploy inspect``)."""
    import onnx

    from neuromoco.deploy.targets.onnx_build import StepSpec

    spec = StepSpec.of(onnx.load(str(path), load_external_data=False))
    return json.loads(spec.to_json())


TARGET = OnnxTarget()
