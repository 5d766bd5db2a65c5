"""The step graph's interface (:class:`StepSpec`), stored as JSON in the model's ``metadata_props``.

The builder writes it, the runner, the quantizer and the sequence wrapper read it back from the file, so
an exported model is self-describing. No ``onnx`` import here: the spec only touches the model's protobuf
fields, and the target imports this module at package import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromoco.errors import UserError

if TYPE_CHECKING:
    import onnx

DEFAULT_OPSET = 17
META_KEY = "neuromoco"


@dataclass
class StateSpec:
    """One state tensor carried from step to step."""

    node: str  # NIR node name
    var: str  # "v", "i" or "delay"
    input: str  # graph input name (value at t-1)
    output: str  # graph output name (value at t)
    shape: list[int]  # without the batch dimension
    init: float = 0.0  # value at t = 0 (every element)


@dataclass
class StepSpec:
    """The step graph's interface: what the runner feeds and reads."""

    input: str
    input_shape: list[int]
    output: str
    n_out: int
    dt: float
    opset: int
    states: list[StateSpec] = field(default_factory=list)
    spike_counts: dict[str, str] = field(default_factory=dict)  # NIR node -> output name
    spike_tensors: dict[str, str] = field(default_factory=dict)  # NIR node -> output name (optional)
    spiking_nodes: list[str] = field(default_factory=list)
    neuron_nodes: list[str] = field(default_factory=list)  # ONNX node names of neuron arithmetic
    pooling_nodes: list[str] = field(default_factory=list)  # ONNX Conv nodes that implement pooling
    # tensors whose values lie on a known grid k / d, k = 0..u (spikes: d=1, u=1): tensor -> [d, u]
    grid_tensors: dict[str, list[int]] = field(default_factory=dict)
    delayed_edges: list[list[str]] = field(default_factory=list)
    quantization: dict[str, Any] = field(default_factory=dict)  # filled by the int8 quantizer
    mode: str = "step"  # "step": one time step per call; "sequence": the whole sequence (frames [T, B, ...])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> StepSpec:
        data = json.loads(text)
        data["states"] = [StateSpec(**s) for s in data.get("states", [])]
        return StepSpec(**data)

    @staticmethod
    def of(model: onnx.ModelProto) -> StepSpec:
        for prop in model.metadata_props:
            if prop.key == META_KEY:
                return StepSpec.from_json(prop.value)
        raise UserError("this ONNX model was not written by `deploy export --target onnx` (no step metadata)")

    def attach(self, model: onnx.ModelProto) -> None:
        kept = [p for p in model.metadata_props if p.key != META_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        model.metadata_props.add(key=META_KEY, value=self.to_json())


def describe(path: str | Path) -> dict[str, Any]:
    """The interface and quantization report stored in an exported model (for ``deploy inspect``)."""
    import onnx

    spec = StepSpec.of(onnx.load(str(path), load_external_data=False))
    return json.loads(spec.to_json())
