"""Run logging: ``metrics.jsonl`` (one JSON object per line) and TensorBoard events, on the main rank only.

A fresh run appends to what is there (nothing: :mod:`neuromoco.train.engine.run_dir` refuses a directory that
holds a run unless ``--overwrite`` has cleared it), never deletes. On resume the log is cut back to the resumed
epoch (0: a run interrupted before its first checkpoint) and TensorBoard purges the later steps, so lines of an
interrupted epoch (which is repeated) do not appear twice.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

from neuromoco.io import atomic_write_text


class MetricsLogger:
    """``metrics.jsonl`` and ``tb/`` of a run; ``resume_epoch`` / ``resume_step``: where a resumed run goes on."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_epoch: int | None = None,
                 resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.path = self.run_dir / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_epoch is not None and self.path.exists():
            self._truncate(resume_epoch)
        if tensorboard:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=resume_step)
            except Exception as err:  # noqa: BLE001 - TensorBoard is optional; metrics.jsonl always works
                warnings.warn(f"TensorBoard logging disabled: {err}", stacklevel=2)

    def _truncate(self, epoch: int) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the interruption
            if int(rec.get("epoch", 0)) <= epoch:
                kept.append(line)
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))

    def log(self, kind: str, step: int, epoch: int, **values: Any) -> None:
        if not self.enabled:
            return
        rec = {"kind": kind, "epoch": epoch, "step": step, "time": round(time.time(), 3)}
        rec.update({k: _plain(v) for k, v in values.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
                    self._tb.add_scalar(f"{kind}/{k}", float(v), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (ValueError, RuntimeError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
