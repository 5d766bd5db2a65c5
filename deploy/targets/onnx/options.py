"""Options of the ONNX target (declared once: ``-o KEY=VALUE`` is parsed against this class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neuromoco.deploy.targets.options import TargetOptions, option


@dataclass(frozen=True)
class OnnxOptions(TargetOptions):
    """How a NIR graph becomes an ONNX step graph (optionally int8) and how onnxruntime runs it."""

    quantize: Literal["none", "int8"] = option(
        "none", "float32, or int8 static QDQ quantization of the synapses (also --int8)")
    opset: int = option(17, "ONNX opset of the exported graph (>= 13)")
    sequence: bool = option(False, "also write the whole sequence as one graph (a Scan over time) and run that")
    batch_size: int = option(64, "samples per onnxruntime call")
    threads: int | None = option(None, "onnxruntime intra-op threads (default: onnxruntime's choice)")
    calibration_samples: int = option(64, "int8: samples of the train split to calibrate on")
    calibrate_method: Literal["minmax", "entropy", "percentile"] = option("minmax", "int8: calibration method")
    quantize_currents: bool = option(
        False, "int8: also quantize the synapse outputs (integer kernels; measured less faithful, no faster)")
    keep_float: tuple[str, ...] | None = option(
        None, "int8: NIR nodes whose synapses stay float32, comma list (default: those reading the input; '' none)")
