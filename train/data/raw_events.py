"""What an event-file reader returns: the columns as stored and what the format says about them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELDS = ("x", "y", "t", "p")
#: microseconds per unit
TIME_UNITS: dict[str, float] = {"us": 1, "ms": 1_000, "s": 1_000_000, "ns": 1e-3}


@dataclass
class RawEvents:
    columns: dict[str, np.ndarray]  # x, y, t, p as stored
    sensor: tuple[int, int, int] | None = None  # (W, H, P) when the file says
    time_unit: str | None = None  # when the format fixes it
