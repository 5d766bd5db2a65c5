"""Importing Lava 0.10 (archived, written for Python <= 3.10) on Python 3.11+, or a clear error without it.

Python 3.11's ``dataclasses`` rejects a field whose default is an instance of an unhashable class
(``ValueError: mutable default ... use default_factory``). ``lava.magma.compiler.var_model`` declares
such fields (``x: ByteEncoder = ByteEncoder()``). While Lava is first imported, :func:`import_lava`
wraps ``dataclasses._get_field`` so that, for classes defined in a ``lava`` module only, such a default
becomes ``field(default_factory=<copy of the default>)`` -- the behaviour the authors intended. The
wrapper is removed again afterwards; site-packages is never edited.

Lava's message infrastructure also calls ``multiprocessing.set_start_method('fork')`` when it is first
imported, which raises ``RuntimeError: context has already been set`` if anything (a tqdm bar, say)
touched multiprocessing before. :func:`import_lava` imports it with that call made tolerant: it is a
no-op when the method is already ``fork``, and a clear error when another method was chosen.
:func:`settle_start_method` imports that module early (before a command draws its first progress bar).

Without Lava (or with a runtime dependency of it missing), :func:`import_lava` raises a one-line
:class:`~neuromoco.errors.UserError` saying how to install it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType

from neuromoco.errors import UserError

INSTALL = ("install it with `pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0` "
           "(its runtime needs, asteval, networkx, numpy and scipy, are this project's dependencies); "
           "in a source checkout, `make install` does the same")

_lock = threading.Lock()
_applied = False
_import: Callable[[str], ModuleType] = importlib.import_module  # the one import of a Lava module (tests replace it)


def _is_mutable_default(value: object) -> bool:
    return (not isinstance(value, dataclasses.Field)
            and value is not dataclasses.MISSING
            and type(value).__hash__ is None)


@contextlib.contextmanager
def mutable_defaults_as_factories(module_prefix: str = "lava") -> Iterator[None]:
    """Within the block, unhashable dataclass defaults in ``module_prefix`` modules become factories."""
    original = dataclasses._get_field  # type: ignore[attr-defined]

    def patched(cls: type, a_name: str, a_type: object, *args: object, **kwargs: object):
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if str(getattr(cls, "__module__", "")).startswith(module_prefix) and _is_mutable_default(default):
            def factory(d: object = default) -> object:
                return copy.deepcopy(d)

            setattr(cls, a_name, dataclasses.field(default_factory=factory))
        return original(cls, a_name, a_type, *args, **kwargs)

    dataclasses._get_field = patched  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dataclasses._get_field = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def tolerant_fork_start_method() -> Iterator[None]:
    """Within the block, ``set_start_method('fork')`` succeeds when 'fork' is already the method."""
    original = multiprocessing.set_start_method

    def patched(method: str | None, force: bool = False) -> None:
        current = multiprocessing.get_start_method(allow_none=True)
        if current is None or force:
            original(method, force=force)
        elif current != method:
            raise RuntimeError(f"Lava needs the '{method}' multiprocessing start method, but '{current}' "
                               "was already chosen in this process")

    multiprocessing.set_start_method = patched
    try:
        yield
    finally:
        multiprocessing.set_start_method = original


_MP_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"


def import_lava(module: str = "lava.magma.core.run_configs") -> ModuleType:
    """Import a Lava module, applying the compatibility hooks the first time Lava is imported.

    A :class:`UserError` (one line: what is missing, how to install) when Lava cannot be imported.
    """
    try:
        return _import_with_hooks(module)
    except ImportError as err:  # ModuleNotFoundError included
        raise UserError(_unavailable(err)) from None


def _import_with_hooks(module: str) -> ModuleType:
    global _applied
    with _lock:
        if not _applied:
            if "lava.magma.compiler.var_model" not in sys.modules:
                with mutable_defaults_as_factories():
                    _import("lava.magma.compiler.var_model")
            if _MP_MODULE not in sys.modules:
                with tolerant_fork_start_method():
                    _import(_MP_MODULE)
            _applied = True
    return _import(module)


def _unavailable(err: ImportError) -> str:
    missing = getattr(err, "name", None) or ""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if missing == "lava" or missing.startswith("lava."):
        return f"the Lava target needs Lava, which is not installed ({reason}): {INSTALL}"
    return f"the Lava target needs Lava, which cannot be imported ({reason}): {INSTALL}"


def settle_start_method() -> None:
    """Import Lava's runtime (if it is installed) before a progress bar exists; never raises.

    Lava's ``message_infrastructure.multiprocessing`` calls ``multiprocessing.set_start_method('fork')``
    when first imported, which raises once anything has fixed the start method; tqdm's first bar does
    (it creates a multiprocessing lock). Importing Lava first keeps both working.
    """
    if _MP_MODULE in sys.modules or importlib.util.find_spec("lava") is None:
        return
    with contextlib.suppress(Exception):  # Lava unusable: its targets report their own error when built
        import_lava(_MP_MODULE)
