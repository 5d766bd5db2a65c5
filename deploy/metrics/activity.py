"""Spike totals of a run, per source and (when recorded) per neuron, accumulated over batches: what the synaptic
operations of :mod:`.synops` are counted from."""

from __future__ import annotations

import numpy as np

from neuromoco.deploy.result import RunResult


def input_events(frames: np.ndarray) -> tuple[np.ndarray, str]:
    """Per input position (``[C, H, W]``) event totals over time and samples, and how they were counted: the frames'
    values summed when they are non-negative integers (event counts per bin), else their non-zero entries."""
    f = np.asarray(frames)
    integral = bool(np.all(f >= 0) and np.all(np.mod(f, 1) == 0))
    if integral:
        return f.sum(axis=(0, 1), dtype=np.float64), "events (sum of integer frame counts)"
    return (f != 0).sum(axis=(0, 1)).astype(np.float64), "non-zero frame entries (graded input, one event each)"


class Activity:
    """Spike totals of a run, per source and (when recorded) per neuron, accumulated over batches.

    ``frames`` of each batch are ``[T, B, C, H, W]``; the Input node's events are taken from them.
    """

    def __init__(self) -> None:
        self.samples = 0
        self.steps = 0
        self.per_neuron: dict[str, np.ndarray] = {}
        self.totals: dict[str, float] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.exact: dict[str, bool] = {}
        self.input_positions: np.ndarray | None = None
        self.input_basis = ""

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        T, B = result.output.shape[:2]
        self.samples += B
        self.steps = T
        ev, self.input_basis = input_events(frames)
        self.input_positions = ev if self.input_positions is None else self.input_positions + ev
        for k, counts in result.spike_counts.items():
            self.totals[k] = self.totals.get(k, 0.0) + float(np.sum(counts))
            if k in result.spikes:
                s = result.spikes[k].sum(axis=(0, 1), dtype=np.int64)
                self.shapes[k] = tuple(s.shape)
                self.per_neuron[k] = self.per_neuron.get(k, 0) + s
                self.exact[k] = self.exact.get(k, True)
            else:
                self.exact[k] = False
                self.per_neuron.pop(k, None)
