"""Names a package re-exports without importing their modules until first use (PEP 562 ``__getattr__``)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` that imports each name in ``homes`` from its module (``{name:
    module}``) on first access, so that importing the package stays light; any other name is an
    ``AttributeError``, as Python's own. A name once loaded is kept in the package's namespace (documentation
    tools such as pdoc read it there)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        vars(sys.modules[package])[name] = value  # in the package's namespace from now on, as an import puts it
        return value

    return __getattr__
