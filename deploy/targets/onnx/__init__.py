"""ONNX target: a streaming one-time-step ONNX graph from the NIR graph, optional int8 (QDQ), onnxruntime runs.

``export`` writes ``model.onnx`` (float32, opset 17 by default): one time step with every neuron's state
as explicit inputs and outputs and per-layer spike counts as extra outputs (:mod:`.builder` walks the
graph, :mod:`.synapses`, :mod:`.pooling`, :mod:`.neurons` and :mod:`.elementwise` emit each node kind,
:mod:`.spec` is the interface stored in the model). With ``quantize="int8"`` it also writes
``model.int8.onnx``: static QDQ quantization of the synapses with onnxruntime (:mod:`.quant`), calibrated
on real samples replayed over time (:mod:`.calibration`), and ``model.int8.quant.json`` with the report of
what was quantized. ``load`` opens either file in an onnxruntime session on CPU that loops over the time
steps carrying the states (:class:`.runner.OnnxRunner`).

Options: :class:`.options.OnnxOptions` (``quantize``, ``opset``, ``sequence``, ``batch_size``, ``threads``,
``calibration_samples``, ``calibrate_method``, ``quantize_currents``, ``keep_float``, ``record_spikes``),
declared once with their meanings and parsed from ``-o KEY=VALUE``. Calibration frames for int8 come from
the :class:`~neuromoco.deploy.targets.options.RunContext` (``calibration``, or the model card's dataset
through :func:`neuromoco.deploy.datasets.load_frames`, train split, ``calibration_samples`` samples).
``sequence`` also writes the whole sequence as one graph (a ``Scan`` over time of the step graph,
:mod:`.sequence`) and runs that: one onnxruntime call per batch.

Importing this package loads neither ``onnx`` nor ``onnxruntime``; exporting and running do.
"""

from neuromoco.deploy.targets.onnx.spec import describe
from neuromoco.deploy.targets.onnx.target import FP32_NAME, INT8_NAME, TARGET, OnnxTarget

__all__ = ["FP32_NAME", "INT8_NAME", "TARGET", "OnnxTarget", "describe"]
