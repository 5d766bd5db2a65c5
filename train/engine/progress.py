"""Progress of one pass over batches on stderr: a tqdm bar on a terminal, else a plain line every ``every`` steps.

Logs that are not a terminal (a file, a pipe, a notebook's captured stderr) cannot show a bar, and a bar that
tqdm disables there leaves a long epoch silent; so off a terminal the same pass prints
``<desc>: step i/n  loss ...  samples/s  elapsed, left`` every ``every`` steps, and after any step that ends a
minute or more after the last line. ``--no-progress`` turns both off. The epoch-end lines are the loops' own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Generic, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

#: a plain line also after a step that ends this many seconds after the last one (slow steps stay visible)
LINE_INTERVAL_S = 60.0


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (where a bar redraws in place)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Progress(Generic[T]):
    """Iterate ``items`` (a pass of ``total`` steps) while showing progress; call :meth:`done` after each step.

    ``show``: progress asked for on this process (main rank, no ``--no-progress``); ``every``: steps between
    plain lines (0: none). ``unit`` names a step in the lines ("step" in training, "batch" in a test pass)."""

    def __init__(self, items: Iterable[T], desc: str, *, show: bool, every: int, unit: str = "step",
                 total: int | None = None) -> None:
        self.desc, self.unit, self.every = desc, unit, max(0, every)
        self.total = total if total is not None else (len(items) if isinstance(items, Sized) else None)
        terminal = stderr_is_terminal()
        self.lines = show and not terminal and self.every > 0
        self.bar = tqdm(items, desc=desc, total=self.total, leave=False, dynamic_ncols=True,
                        disable=not (show and terminal), mininterval=0.5, file=sys.stderr)
        self.steps = self.samples = 0
        self.running: dict[str, str] = {}
        self.t0 = self.last_line = time.perf_counter()

    def __iter__(self) -> Iterator[T]:
        return iter(self.bar)

    @property
    def rate(self) -> float:
        """Samples per second so far in this pass."""
        return self.samples / max(1e-9, time.perf_counter() - self.t0)

    def done(self, samples: int, **running: float) -> None:
        """One step over ``samples`` samples finished; ``running``: values shown beside it (running means)."""
        self.steps += 1
        self.samples += samples
        self.running = {k: f"{v:.4f}" for k, v in running.items()}
        if not self.bar.disable:
            self.bar.set_postfix(**self.running, sps=f"{self.rate:.1f}", refresh=False)
        now = time.perf_counter()
        if self.lines and (self.steps % self.every == 0 or now - self.last_line >= LINE_INTERVAL_S):
            self.last_line = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        """``<desc>: step i/n  loss 0.1234  56.7 samples/s  1m05s, about 2m10s left``."""
        elapsed = now - self.t0
        of = f"/{self.total}" if self.total else ""
        text = f"{self.desc}: {self.unit} {self.steps}{of}"
        for k, v in self.running.items():
            text += f"  {k} {v}"
        text += f"  {self.rate:.1f} samples/s  {_duration(elapsed)}"
        if self.total:
            text += f", about {_duration(elapsed / self.steps * (self.total - self.steps))} left"
        return text

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
