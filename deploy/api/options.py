"""Target options from every front-end, one way: ``-o`` strings, keyword arguments, typed option instances.

The CLI's ``-o KEY=VALUE`` and the API's ``run(..., quantize="int8")`` or ``run(..., OnnxOptions(...))`` all
end here, so a typo gets the same one-line :class:`~neuromoco.errors.UserError` whichever way it came.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neuromoco.errors import UserError


def declared(name: str) -> list[str]:
    """The option keys target ``name`` declares (none when the target cannot be imported: it fails later)."""
    from neuromoco.deploy.targets import options_class

    try:
        return list(options_class(name).fields())
    except ImportError:
        return []


def scoped_values(items: Iterable[tuple[str, Any]], names: list[str],
                  shown: Callable[[str, Any], str] | None = None) -> dict[str, dict[str, Any]]:
    """``(KEY, value)`` / ``(TARGET:KEY, value)`` pairs as ``{target: {key: value}}`` for ``names``.

    A plain key goes to every target in ``names`` whose options declare it; a key no named target declares,
    or a ``TARGET:`` prefix naming none of ``names``, is an error naming the valid keys. ``shown(key, value)``
    is how an item is quoted in that error (``-o`` quotes what the user typed).
    """
    show = shown or (lambda k, v: f"{k}={v}")
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for raw_key, value in items:
        key = raw_key.strip()
        scope, colon, key = key.rpartition(":") if ":" in key else ("", "", key)
        if colon:
            if scope not in out:
                raise UserError(f"option {show(raw_key, value)!r} names target {scope!r}, which this command does "
                                f"not run ({', '.join(names)})")
            chosen = [scope]
        else:
            chosen = [n for n in names if key in declared(n)]
        if not chosen:
            valid = {n: ", ".join(declared(n)) for n in names}
            raise UserError(f"unknown option {key!r}; valid: " + "; ".join(f"{n}: {v}" for n, v in valid.items()))
        for n in chosen:
            out[n][key] = value
    return out


def parse_option_items(items: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """``-o KEY=VALUE`` / ``-o TARGET:KEY=VALUE`` strings as ``{target: {key: value}}`` for ``names``."""
    pairs: list[tuple[str, Any]] = []
    originals: dict[tuple[str, str], str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"option {item!r} is not KEY=VALUE")
        pairs.append((key, value))
        originals[(key, value)] = item
    return scoped_values(pairs, names, lambda k, v: originals.get((k, v), f"{k}={v}"))


def option_values(name: str, given: Any = None, keywords: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values an API call sets for target ``name``: a typed options instance (its fields that differ from
    the class defaults, so a preset such as ``lava-fixed``'s precision stays) and keyword arguments over it."""
    from neuromoco.deploy.targets import options_class

    values: dict[str, Any] = {}
    if given is not None:
        if isinstance(given, Mapping):
            values.update(given)
        else:
            cls = options_class(name)
            if not isinstance(given, cls):
                raise UserError(f"target {name} takes {cls.__name__}, not {type(given).__name__}")
            default = cls()
            values.update({f.name: getattr(given, f.name) for f in dataclasses.fields(given)
                           if getattr(given, f.name) != getattr(default, f.name)})
    values.update(scoped_values(list((keywords or {}).items()), [name])[name])
    return values


def card_option_items(card: Any, names: list[str]) -> dict[str, dict[str, str]]:
    """The target options the model card asks for, as ``{target: {key: value}}`` for ``names``.

    A model trained with ``train finetune --qat loihi`` records the Lava options its weight grid was trained
    for (:meth:`~neuromoco.deploy.card.ModelCard.qat_deploy_options`, e.g. ``scale=layer``); deploying with
    other ones would quantize onto a different grid. They apply to every target in ``names`` that declares the
    key; explicit values override them.
    """
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    for key, value in (card.qat_deploy_options() or {}).items():
        for n in names:
            if key in declared(n):
                out[n][key] = value
    return out


def with_card_options(card: Any, values: dict[str, dict[str, Any]],
                      echo: Callable[[str], None] | None = print) -> dict[str, dict[str, Any]]:
    """``values`` (per target) over the model card's options; says once (through ``echo``) which apply."""
    from_card = card_option_items(card, list(values))
    applied = sorted({f"{k}={v}" for n, opts in from_card.items() for k, v in opts.items() if k not in values[n]})
    if applied and echo is not None:
        echo(f"options from the model card (the model was trained for them with --qat): {' '.join(applied)}")
    return {n: {**from_card[n], **v} for n, v in values.items()}


def target_options(name: str, values: Mapping[str, Any]) -> tuple[Any, Any]:
    """The target ``name`` and its options: the name's preset, then ``values`` (checked)."""
    from neuromoco.deploy.targets import get_target, with_options

    target, preset = get_target(name)
    return target, with_options(name, preset, dict(values))
