"""Deployment targets: one package or module each, behind one small interface (:mod:`.base`).

Adding a target touches this table: a name, the module exposing ``TARGET`` (a :class:`~.base.Target`),
its options class (imported alone for ``--help``, so it must not pull in the target's runtime) and the
option values the name fixes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from neuromoco.deploy.targets.options import TargetOptions
from neuromoco.errors import UserError


@dataclass(frozen=True)
class TargetSpec:
    """A named target configuration (as ``--target`` and ``deploy parity --targets`` take it)."""

    module: str  # module exposing TARGET
    options: str  # "module:Class" of the target's options
    preset: dict[str, Any] = field(default_factory=dict)  # option values this name fixes
    summary: str = ""


_LAVA, _LAVA_OPTS = "neuromoco.deploy.targets.lava", "neuromoco.deploy.targets.lava.options:LavaOptions"
_ONNX, _ONNX_OPTS = "neuromoco.deploy.targets.onnx", "neuromoco.deploy.targets.onnx.options:OnnxOptions"
TARGETS: dict[str, TargetSpec] = {
    "reference": TargetSpec("neuromoco.deploy.targets.reference",
                            "neuromoco.deploy.targets.reference:ReferenceOptions", {},
                            "the PyTorch reference executor (CPU or CUDA)"),
    "lava": TargetSpec(_LAVA, _LAVA_OPTS, {}, "Lava, Loihi 2 simulator (floating point unless --precision fixed)"),
    "lava-float": TargetSpec(_LAVA, _LAVA_OPTS, {"precision": "float"}, "Lava, Loihi 2 simulator, floating point"),
    "lava-fixed": TargetSpec(_LAVA, _LAVA_OPTS, {"precision": "fixed"}, "Lava, Loihi 2 simulator, fixed point"),
    "reference-fixed": TargetSpec("neuromoco.deploy.targets.reference_fixed",
                                  "neuromoco.deploy.targets.reference_fixed.options:ReferenceFixedOptions", {},
                                  "the Lava plan's Loihi 2 fixed point as PyTorch integers, bit-exact with lava-fixed"),
    "onnx": TargetSpec(_ONNX, _ONNX_OPTS, {}, "ONNX step graph on onnxruntime, float32 (int8 with --int8)"),
    "onnx-int8": TargetSpec(_ONNX, _ONNX_OPTS, {"quantize": "int8"}, "ONNX step graph on onnxruntime, int8 QDQ"),
}


def spec(name: str) -> TargetSpec:
    if name not in TARGETS:
        raise UserError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    return TARGETS[name]


def options_class(name: str) -> type[TargetOptions]:
    """The options class of target ``name``, without importing the target's runtime."""
    module, _, cls = spec(name).options.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_target(name: str) -> tuple[Any, TargetOptions]:
    """The target object and its options with the name's preset applied (e.g. ``lava-fixed``: fixed point)."""
    s = spec(name)
    target = importlib.import_module(s.module).TARGET
    return target, target.Options.parse(s.preset, target=name)


def with_options(name: str, base: TargetOptions, values: dict[str, Any]) -> TargetOptions:
    """``base`` with ``values`` applied; a value that contradicts what the name fixes is an error."""
    fixed = spec(name).preset
    for key, want in fixed.items():
        if key in values:
            got = type(base).parse({key: values[key]}, target=name)
            if getattr(got, key) != getattr(base, key):
                raise UserError(f"target {name} fixes {key}={want}; {key}={values[key]} contradicts it "
                                f"(choose another target name)")
    return base.updated(values, target=name)


def options_help(names: list[str] | None = None) -> str:
    """The options of each target (for a command's ``--help``), one block per options class."""
    blocks: dict[str, list[str]] = {}
    for name in names or list(TARGETS):
        s = TARGETS[name]
        blocks.setdefault(s.options, []).append(name)
    lines = ["options of each target (-o KEY=VALUE, repeatable; -o TARGET:KEY=VALUE for one target only):"]
    for users in blocks.values():
        lines.append(f"  {', '.join(users)}:")
        try:
            described = options_class(users[0]).describe()
        except ImportError as err:
            described = [f"(unavailable: {err})"]
        lines += [f"    {line}" for line in described]
    return "\n".join(lines)
