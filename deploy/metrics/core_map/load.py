"""Per-core synaptic operations per time step from a run's spikes, for a partition (and its expanded twin)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.metrics.core_map.placement import Core, MapLayer
from neuromoco.deploy.result import RunResult


class _Tally:
    """Per-core synaptic operations of one partition, accumulated over batches."""

    def __init__(self, cores: list[Core]) -> None:
        self.cores = cores
        self.total = np.zeros(len(cores))
        self.peak = np.zeros(len(cores))
        self.bottleneck = np.zeros(len(cores), dtype=np.int64)  # steps in which each core was the slowest
        self.step_time_sum = 0.0
        self.step_time_max = 0.0
        self.neurons = np.array([c.neurons for c in cores], dtype=np.float64)

    def membership(self, layer: str, n: int) -> sp.csr_matrix:
        """``[n_cores, n]``: 1 where a neuron of ``layer`` sits on a core."""
        mine = [(i, c.rows) for i, c in enumerate(self.cores) if c.layer == layer]
        r = np.concatenate([np.full(len(rows), i) for i, rows in mine]) if mine else np.zeros(0, dtype=np.int64)
        c = np.concatenate([rows for _, rows in mine]) if mine else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(self.cores), n))

    def add(self, load: np.ndarray, limits: dict[str, float]) -> None:
        self.total += load.sum(axis=0)
        self.peak = np.maximum(self.peak, load.max(axis=0, initial=0))
        t = load * limits["synop_s"] + self.neurons * limits["neuron_update_s"]
        slowest = t.max(axis=1, initial=0)
        if len(self.cores):
            np.add.at(self.bottleneck, t.argmax(axis=1), 1)
        self.step_time_sum += float(slowest.sum())
        self.step_time_max = max(self.step_time_max, float(slowest.max(initial=0)))


class CoreLoad:
    """Per-core synaptic operations per time step from a run's spikes, accumulated over batches, for the
    partition ``cores`` and, when given, the ``expanded`` one (no weight sharing) on the same spikes.

    A matrix connection's load per core is ``(cores x synapses from each source neuron) @ spikes``; a kernel's
    is the binary kernel applied to the spikes (synaptic events per target neuron: a convolution, never an
    expanded matrix) summed over each core's neurons.
    """

    def __init__(self, layers: list[MapLayer], cores: list[Core], input_name: str, limits: dict[str, float],
                 expanded: list[Core] | None = None) -> None:
        self.limits, self.input_name = limits, input_name
        self.tallies = [_Tally(cores)] + ([_Tally(expanded)] if expanded is not None else [])
        self.samples = self.steps = 0
        self.missing: set[str] = set()
        # per connection: its source, the binary kernel (or None) and per tally the matrix it is multiplied by
        self.terms: list[tuple[str, Kernel | None, list[sp.csr_matrix]]] = []
        for lay in layers:
            for src, w in lay.incoming:
                member = [t.membership(lay.name, lay.neurons) for t in self.tallies]
                if isinstance(w, Kernel):
                    self.terms.append((src, w.with_weight(w.weight != 0), member))
                else:
                    b = (w != 0).astype(np.float64).tocsr()
                    self.terms.append((src, None, [(p @ b).tocsr() for p in member]))

    def _spikes(self, src: str, result: RunResult, frames: np.ndarray, n: int) -> np.ndarray | None:
        if src == self.input_name:
            return (frames.reshape(n, -1) != 0).astype(np.float32)
        if src in result.spikes:
            return np.asarray(result.spikes[src], dtype=np.float32).reshape(n, -1)
        self.missing.add(src)
        return None

    def update(self, result: RunResult, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        T, B = frames.shape[:2]
        self.samples += B
        self.steps = T
        loads = [np.zeros((T * B, len(t.cores))) for t in self.tallies]
        for src, kernel, mats in self.terms:
            s = self._spikes(src, result, frames, T * B)
            if s is None:
                continue
            if kernel is None:
                for load, m in zip(loads, mats, strict=True):
                    load += np.asarray((m @ s.T.astype(np.float64)).T)
                continue
            chunk = max(1, (1 << 22) // kernel.shape[0])  # bounded memory for the per-neuron events
            for a in range(0, T * B, chunk):
                with torch.no_grad():
                    events = kernel.apply(torch.from_numpy(s[a:a + chunk])).numpy().astype(np.float64)
                for load, m in zip(loads, mats, strict=True):
                    load[a:a + chunk] += np.asarray((m @ events.T).T)
        for t, load in zip(self.tallies, loads, strict=True):
            t.add(load, self.limits)
