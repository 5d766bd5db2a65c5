"""Range checks of NeuroMoCo's hyper-parameters, in one place for the library and the command line.

The error is a :class:`~neuromoco.errors.UserError` (``train pretrain`` prints it as one line, exit 2) and a
``ValueError`` (what a library caller of :class:`~neuromoco.train.moco.MoCo` or the loss expects).
"""

from __future__ import annotations

from neuromoco.errors import UserError


class HyperParameterError(UserError, ValueError):
    """A NeuroMoCo hyper-parameter out of its range."""


def unit_interval(flag: str, value: float) -> float:
    """``value`` as a float when it lies in [0, 1]; else :class:`HyperParameterError` naming ``flag``."""
    if not 0.0 <= value <= 1.0:
        raise HyperParameterError(f"{flag} must be in [0, 1], got {value}")
    return float(value)
