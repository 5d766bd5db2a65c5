"""How much memory a batch of the emulator takes, and the batch that fits, decided before anything is allocated.

A batch of ``B`` samples over ``T`` steps holds, at its peak (while layer ``i`` runs):

* the graded input, ``[T, B, n_in]`` float32 (twice while it is converted);
* the spike record ``[T, B, n]`` (one byte a value) of every layer still read by a later layer or the readout
  (:meth:`FixedPointExecutor._run_batch` frees the others once counted), or of every spiking layer when full
  spike records are asked for, and a non-spiking layer's voltage in float64;
* layer ``i``'s own work: its feed-forward activation ``[T, B, n_i]`` (float64 in the general step; the
  memoryless step works on chunks) plus its state and a convolution's grid of its source;
* with voltages recorded, every layer's voltage ``[T, B, n]`` (int32), counted as held from the start.

The estimate is an upper bound of those terms (with a margin for torch's temporaries); measured on
``sew-resnet18-128`` it is within 1.5x of the peak RSS increase (see benchmarks/scale.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: what the estimate leaves to everything else (the process, the plan, torch's allocator slack)
HEADROOM = 0.7
#: bytes per value of a layer's transient work: float64 activation plus its state, and a grid of the source
WORK_BYTES = 8 * 3


def available_bytes(device: torch.device) -> int | None:
    """Memory a run may use now: ``MemAvailable`` of ``/proc/meminfo`` (CPU) or the GPU's free memory; None
    where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def batch_bytes(n_in: int, layers: Sequence[tuple[int, int, bool]], T: int, B: int, voltages: bool = False) -> int:
    """Peak bytes of one batch: ``layers`` are ``(neurons, last reader's index, spiking)`` in execution order
    (the last reader ``len(layers)`` for the readout's sources and for layers whose spikes are kept);
    ``voltages``: every layer's voltage is recorded too."""
    peak = 0
    for i, (n, _, _) in enumerate(layers):
        live = sum(m * (1 if spiking else 8) for j, (m, last, spiking) in enumerate(layers[:i]) if last >= i)
        peak = max(peak, live + WORK_BYTES * n)
    kept = sum(m * (1 if spiking else 8) for m, last, spiking in layers if last >= len(layers))
    volts = 4 * sum(n for n, _, _ in layers) if voltages else 0
    return int(T * B * (8 * n_in + max(peak, kept) + volts))


def fitting_batch(n_in: int, layers: Sequence[tuple[int, int, bool]], T: int, wanted: int,
                  available: int | None, voltages: bool = False) -> tuple[int, int]:
    """The largest batch up to ``wanted`` whose :func:`batch_bytes` stays within :data:`HEADROOM` of
    ``available``, and the bytes one sample needs. 0 when not even one sample fits."""
    per_sample = batch_bytes(n_in, layers, T, 1, voltages)
    if available is None:
        return wanted, per_sample
    return max(0, min(wanted, int(HEADROOM * available) // max(1, per_sample))), per_sample
