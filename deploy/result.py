"""What one run of a graph over a batch of samples produces, in the same form for every executor."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunResult:
    """Outputs and spike records of a run over ``B`` samples and ``T`` time steps.

    ``output``: the graph's output node per step ``[T, B, n_out]`` (float64). Prediction is the arg-max of
    its sum over time. ``spike_counts``: for every spiking node (by NIR node name), the number of spikes
    per step and sample ``[T, B]`` (int64). ``spikes``: optionally the full 0/1 record per node
    ``[T, B, *node_shape]`` (uint8), for divergence analysis and rasters. ``voltages``: optionally, where a target
    records them (its ``record_voltages`` option), each neuron node's membrane voltage ``[T, B, *node_shape]`` at
    the end of the step, after its spike and reset (:mod:`neuromoco.deploy.semantics`: ``v_reset`` where it
    spiked), in the target's own units (the graph's for the float reference; Lava's integers for a fixed-point
    target, whose option help says so).
    """

    output: np.ndarray
    spike_counts: dict[str, np.ndarray]
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    voltages: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        return self.output.sum(axis=0).argmax(axis=-1)

    @staticmethod
    def concatenate(parts: list[RunResult]) -> RunResult:
        """Join results of consecutive batches along the sample axis."""
        if not parts:
            raise ValueError("no results to concatenate")

        def cat(key_dicts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
            return {k: np.concatenate([d[k] for d in key_dicts], axis=1) for k in key_dicts[0]}

        return RunResult(
            output=np.concatenate([p.output for p in parts], axis=1),
            spike_counts=cat([p.spike_counts for p in parts]),
            spikes=cat([p.spikes for p in parts]) if all(p.spikes for p in parts) else {},
            voltages=cat([p.voltages for p in parts]) if all(p.voltages for p in parts) else {},
        )

    def head(self, k: int) -> RunResult:
        """The first ``k`` samples (every record cut along its sample axis)."""
        if self.output.shape[1] == k:
            return self

        def cut(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {n: v[:, :k] for n, v in d.items()}

        return RunResult(self.output[:, :k], cut(self.spike_counts), cut(self.spikes), cut(self.voltages))

    def save(self, path: str, labels: np.ndarray | None = None) -> None:
        """Write predictions, outputs and per-layer spike counts to an ``.npz`` file atomically."""
        from neuromoco.io import atomic_write_npz

        arrays = {"output": self.output, "predictions": self.predictions}
        arrays.update({f"spike_counts/{k}": v for k, v in self.spike_counts.items()})
        if labels is not None:
            arrays["labels"] = labels
        atomic_write_npz(path, arrays)
