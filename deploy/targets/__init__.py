"""Deployment targets: one package or module each, behind one small interface (:mod:`.base`).

Adding a target is one :class:`TargetSpec` entry in :data:`TARGETS`: the module exposing ``TARGET`` (a
:class:`~.base.Target`), its options class (imported alone for ``--help``, so it must not pull in the target's
runtime), the option values the name fixes, and the facts the commands act on (its precision, whether parity
holds it to equality, what it is judged against, the reference dtype, what to prepare before a progress bar).
``deploy run``, ``parity`` and ``profile`` and ``hardware_tests/`` read these facts from here and test no
target by name. A name with an argument, ``PREFIX:ARG`` (:data:`PREFIXED`: ``trace:FILE``, a recorded run), is
looked up like any other; its spec is made from the argument and never listed among the named targets.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from neuromoco.deploy.targets.options import TargetOptions
from neuromoco.errors import UserError

#: the reference executor's name: every other target is compared with it (``deploy parity``)
REFERENCE = "reference"

#: bytes per value of a precision, for NeuroBench's footprint: weights, biases, neuron constants, neuron state
PRECISION_BYTES: dict[str, dict[str, int]] = {
    "float32": {"weight": 4, "bias": 4, "neuron": 4, "state": 4},
    "float64": {"weight": 8, "bias": 8, "neuron": 8, "state": 8},
    # int8 QDQ weights, int32 biases (onnxruntime's QDQ convention), float32 neurons
    "int8": {"weight": 1, "bias": 4, "neuron": 4, "state": 4},
    # 8-bit weight mantissas (16 with weight_bits=16), 13-bit bias mantissas in 16 bits, 12 to 17-bit neuron
    # constants and 24-bit states each in a 32-bit word (an assumption about packing, not a chip figure)
    "loihi2-fixed": {"weight": 1, "bias": 2, "neuron": 4, "state": 4},
}


@dataclass(frozen=True)
class TargetSpec:
    """A named target configuration (as ``--target`` and ``deploy parity --targets`` take it) and its facts."""

    module: str  # module exposing TARGET
    options: str  # "module:Class" of the target's options
    preset: dict[str, Any] = field(default_factory=dict)  # option values this name fixes
    summary: str = ""
    # how it stores values (a key of PRECISION_BYTES), and option values that change it: (key, value, precision)
    precision: str = "float32"
    precision_when: tuple[tuple[str, Any, str], ...] = ()
    exact: bool = False  # computes the reference's arithmetic exactly: parity holds it to equality by default
    reference_dtype: Literal["float32", "float64"] = "float32"  # the reference's dtype it is compared with
    # a bit-exact emulator (a target name, or REFERENCE: the reference at reference_dtype): parity judges the
    # target against it on a subset, and the emulator against the float reference on every sample
    emulator: str | None = None
    parity_default: bool = False  # in ``deploy parity``'s default --targets
    same_as: str | None = None  # by default this name runs as that one (hardware_tests run it once, as that)
    # "module:function" a command calls before its first progress bar (Lava: its runtime fixes the start method)
    before_progress: str | None = None
    # a recorded run (trace:FILE) of this target with these options: deploy parity may use it in that target's place
    recorded: tuple[str, dict[str, Any]] | None = None

    def precision_of(self, options: dict[str, Any] | None = None) -> tuple[str, dict[str, int]]:
        """The precision name and bytes per value under ``options`` (a ``weight_bits`` option widens weights)."""
        options = options or {}
        name = self.precision
        for key, value, precision in self.precision_when:
            if options.get(key) == value:
                name = precision
        b = dict(PRECISION_BYTES[name])
        if options.get("weight_bits"):
            b["weight"] = max(b["weight"], math.ceil(int(options["weight_bits"]) / 8))
        return name, b


#: target names with an argument, ``PREFIX:ARG``: what ARG is and the "module:function" that makes the spec from it
#: (``trace:FILE``: a recorded run, whose facts come from the file)
PREFIXED: dict[str, tuple[str, str]] = {"trace": ("FILE", "neuromoco.deploy.targets.trace.spec:trace_spec")}


class TargetTable(dict[str, TargetSpec]):
    """The named targets; a ``PREFIX:ARG`` name (:data:`PREFIXED`) is in it too, made on lookup and never listed."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or _prefixed(name) is not None

    def __missing__(self, name: str) -> TargetSpec:
        make = _prefixed(name)
        if make is None:
            raise KeyError(name)
        return make(name.partition(":")[2])


def _prefixed(name: object) -> Callable[[str], TargetSpec] | None:
    """The spec maker of a ``PREFIX:ARG`` name with a known prefix and a non-empty ARG, else None."""
    if not isinstance(name, str):
        return None
    prefix, sep, arg = name.partition(":")
    if not (sep and arg and prefix in PREFIXED):
        return None
    module, _, func = PREFIXED[prefix][1].partition(":")
    return getattr(importlib.import_module(module), func)


_LAVA, _LAVA_OPTS = "neuromoco.deploy.targets.lava", "neuromoco.deploy.targets.lava.options:LavaOptions"
_LAVA_FACTS: dict[str, Any] = dict(reference_dtype="float64", emulator=REFERENCE,
                                   before_progress="neuromoco.deploy.targets.lava.compat:settle_start_method")
_ONNX, _ONNX_OPTS = "neuromoco.deploy.targets.onnx", "neuromoco.deploy.targets.onnx.options:OnnxOptions"
TARGETS: TargetTable = TargetTable({
    REFERENCE: TargetSpec("neuromoco.deploy.targets.reference",
                          "neuromoco.deploy.targets.reference:ReferenceOptions", {},
                          "the PyTorch reference executor (CPU or CUDA)", exact=True),
    "lava": TargetSpec(_LAVA, _LAVA_OPTS, {}, "Lava, Loihi 2 simulator (floating point unless --precision fixed)",
                       precision="float64", precision_when=(("precision", "fixed", "loihi2-fixed"),), exact=True,
                       same_as="lava-float", **_LAVA_FACTS),
    "lava-float": TargetSpec(_LAVA, _LAVA_OPTS, {"precision": "float"}, "Lava, Loihi 2 simulator, floating point",
                             precision="float64", exact=True, parity_default=True, **_LAVA_FACTS),
    "lava-fixed": TargetSpec(_LAVA, _LAVA_OPTS, {"precision": "fixed"}, "Lava, Loihi 2 simulator, fixed point",
                             precision="loihi2-fixed", parity_default=True,
                             **{**_LAVA_FACTS, "emulator": "reference-fixed"}),
    "reference-fixed": TargetSpec("neuromoco.deploy.targets.reference_fixed",
                                  "neuromoco.deploy.targets.reference_fixed.options:ReferenceFixedOptions", {},
                                  "the Lava plan's Loihi 2 fixed point as PyTorch integers, bit-exact with lava-fixed",
                                  precision="loihi2-fixed"),
    "onnx": TargetSpec(_ONNX, _ONNX_OPTS, {}, "ONNX step graph on onnxruntime, float32 (int8 with --int8)",
                       precision_when=(("quantize", "int8", "int8"),), exact=True, parity_default=True),
    "onnx-int8": TargetSpec(_ONNX, _ONNX_OPTS, {"quantize": "int8"}, "ONNX step graph on onnxruntime, int8 QDQ",
                            precision="int8", parity_default=True),
})


def spec(name: str) -> TargetSpec:
    if name not in TARGETS:
        raise UserError(f"unknown target {name!r}; known: {', '.join(known_names())}")
    return TARGETS[name]


def known_names() -> list[str]:
    """Every target name, with the prefixed forms as ``PREFIX:ARG`` (for messages and ``--help``)."""
    return [*TARGETS, *(f"{p}:{arg}" for p, (arg, _) in PREFIXED.items())]


def exact_targets() -> tuple[str, ...]:
    """The targets held to equality by default, sorted by name."""
    return tuple(sorted(n for n, s in TARGETS.items() if s.exact))


def parity_defaults() -> tuple[str, ...]:
    """``deploy parity``'s default targets, in table order."""
    return tuple(n for n, s in TARGETS.items() if s.parity_default)


def distinct_targets() -> tuple[str, ...]:
    """Every target name that is not another's default configuration (each runs once in hardware_tests)."""
    return tuple(n for n, s in TARGETS.items() if s.same_as is None)


def prepare_progress(names: list[str]) -> None:
    """Run the ``before_progress`` hook of each named target (once each; unknown names are ignored)."""
    for hook in dict.fromkeys(TARGETS[n].before_progress for n in names if n in TARGETS):
        if hook:
            module, _, func = hook.partition(":")
            getattr(importlib.import_module(module), func)()


@contextmanager
def registered(name: str, target_spec: TargetSpec) -> Iterator[TargetSpec]:
    """``target_spec`` in :data:`TARGETS` as ``name`` within the block (for tests and plug-ins trying one out)."""
    before = TARGETS.get(name)
    TARGETS[name] = target_spec
    try:
        yield target_spec
    finally:
        if before is None:
            TARGETS.pop(name, None)
        else:
            TARGETS[name] = before


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
