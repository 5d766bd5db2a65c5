"""Where and how a command computes: device (CUDA when present, CPU otherwise), mixed precision, the LIF's
implementation, DDP rank, the C allocator's reuse of freed memory on CPU; and how it shows progress."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch

from neuromoco.errors import UserError
from neuromoco.train.engine.allocator import keep_freed_memory
from neuromoco.train.engine.cliargs import LOG_EVERY
from neuromoco.train.engine.distributed import DistInfo, init_distributed


@dataclass
class Runtime:
    device: torch.device
    amp: bool
    dist: DistInfo = field(default_factory=DistInfo)
    scaler: torch.amp.GradScaler | None = None
    progress: bool = True  # progress on stderr, a bar or lines (--no-progress: none)
    lif_impl: str = "fused"  # the LIF implementation the models compute with (--lif-impl resolved for the device)
    log_every: int = LOG_EVERY  # steps between progress lines where stderr is not a terminal (--log-every)
    allocator: str = "system default"  # what the C allocator does (engine.allocator: kept for reuse on CPU)

    @property
    def shows_progress(self) -> bool:
        """Whether this process shows progress: asked for, and the main rank."""
        return self.progress and self.is_main

    def autocast(self) -> contextlib.AbstractContextManager:
        """float16 autocast on CUDA when AMP is on (LIF thresholds then compare in half precision)."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def describe(self) -> dict:
        return {"device": str(self.device), "amp": self.amp, "lif_impl": self.lif_impl,
                "world_size": self.dist.world_size, "rank": self.dist.rank, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "allocator": self.allocator}


def make_runtime(device: str = "auto", amp: str = "auto", progress: bool = True, lif_impl: str = "auto",
                 log_every: int = LOG_EVERY) -> Runtime:
    """``device``: auto | cpu | cuda | cuda:N. ``amp``: auto (on with CUDA) | on | off. ``progress``: a bar on
    a terminal, else a line every ``log_every`` steps. ``lif_impl``: auto (the fastest exact LIF for the
    device) | norse | fused | native | triton."""
    from neuromoco.train.models.lif_kernels import resolve_impl

    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise UserError(f"bad --device {device!r}: {err}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but PyTorch sees no CUDA device here")
    info = init_distributed(dev)
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)
    if amp not in ("auto", "on", "off"):
        raise UserError(f"--amp must be auto, on or off, not {amp!r}")
    use_amp = dev.type == "cuda" if amp == "auto" else amp == "on"
    if use_amp and dev.type != "cuda":
        raise UserError("--amp on needs CUDA (float16 autocast); on CPU train in float32")
    try:
        impl = resolve_impl(lif_impl, dev)
    except ValueError as err:
        raise UserError(str(err)) from None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp) if dev.type == "cuda" else None
    allocator = keep_freed_memory() if dev.type == "cpu" else "system default"
    if dev.type == "cpu" and "OMP_NUM_THREADS" not in os.environ and info.enabled:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.world_size))
    return Runtime(dev, use_amp, info, scaler, progress, impl, log_every, allocator)
