"""int8 static quantization of a step graph with onnxruntime (QDQ format), calibrated on real frames.

Only the synapses are quantized: ``Conv`` (not the ones-kernel convs that implement pooling, which are
exact on spikes already), ``Gemm`` and ``MatMul``, with int8 weights per output channel and uint8
activations. The neuron arithmetic (``Add``/``Sub``/``Mul`` of the state update, ``Greater``, ``Where``)
is excluded node by node, so the threshold compare stays exact, spikes stay 0/1 and states stay float32;
only the current a neuron receives carries the int8 error.

Calibration replays real samples through the fp32 step graph over all time steps, so every tensor the
calibrator sees (frames, states, currents) is what the network meets at run time. With the default
min-max method the ranges are streamed over the replay (:func:`replay_ranges`) and handed to
onnxruntime as tensor overrides: memory stays flat however many samples and steps calibrate (onnxruntime
1.32's own min-max calibrator keeps every feed's tensors, and its ``CalibMaxIntermediateOutputs``
option drops the collected data instead of merging it: microsoft/onnxruntime#18893, fix not released).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.targets.onnx_build import StepSpec
from neuromoco.errors import UserError

QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


class ReplayReader:
    """A ``CalibrationDataReader`` that feeds the step graph the inputs it sees on real samples.

    ``frames`` ``[N, T, C, H, W]``; samples go through the fp32 model in batches of ``batch_size`` with
    their states carried over time, and every step's feed (frame and states) is handed to the calibrator.
    """

    def __init__(self, fp32_path: str | Path, frames: np.ndarray, batch_size: int = 16) -> None:
        from neuromoco.deploy.targets.onnx_run import OnnxRunner

        self.runner = OnnxRunner(fp32_path, batch_size=batch_size, progress=False)
        self.frames = np.asarray(frames, dtype=np.float32)
        self.batch_size = max(1, int(batch_size))
        self._it: Iterator[dict[str, np.ndarray]] | None = None
        self.feeds = 0

    def _all(self) -> Iterator[dict[str, np.ndarray]]:
        for s in range(0, self.frames.shape[0], self.batch_size):
            seq = np.swapaxes(self.frames[s:s + self.batch_size], 0, 1)  # [T, b, ...]
            for feed in self.runner.steps(seq):
                self.feeds += 1
                yield feed

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._all()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


class OneFeedReader(ReplayReader):
    """The first feed of a replay only: the quantizer's own calibration pass, when the ranges come from
    :func:`replay_ranges` (as tensor overrides), needs just one run to know the tensors."""

    def _all(self) -> Iterator[dict[str, np.ndarray]]:
        seq = np.swapaxes(self.frames[:1], 0, 1)
        yield next(iter(self.runner.steps(seq)))


def replay_ranges(fp32_path: str | Path, frames: np.ndarray, tensors: list[str],
                  batch_size: int = 16) -> tuple[dict[str, tuple[float, float]], int]:
    """Min and max of ``tensors`` over real samples replayed through the step graph, states carried.

    Streams: only the running extremes are kept, so memory does not grow with samples or time steps
    (onnxruntime's calibrators keep every intermediate tensor). Returns the ranges and the feed count.
    """
    import onnx
    import onnxruntime as ort

    from neuromoco.deploy.targets.onnx_run import session_options

    model = onnx.load(str(fp32_path))
    spec = StepSpec.of(model)
    graph_in = {i.name for i in model.graph.input}
    present = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in graph_in and t not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
            present.add(t)
    sess = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    read = [t for t in tensors if t not in graph_in]
    fetch = [s.output for s in spec.states] + read
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    feeds = 0
    frames = np.asarray(frames, dtype=np.float32)
    for s in range(0, frames.shape[0], max(1, int(batch_size))):
        seq = np.swapaxes(frames[s:s + batch_size], 0, 1)
        state = {st.input: np.full((seq.shape[1], *st.shape), st.init, np.float32) for st in spec.states}
        for t in range(seq.shape[0]):
            feed = {spec.input: np.ascontiguousarray(seq[t]).reshape(seq.shape[1], *spec.input_shape), **state}
            res = sess.run(fetch, feed)
            feeds += 1
            values = dict(zip(read, res[len(spec.states):]))
            values.update({k: v for k, v in feed.items() if k in lo})
            for name, v in values.items():
                lo[name] = min(lo[name], float(v.min()))
                hi[name] = max(hi[name], float(v.max()))
            state = {st.input: r for st, r in zip(spec.states, res)}
    return {t: (lo[t], hi[t]) for t in tensors}, feeds


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
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim < 3 or calibration.shape[0] == 0:
        raise UserError(f"calibration frames must be [N, T, ...] with N > 0, got shape {list(calibration.shape)}")
    model = onnx.load(str(fp32_path))
    spec = StepSpec.of(model)
    keep = set(keep_float or [])
    synapses = [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n.name not in spec.pooling_nodes
                and n.name.split("/")[0] not in keep]
    exclude = [n.name for n in model.graph.node if n.name not in synapses]
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if calibrate_method not in methods:
        raise UserError(f"unknown calibration method {calibrate_method!r}; known: {', '.join(methods)}")

    grids = {k: tuple(v) for k, v in spec.grid_tensors.items()}
    if np.all(calibration >= 0) and np.all(calibration == np.round(calibration)):  # event counts
        grids[spec.input] = (1, max(1, int(calibration.max())))
    overrides = {t: [grid_override(d, u)] for t, (d, u) in grids.items() if u <= 255}
    feeds = 0
    if calibrate_method == "minmax":
        # ranges streamed over the whole replay here; onnxruntime's own pass then needs one feed
        nodes = {n.name: n for n in model.graph.node}
        acts = [nodes[n].input[0] for n in synapses]
        if quantize_currents:
            acts += [nodes[n].output[0] for n in synapses]
        acts = [t for t in dict.fromkeys(acts) if t not in overrides]
        ranges, feeds = replay_ranges(fp32_path, calibration, acts, batch_size)
        overrides.update({t: [{"rmin": np.array(min(lo, 0.0), np.float32), "rmax": np.array(max(hi, 0.0), np.float32)}]
                          for t, (lo, hi) in ranges.items()})
        reader: ReplayReader = OneFeedReader(fp32_path, calibration, batch_size)
    else:  # histogram methods: onnxruntime keeps every feed's tensors (memory grows with samples x steps)
        reader = ReplayReader(fp32_path, calibration, batch_size)
    extra = {"TensorQuantOverrides": overrides}
    if not quantize_currents:
        extra["OpTypesToExcludeOutputQuantization"] = list(QUANTIZED_OPS)

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return reader.get_next()

        def rewind(self) -> None:
            reader.rewind()

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        quantize_static(str(fp32_path), str(tmp), _Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, nodes_to_quantize=synapses or None,
                        nodes_to_exclude=exclude, per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[calibrate_method],
                        extra_options=extra)
        q = onnx.load(str(tmp))
        quantized = _quantized_nodes(q)
        report = {
            "format": "QDQ", "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": "uint8: exact fixed scale on spike grids, calibrated range elsewhere",
            "calibration": {
                "method": calibrate_method, "samples": int(calibration.shape[0]),
                "time_steps": int(calibration.shape[1]), "feeds": feeds or reader.feeds},
            "quantized_nodes": quantized,
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
