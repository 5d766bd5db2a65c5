"""int8 static quantization of a step graph with onnxruntime (QDQ format), calibrated on real frames.

Only the synapses are quantized: ``Conv`` (not the ones-kernel convs that implement pooling, which are
exact on spikes already), ``Gemm`` and ``MatMul``, with int8 weights per output channel and uint8
activations. The neuron arithmetic (``Add``/``Sub``/``Mul`` of the state update, ``Greater``, ``Where``)
is excluded node by node, so the threshold compare stays exact, spikes stay 0/1 and states stay float32;
only the current a neuron receives carries the int8 error. Calibration: :mod:`.calibration`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.targets.onnx.calibration import OneFeedReader, ReplayReader, replay_ranges
from neuromoco.deploy.targets.onnx.spec import StepSpec
from neuromoco.errors import UserError

QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]
METHODS = ("minmax", "entropy", "percentile")

Overrides = dict[str, list[dict[str, np.ndarray]]]  # onnxruntime's TensorQuantOverrides


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray,
                  batch_size: int = 16, calibrate_method: str = "minmax",
                  per_channel: bool = True, quantize_currents: bool = False,
                  keep_float: list[str] | None = None) -> dict[str, Any]:
    """Write the int8 (QDQ) model of ``fp32_path`` to ``out_path``; returns the quantization report.

    The report lists the nodes quantized, the nodes kept in float (neuron arithmetic, pooling, and the NIR
    nodes named in ``keep_float``) and the calibration used; it is also stored in the model's metadata.

    Tensors whose values lie on a known grid -- spikes, sums of spikes out of a sum pool, averages of
    spikes, and the input frames when the calibration frames are event counts (integers, at most 255) --
    get a fixed scale that represents every grid value exactly (:func:`grid_override`); the calibrated
    ranges apply to the rest. (Frames above the calibrated maximum saturate at run time.)

    ``quantize_currents`` also quantizes the synapses' outputs, the currents into the neurons (uint8 per
    tensor), so onnxruntime can fuse DequantizeLinear -> Conv -> QuantizeLinear into integer kernels
    (``QLinearConv``, ``QGemm``). Off by default: then a synapse multiplies int8 weights by exactly
    represented spikes and accumulates without rounding the sum to 8 bits (as Loihi accumulates into its
    24-bit current), which measured 2-3x fewer flipped spikes and no slower on this CPU.
    """
    import onnx

    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim < 3 or calibration.shape[0] == 0:
        raise UserError(f"calibration frames must be [N, T, ...] with N > 0, got shape {list(calibration.shape)}")
    model = onnx.load(str(fp32_path))
    spec = StepSpec.of(model)
    keep = set(keep_float or [])
    synapses = [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.name not in spec.pooling_nodes
                and n.name.split("/")[0] not in keep]
    exclude = [n.name for n in model.graph.node if n.name not in synapses]
    if calibrate_method not in METHODS:
        raise UserError(f"unknown calibration method {calibrate_method!r}; known: {', '.join(METHODS)}")
    overrides = _grid_overrides(spec, calibration)
    feeds = 0
    if calibrate_method == "minmax":
        # ranges streamed over the whole replay here; onnxruntime's own pass then needs one feed
        feeds = _add_range_overrides(overrides, model, synapses, fp32_path, calibration, batch_size,
                                     quantize_currents)
        reader: ReplayReader = OneFeedReader(fp32_path, calibration, batch_size)
    else:  # histogram methods: onnxruntime keeps every feed's tensors (memory grows with samples x steps)
        reader = ReplayReader(fp32_path, calibration, batch_size)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        _quantize_static(fp32_path, tmp, reader, synapses, exclude, per_channel, calibrate_method,
                         overrides, quantize_currents)
        q = onnx.load(str(tmp))
        report = {
            "format": "QDQ", "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": "uint8: exact fixed scale on spike grids, calibrated range elsewhere",
            "calibration": {
                "method": calibrate_method, "samples": int(calibration.shape[0]),
                "time_steps": int(calibration.shape[1]), "feeds": feeds or reader.feeds},
            "quantized_nodes": _quantized_nodes(q),
            "currents_quantized": bool(quantize_currents),
            "exact_grid_tensors": sorted(t for t in overrides if t in _tensor_names(q)),
            "kept_float": sorted(keep),
            "float_nodes": {"neuron": len(spec.neuron_nodes), "pooling": list(spec.pooling_nodes),
                            "other": [n for n in exclude if n not in spec.neuron_nodes
                                      and n not in spec.pooling_nodes]},
        }
        spec.quantization = report
        spec.attach(q)
        onnx.checker.check_model(q)
        onnx.save(q, str(tmp))
        tmp.replace(out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return report


def _grid_overrides(spec: StepSpec, calibration: np.ndarray) -> Overrides:
    """Exact fixed scales for the tensors on a known grid (and the frames when they are event counts)."""
    grids = {k: tuple(v) for k, v in spec.grid_tensors.items()}
    if np.all(calibration >= 0) and np.all(calibration == np.round(calibration)):  # event counts
        grids[spec.input] = (1, max(1, int(calibration.max())))
    return {t: [grid_override(d, u)] for t, (d, u) in grids.items() if u <= 255}


def _add_range_overrides(overrides: Overrides, model: Any, synapses: list[str], fp32_path: str | Path,
                         calibration: np.ndarray, batch_size: int, quantize_currents: bool) -> int:
    """Add the min-max range, streamed over the replay, of every quantized activation without a grid.

    The activations are the synapses' inputs (and outputs with ``quantize_currents``); the ranges
    include 0. Returns the number of feeds replayed.
    """
    nodes = {n.name: n for n in model.graph.node}
    acts = [nodes[n].input[0] for n in synapses]
    if quantize_currents:
        acts += [nodes[n].output[0] for n in synapses]
    acts = [t for t in dict.fromkeys(acts) if t not in overrides]
    ranges, feeds = replay_ranges(fp32_path, calibration, acts, batch_size)
    overrides.update({t: [{"rmin": np.array(min(lo, 0.0), np.float32), "rmax": np.array(max(hi, 0.0), np.float32)}]
                      for t, (lo, hi) in ranges.items()})
    return feeds


def _quantize_static(fp32_path: str | Path, out: Path, reader: ReplayReader, synapses: list[str],
                     exclude: list[str], per_channel: bool, calibrate_method: str, overrides: Overrides,
                     quantize_currents: bool) -> None:
    """onnxruntime's ``quantize_static`` in QDQ format on the chosen synapses, calibrated by ``reader``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    extra: dict[str, Any] = {"TensorQuantOverrides": overrides}
    if not quantize_currents:
        extra["OpTypesToExcludeOutputQuantization"] = list(QUANTIZED_OPS)

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return reader.get_next()

        def rewind(self) -> None:
            reader.rewind()

    with _without_preprocessing_hint():
        quantize_static(str(fp32_path), str(out), _Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, nodes_to_quantize=synapses or None,
                        nodes_to_exclude=exclude, per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[calibrate_method],
                        extra_options=extra)


class _PreprocessingHint(logging.Filter):
    """Drops onnxruntime's "Please consider (to run) pre-processing before quantization" records."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Please consider") and "pre-processing before quantization" in msg)


@contextlib.contextmanager
def _without_preprocessing_hint() -> Iterator[None]:
    """Within the block, onnxruntime's advice to pre-process the model is not logged.

    ``quantize_static`` logs it twice on the root logger for any model without onnxruntime's pre-processing
    mark. That pre-processing (``quant_pre_process``: shape inference and graph optimisation) is not run: the
    step graph is built here with every shape known, and optimisation can fuse and rename the nodes that
    ``nodes_to_quantize`` and the step spec name. A NullHandler keeps ``logging.warning`` from configuring the
    root logger (``basicConfig``) as a side effect while the filter is in place; both are removed afterwards.
    """
    root = logging.getLogger()
    hint, null = _PreprocessingHint(), logging.NullHandler()
    add_null = not root.handlers
    root.addFilter(hint)
    if add_null:
        root.addHandler(null)
    try:
        yield
    finally:
        root.removeFilter(hint)
        if add_null:
            root.removeHandler(null)


def _quantized_nodes(model: Any) -> list[str]:
    """Names of the float nodes that read a DequantizeLinear'd weight: the ones running in int8."""
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in model.graph.node
            if n.op_type in QUANTIZED_OPS and len(n.input) > 1 and n.input[1] in dq_out]


def grid_override(d: int, u: int) -> dict[str, np.ndarray]:
    """Scale and zero point that represent the values ``k / d``, ``k = 0..u``, exactly in uint8.

    Each grid step becomes ``n`` quantization steps, ``n`` the largest power of two with ``n u <= 128``
    (so the scale is exact in float for spikes and power-of-two pooling areas), and the largest value maps
    to at most 128: x86 CPUs without VNNI multiply uint8 by int8 in pairs summed into int16
    (``VPMADDUBSW``), which saturates when both inputs are large; 2 * 128 * 127 stays below 2**15. The
    finer steps also make the int32 bias of the next synapse finer (bias scale = input scale x weight
    scale) than scale 1 would.
    """
    n = 1 << max(0, (128 // max(1, u)).bit_length() - 1)  # a power of two: k / (d n) is exact for d = 2^j
    return {"scale": np.array(1.0 / (d * n), np.float32), "zero_point": np.array(0, np.uint8)}


def _tensor_names(model: Any) -> set[str]:
    names = {i.name for i in model.graph.input}
    for n in model.graph.node:
        names.update(n.input)
    return names
