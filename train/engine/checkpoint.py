"""Checkpoints: written atomically (whole or absent), read back with one clear error when missing or corrupt.

A checkpoint is a dict of plain values and tensors (loadable with ``torch.load(weights_only=True)``)::

    {"format": "neuromoco-checkpoint", "format_version": 1,
     "kind": "pretrain" | "classifier",
     "model": {"name", "input_shape": [C,H,W], "num_classes" (classifier), "kwargs": {}},
     "data": {"dataset", "time_steps", "downsample", "sensor_size", "class_names"},
     "epoch": last completed epoch (1-based), "step": optimizer steps so far,
     "state_dict": model weights (MoCo or classifier, never DDP-wrapped),
     "optimizer", "scheduler", "scaler": their state dicts (absent in exported/best-only files),
     "config": the command's arguments, "metrics": {...}, "version": project version}
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from neuromoco.errors import UserError
from neuromoco.io import atomic_write

FORMAT = "neuromoco-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file beside it, then rename)."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint of ``kind`` (one, or any of several); a missing, truncated or foreign file, or one of
    another kind, is a one-line :class:`UserError`."""
    path = Path(path)
    if path.is_dir():
        for name in ("last.pt", "best.pt"):
            if (path / name).is_file():
                path = path / name
                break
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    ckpt = _read(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a NeuroMoCo checkpoint")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer version (format {ckpt['format_version']})")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and ckpt.get("kind") not in kinds:
        hint = {"pretrain": "pass a checkpoint written by `train pretrain`",
                "classifier": "this is a pre-training checkpoint without a classifier head: run "
                              "`train finetune` or `train linear` on it first"}.get(kinds[0], "")
        wanted = " or ".join(repr(k) for k in kinds)
        raise UserError(f"{path} is a {ckpt.get('kind')!r} checkpoint, not {wanted}; {hint}".rstrip("; "))
    ckpt["_path"] = str(path)
    return ckpt


def _read(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` of ``path``; any failure is one line naming the file, never torch's
    paragraph about ``weights_only`` (whose advice, to unpickle arbitrary code, is not ours to give)."""
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise UserError(f"checkpoint {path} cannot be read ({err.strerror or type(err).__name__})") from None
    except Exception as err:  # noqa: BLE001 - zip, pickle, EOF and runtime errors all mean "not readable"
        if isinstance(err, pickle.UnpicklingError) and zipfile.is_zipfile(path):
            raise UserError(f"checkpoint {path} is not a NeuroMoCo checkpoint (a torch file holding Python "
                            "objects other than tensors and plain values)") from None
        raise UserError(f"checkpoint {path} is not a readable checkpoint (truncated or not a torch file)") from None


def restore_training_state(ckpt: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any, scaler: Any = None) -> tuple[int, int]:
    """Load a checkpoint's model, optimizer, scheduler (and AMP scaler) state for ``--resume``; returns the
    epoch to start from and the optimizer step count. A checkpoint of another configuration is a
    :class:`UserError` naming the first mismatch."""
    try:
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise UserError(f"{ckpt.get('_path', 'the checkpoint')} does not match this configuration: "
                        f"{str(err).splitlines()[0]}") from None
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    return int(ckpt["epoch"]) + 1, int(ckpt["step"])
