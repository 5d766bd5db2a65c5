"""Typed target options: each target declares its options once, as a frozen dataclass.

A field is declared with :func:`option` (default and one-line meaning); :meth:`TargetOptions.parse` turns
``-o KEY=VALUE`` strings (or Python values) into a validated instance: an unknown key or a value that does
not fit the field's type is a :class:`~neuromoco.errors.UserError` naming the valid keys. The same class
gives the ``--help`` text of every command that takes ``-o``.

What a command knows that is not a user's choice about the target (where calibration samples come from,
whether to draw a progress bar) travels beside the options as a :class:`RunContext`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
from typing_extensions import Self

from neuromoco.errors import UserError

OptionsT = TypeVar("OptionsT", bound="TargetOptions")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"none", "null"}
_NUMBERS: dict[type, tuple[type, ...]] = {int: (int, np.integer), float: (int, float, np.integer, np.floating)}


def option(default: Any, help: str) -> Any:
    """A target option field: its default and its one-line meaning (shown by ``--help``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TargetOptions:
    """Options every target takes. Subclasses add their own fields with :func:`option`."""

    record_spikes: bool = option(False, "also return the full 0/1 spike record of every spiking layer")

    # ------------------------------------------------------------------ building
    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def parse(cls, values: Mapping[str, Any] | None = None, *, target: str = "") -> Self:
        """An instance from ``values`` (strings from ``-o`` or typed values); unknown keys are an error."""
        return cls().updated(values or {}, target=target)

    def updated(self, values: Mapping[str, Any], *, target: str = "") -> Self:
        """A copy with ``values`` applied, each converted to its field's type."""
        if not values:
            return self
        known = self.fields()
        hints = typing.get_type_hints(type(self))
        unknown = [k for k in values if k not in known]
        if unknown:
            raise UserError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                            f"target {target or self.target_label()}; valid: {', '.join(known)}")
        label = target or self.target_label()
        return dataclasses.replace(self, **{k: convert(v, hints[k], k, label, known[k].metadata.get("help", ""))
                                            for k, v in values.items()})

    @classmethod
    def target_label(cls) -> str:
        return cls.__name__.removesuffix("Options").lower() or "?"

    # ------------------------------------------------------------------ reading
    def as_dict(self) -> dict[str, Any]:
        """Plain values (for summaries and reports)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def describe(cls) -> list[str]:
        """One line per option: ``name (type, default X): meaning``."""
        hints = typing.get_type_hints(cls)
        out = []
        for name, f in cls.fields().items():
            out.append(f"{name} ({type_label(hints[name])}, default {f.default!r}): {f.metadata.get('help', '')}")
        return out


@dataclass(frozen=True)
class RunContext:
    """What the command knows beside the target's options: the data a quantizing target calibrates on."""

    dataset: str | None = None  # dataset name or frames .npz (default: the model card's dataset)
    root: str | None = None  # dataset root folder
    calibration: np.ndarray | None = None  # frames [N, T, *input_shape] to calibrate on, instead of the dataset
    progress: bool = False  # progress bars inside long target work (int8 calibration, per-batch runs)


CONTEXT_KEYS = tuple(f.name for f in dataclasses.fields(RunContext))


def split_values(options_cls: type[TargetOptions], values: Mapping[str, Any],
                 target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword values of a Python call split into option fields and :class:`RunContext` fields."""
    known = options_cls.fields()
    opts = {k: v for k, v in values.items() if k in known}
    ctx = {k: v for k, v in values.items() if k in CONTEXT_KEYS and k not in known}
    unknown = [k for k in values if k not in opts and k not in ctx]
    if unknown:
        raise UserError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                        f"target {target}; valid: {', '.join([*known, *CONTEXT_KEYS])}")
    return opts, ctx


# ---------------------------------------------------------------------------------------- conversion

def type_label(tp: Any) -> str:
    """A short human name of a field type (``int``, ``float | None``, ``a, b or c``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        names = [str(a) for a in args]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_label(a) for a in args)
    if origin is tuple:
        return f"comma list of {type_label(args[0])}"
    return "none" if tp is type(None) else getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, key: str, target: str, meaning: str = "") -> Any:
    """``value`` (a string from ``-o``, or a Python value) as type ``tp``, or a UserError saying what fits."""
    try:
        return _convert(value, tp)
    except (TypeError, ValueError):
        raise UserError(f"option {key}={value!r} for target {target}: expected {type_label(tp)}"
                        + (f" ({meaning})" if meaning else "")) from None


def _convert(value: Any, tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a)
            except (TypeError, ValueError):
                continue
        raise ValueError(value)
    if origin is Literal:
        for a in args:
            if value == a or (isinstance(value, str) and not isinstance(a, str) and value.strip() == str(a)):
                return a
        raise ValueError(value)
    if origin is tuple:
        items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
        return tuple(_convert(v.strip() if isinstance(v, str) else v, args[0]) for v in items
                     if not (isinstance(v, str) and not v.strip()))
    if tp is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(value)
    if tp in _NUMBERS:
        if isinstance(value, bool):  # True is an int to Python, not a number to a user
            raise ValueError(value)
        if isinstance(value, _NUMBERS[tp]):
            return tp(value)
        if isinstance(value, str):
            return tp(value.strip())
        raise ValueError(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(value)
    raise TypeError(f"unsupported option type {tp!r}")
