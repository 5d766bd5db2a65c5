"""The training commands' shared flags (declared once each) and their record, ``config.json``.

What the flags hold reaches the engine as the typed values of :mod:`neuromoco.train.engine.config`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromoco.cli import add_no_progress
from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json

if TYPE_CHECKING:
    from neuromoco.train.engine.config import RunOptions

#: default --log-every: a real epoch of a few dozen steps shows a line or more (a few hundred: one in ten steps)
LOG_EVERY = 10


def add_runtime_args(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """Where and how a command computes: device, AMP, the LIF's implementation, (``seed``: --seed,) workers,
    progress (a bar on a terminal, else a line every --log-every steps)."""
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    g.add_argument("--amp", default="auto", choices=["auto", "on", "off"],
                   help="float16 mixed precision (auto: on with CUDA, off on CPU)")
    from neuromoco.train.models.lif_kernels import IMPLS

    g.add_argument("--lif-impl", default="auto", choices=list(IMPLS),
                   help="how the LIF neurons compute, all exact to Norse's step (auto: the fastest for the device: "
                        "native C loops on CPU where a C compiler builds them, else fused; docs/training.md)")
    if seed:
        g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes (default: 0 on CPU, 4 with CUDA)")
    add_no_progress(g)
    g.add_argument("--log-every", type=positive_int, default=LOG_EVERY, metavar="N",
                   help="steps between progress lines where stderr is not a terminal (there a bar shows) and "
                        f"between metrics.jsonl step lines (default {LOG_EVERY})")


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_data_args(p: argparse.ArgumentParser, dataset_default: str | None = "embedded",
                  time_steps_default: int | None = 16, downsample_default: int | None = 1) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=dataset_default,
                   help="dataset name (see `train data`), tonic:ClassName, or a folder of recordings with one "
                        "sub-folder per class (docs/datasets.md)" + (f"; default {dataset_default}"
                                                                     if dataset_default else ""))
    g.add_argument("--sensor-size", type=sensor_size_arg, default=None, metavar="W,H,P",
                   help="sensor of a recordings folder (default: from the files, else max x+1, max y+1, 2)")
    g.add_argument("--time-unit", default=None, choices=["us", "ms", "s", "ns"],
                   help="timestamp unit of a recordings folder's .npy/.h5/.csv files (default us)")
    g.add_argument("--data-root", default=None, help="where the dataset files are (default: the data package's)")
    g.add_argument("--time-steps", "-T", type=int, default=time_steps_default,
                   help="frames per sample" + (f" (default {time_steps_default})" if time_steps_default else ""))
    g.add_argument("--downsample", type=int, default=downsample_default, help="spatial downsampling factor")
    g.add_argument("--max-samples", type=int, default=None, help="use only the first N samples of each split "
                   "(quick smoke runs)")


def sensor_size_arg(text: str) -> list[int]:
    """``W,H,P`` -> ``[W, H, P]`` (argparse type of ``--sensor-size``)."""
    try:
        values = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers W,H,P, got {text!r}")
    return values


def add_optim_args(p: argparse.ArgumentParser, *, epochs: int, batch_size: int,
                   lr: float) -> argparse._ArgumentGroup:
    """The optimisation options every training command shares (defaults differ per command)."""
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    g.add_argument("--batch-size", type=int, default=batch_size,
                   help=f"global batch size, split over DDP ranks (default {batch_size})")
    g.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="default adamw")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="on weights, not BN or biases (default 1e-4)")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine decay")
    g.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm (0: off)")
    return g


def add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run directory")
    g.add_argument("--out", required=True, help="run directory: checkpoints, metrics.jsonl, tb/, config.json (one that "
                   "holds a run is refused without --resume or --overwrite)")
    g.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue an interrupted run (from RUN_DIR/last.pt, or the checkpoint given; a run "
                        "interrupted before its first checkpoint starts again from epoch 1, keeping its files)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run directory that holds a run, deleting that run's files")


def resolve_workers(workers: int | None, device_type: str) -> int:
    if workers is not None:
        if workers < 0:
            raise UserError("--workers must be >= 0")
        return workers
    return 4 if device_type == "cuda" else 0


def check_positive(**values: float | None) -> None:
    """Refuse (one line naming the flag) a value that is missing, zero or negative."""
    for name, v in values.items():
        if v is None or v <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {v}")


def plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's plain values (what ``config.json`` records as ``args``)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in ("func",) and isinstance(v, (str, int, float, bool, list, tuple, type(None), Path))}


def write_config(run: RunOptions, **extra: Any) -> None:
    """``config.json``: the command line as given, the host, and ``extra`` (runtime, data, the task's fields)."""
    cfg = {"command": run.command, "args": run.argv,
           "host": {"python": platform.python_version(), "machine": platform.machine(),
                    "cpus": os.cpu_count()}}
    cfg.update(extra)
    atomic_write_json(run.out / "config.json", json.loads(json.dumps(cfg, default=str)))
