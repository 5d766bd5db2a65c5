"""Model registry: a name picks the architecture; ``train models`` lists them.

``build_encoder(name, input_shape)`` gives a :class:`~neuromoco.train.models.base.SpikingEncoder` for frames of shape
``[C, H, W]``; ``build_classifier(name, input_shape, num_classes)`` adds the linear readout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from neuromoco.errors import UserError
from neuromoco.train.models.base import SpikingClassifier, SpikingEncoder, count_parameters
from neuromoco.train.models.deployable import vgg34, vgg128
from neuromoco.train.models.sew_resnet import sew_resnet18
from neuromoco.train.models.spikformer import spikformer_2_256


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., SpikingEncoder]
    deployable: bool
    default_input: tuple[int, int, int]
    description: str


MODELS: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("vgg34", vgg34, True, (2, 34, 34),
              "deployable spiking CNN, conv-BN-LIF-sumpool x3 (16-32-32), for 34x34 (N-MNIST, embedded)"),
    ModelSpec("vgg128", vgg128, True, (2, 128, 128),
              "deployable spiking CNN, conv-BN-LIF-sumpool x5 (16-32-64-128-128), for 128x128 DVS data"),
    ModelSpec("spikformer-2-256", spikformer_2_256, False, (2, 128, 128),
              "Spikformer-2-256, DVS configuration (paper backbone: CIFAR10-DVS, DVS128 Gesture)"),
    ModelSpec("sew-resnet18", sew_resnet18, False, (2, 128, 128),
              "SEW-ResNet-18 with ADD connections (paper backbone: N-Caltech101)"),
]}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def build_encoder(name: str, input_shape: Sequence[int] | None = None, **kwargs: Any) -> SpikingEncoder:
    spec = get_spec(name)
    shape = tuple(int(v) for v in (input_shape or spec.default_input))
    if len(shape) != 3:
        raise UserError(f"input shape must be [C, H, W], got {list(shape)}")
    try:
        return spec.builder(shape, **kwargs)
    except ValueError as err:
        raise UserError(f"model {name} cannot take input {list(shape)}: {err}") from None


def build_classifier(name: str, input_shape: Sequence[int] | None, num_classes: int,
                     **kwargs: Any) -> SpikingClassifier:
    return SpikingClassifier(build_encoder(name, input_shape, **kwargs), num_classes)


def describe(num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per model: name, default input, encoder and total parameter counts, deployability."""
    rows = []
    for spec in MODELS.values():
        model = build_classifier(spec.name, spec.default_input, num_classes)
        rows.append({"name": spec.name, "input": list(spec.default_input),
                     "feature_dim": model.encoder.feature_dim,
                     "encoder_params": count_parameters(model.encoder), "params": count_parameters(model),
                     "deployable": spec.deployable, "description": spec.description})
    return rows
