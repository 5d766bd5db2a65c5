"""The run directory (``--out``): whether it holds a run, and what ``--resume`` and ``--overwrite`` do with it.

A directory holds a run once a training command has written one of :data:`RUN_FILES` into it (``config.json``
comes before the first step). Then:

* a command given neither ``--resume`` nor ``--overwrite`` is refused, in one line naming the directory and
  both options, before anything loads: nothing is deleted;
* ``--resume`` continues from ``RUN_DIR/last.pt``. A run interrupted before its first checkpoint has none, and
  ``--resume`` starts it again from epoch 1 in the same directory: ``metrics.jsonl`` and ``tb/`` are cut back
  to before the interrupted epoch, as every resume cuts them back to its checkpoint's epoch (the repeated
  epoch writes the same steps again, so no step appears twice);
* ``--overwrite`` removes the run's files (only :data:`RUN_FILES`, once the new run has loaded its data and
  model) and starts afresh: no metrics line or TensorBoard event of the old run mixes with the new one's.

Other files in the directory are never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from neuromoco.errors import UserError

if TYPE_CHECKING:
    from neuromoco.train.engine.config import RunOptions

#: what a training command writes into its run directory (``--overwrite`` removes these and nothing else)
RUN_FILES = ("config.json", "metrics.jsonl", "tb/", "last.pt", "best.pt", "pretrain.json", "accuracy.json",
             "model.nir", "model_card.json")


@dataclass(frozen=True)
class Start:
    """How a run starts in its directory."""

    checkpoint: Path | None  # the checkpoint to resume from (None: from epoch 1)
    continues: bool  # the directory's metrics.jsonl and tb/ go on (cut back to the checkpoint's epoch, or to 0)
    replaces: tuple[str, ...] = ()  # the old run's files that --overwrite removes

    @property
    def note(self) -> str:
        """What the start means when it is not the plain case (a fresh run, a resume from a checkpoint)."""
        if self.continues and self.checkpoint is None:
            return ("interrupted before its first checkpoint: starting again from epoch 1 in the same run "
                    "directory (metrics.jsonl and tb/ continue)")
        if self.replaces:
            return f"--overwrite: replacing the earlier run ({', '.join(self.replaces)})"
        return ""


def run_files(out: Path) -> tuple[str, ...]:
    """The :data:`RUN_FILES` present in ``out``."""
    return tuple(name for name in RUN_FILES if (out / name).exists())


def plan_start(opts: RunOptions) -> Start:
    """How the run of ``opts`` starts; a :class:`UserError` (one line) where it would clobber or find no run."""
    out, held = opts.out, run_files(opts.out)
    if opts.resume is not None and opts.overwrite:
        raise UserError("--resume continues a run and --overwrite replaces it: pass one of them")
    if opts.resume is None:
        if held and not opts.overwrite:
            raise UserError(f"{out} already holds a run ({', '.join(held)}): pass --resume to continue it, or "
                            "--overwrite to replace it (its files are deleted)")
        return Start(None, continues=False, replaces=held)
    if opts.resume != "auto":
        return Start(Path(opts.resume), continues=True)
    last = out / "last.pt"
    if last.exists():
        return Start(last, continues=True)
    if held:
        return Start(None, continues=True)
    raise UserError(f"nothing to resume: {out} holds no run (none of {', '.join(RUN_FILES[:4])})")


def clear(out: Path, names: tuple[str, ...]) -> None:
    """Remove the old run's files ``names`` from ``out`` (``--overwrite``)."""
    for name in names:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
