"""Model registry: a name picks the architecture; ``train models`` lists them.

``build_encoder(name, input_shape)`` gives a :class:`~neuromoco.train.models.base.SpikingEncoder` for frames of shape
``[C, H, W]``; ``build_classifier(name, input_shape, num_classes)`` adds the linear readout. A model's aliases
(earlier names, still written in old checkpoints and model cards) resolve to it everywhere a name is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from neuromoco.errors import UserError
from neuromoco.train.models.base import SpikingClassifier, SpikingEncoder, count_parameters
from neuromoco.train.models.deployable import cnn3_34, cnn5_128, mlp2_256
from neuromoco.train.models.sew_deployable import sew_resnet8_34, sew_resnet18_128
from neuromoco.train.models.sew_resnet import sew_resnet18
from neuromoco.train.models.spikformer import spikformer_2_256


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., SpikingEncoder]
    deployable: bool
    default_input: tuple[int, int, int]
    description: str
    aliases: tuple[str, ...] = ()


MODELS: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("cnn3-34", cnn3_34, True, (2, 34, 34),
              "deployable spiking CNN, conv-BN-LIF-sumpool x3 (16-32-32), for 34x34 (N-MNIST, embedded)",
              aliases=("vgg34",)),
    ModelSpec("cnn5-128", cnn5_128, True, (2, 128, 128),
              "deployable spiking CNN, conv-BN-LIF-sumpool x5 (16-32-64-128-128), for 128x128 DVS data",
              aliases=("vgg128",)),
    ModelSpec("mlp2-256", mlp2_256, True, (2, 34, 34),
              "deployable spiking MLP, flatten + linear-BN-LIF x2 (256-256), for 1-D sensors (SHD) or small inputs"),
    ModelSpec("sew-resnet8-34", sew_resnet8_34, True, (2, 34, 34),
              "deployable SEW-ResNet, ADD shortcuts, sum pooling, 3 blocks (16-32-64), for 34x34 (N-MNIST, embedded)"),
    ModelSpec("sew-resnet18-128", sew_resnet18_128, True, (2, 128, 128),
              "deployable SEW-ResNet-18 layout, ADD shortcuts, sum/avg pooling (64-512), for 128x128 DVS data"),
    ModelSpec("spikformer-2-256", spikformer_2_256, False, (2, 128, 128),
              "Spikformer-2-256, DVS configuration (paper backbone: CIFAR10-DVS, DVS128 Gesture)"),
    ModelSpec("sew-resnet18", sew_resnet18, False, (2, 128, 128),
              "SEW-ResNet-18 with ADD connections and max pooling, training only (paper backbone: N-Caltech101)"),
]}

#: alias -> registered name
ALIASES: dict[str, str] = {alias: s.name for s in MODELS.values() for alias in s.aliases}


def canonical_name(name: str) -> str:
    """The registered name for ``name`` or one of its aliases (an unknown name comes back unchanged)."""
    return ALIASES.get(name, name)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[canonical_name(name)]
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
    """One row per model: name, aliases, default input, encoder and total parameter counts, deployability."""
    rows = []
    for spec in MODELS.values():
        model = build_classifier(spec.name, spec.default_input, num_classes)
        rows.append({"name": spec.name, "aliases": list(spec.aliases), "input": list(spec.default_input),
                     "feature_dim": model.encoder.feature_dim,
                     "encoder_params": count_parameters(model.encoder), "params": count_parameters(model),
                     "deployable": spec.deployable, "description": spec.description})
    return rows
