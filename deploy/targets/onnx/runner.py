"""Run a step graph written by the ONNX target with onnxruntime, carrying the neuron states over time."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuromoco.deploy.graph.shapes import check_frames_shape, check_time_axis
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets.onnx.spec import StepSpec
from neuromoco.errors import UserError

if TYPE_CHECKING:
    import onnxruntime


def session_options(threads: int | None = None, optimization: str = "all") -> onnxruntime.SessionOptions:
    """CPU session options: graph optimization level, intra-op threads, warnings and errors only."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    return so


class OnnxRunner:
    """An onnxruntime session on CPU over a step model; :meth:`run` takes frames ``[T, B, C, H, W]``.

    Samples go through in batches of ``batch_size`` (state reset per batch: every sample starts from the
    initial state); a progress bar appears when there is more than one batch and ``progress`` allows.

    ``workdir``: a temporary folder holding the model file (as :meth:`OnnxTarget.runner` exports it) that
    the runner owns: it lives as long as the runner and is removed with it (or by :meth:`close`).
    ``time_steps``: the model card's T, where known, to refuse frames given as ``[N, T, ...]``
    (:func:`~neuromoco.deploy.graph.shapes.check_time_axis`).
    """

    def __init__(self, path: str | Path, batch_size: int = 64, progress: bool | None = None,
                 record_spikes: bool = False, threads: int | None = None, optimization: str = "all",
                 workdir: tempfile.TemporaryDirectory | None = None, time_steps: int | None = None) -> None:
        import onnx
        import onnxruntime as ort

        self.workdir = workdir
        self.time_steps = time_steps
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"ONNX model not found: {self.path}")
        try:
            model = onnx.load(str(self.path), load_external_data=False)
        except Exception as err:  # noqa: BLE001 - onnx raises several types for a bad file
            raise UserError(f"{self.path} is not a readable ONNX model: {err}") from None
        self.spec = StepSpec.of(model)
        so = session_options(threads, optimization)
        if self.spec.quantization and not self.spec.quantization.get("currents_quantized", True):
            # Synapses whose outputs stay float have no integer kernel to fuse into; letting onnxruntime
            # treat Q/DQ as plain ops folds the int8 weights' DequantizeLinear once, at load, instead of
            # at every step (same numbers: DequantizeLinear of a constant is the same float either way).
            so.add_session_config_entry("session.disable_quant_qdq", "1")
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.batch_size = max(1, int(batch_size))
        self.progress = progress
        self.spikes = bool(record_spikes) and bool(self.spec.spike_tensors)
        if record_spikes and not self.spec.spike_tensors:
            raise UserError(f"{self.path} was exported without spike tensors; export with -o record_spikes=true")
        self._fetch = [self.spec.output, *self.spec.spike_counts.values(), *(s.output for s in self.spec.states)]
        if self.spikes:
            self._fetch += list(self.spec.spike_tensors.values())

    def close(self) -> None:
        """Remove the runner's ``workdir`` now instead of when the runner is garbage-collected."""
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        return {s.input: np.full((batch, *s.shape), s.init, dtype=np.float32) for s in self.spec.states}

    def _frames(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim < 2:
            raise UserError(f"frames must be [T, B, ...], got shape {list(frames.shape)}")
        check_time_axis(frames.shape, self.time_steps)
        want = list(self.spec.input_shape)
        if list(frames.shape[2:]) != want:
            check_frames_shape(tuple(frames.shape[2:]), tuple(want))
            frames = frames.reshape(*frames.shape[:2], *want)
        return np.ascontiguousarray(frames)

    def steps(self, frames: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
        """Feed dictionaries of every step for one batch, as the step graph saw them (for calibration)."""
        if self.spec.mode != "step":
            raise UserError(f"{self.path} is a whole-sequence model; calibration replays the step model")
        frames = self._frames(frames)
        state = self.initial_state(frames.shape[1])
        names = [s.output for s in self.spec.states]
        for t in range(frames.shape[0]):
            feed = {self.spec.input: frames[t], **state}
            yield feed
            outs = self.session.run(names, feed)
            state = {s.input: o for s, o in zip(self.spec.states, outs, strict=True)}

    def _run_sequence(self, frames: np.ndarray) -> RunResult:
        spec = self.spec
        names = [spec.output, *spec.spike_counts.values(), *(spec.spike_tensors.values() if self.spikes else [])]
        res = self.session.run(names, {spec.input: frames})
        k = 1 + len(spec.spike_counts)
        counts = dict(zip(spec.spike_counts, res[1:k], strict=True))
        spikes = dict(zip(spec.spike_tensors, res[k:], strict=True)) if self.spikes else {}
        return RunResult(output=res[0].astype(np.float64), spike_counts=counts, spikes=spikes)

    def _run_batch(self, frames: np.ndarray) -> RunResult:
        if self.spec.mode == "sequence":
            return self._run_sequence(frames)
        T, B = frames.shape[:2]
        state = self.initial_state(B)
        out = np.empty((T, B, self.spec.n_out), dtype=np.float64)
        counts = {n: np.empty((T, B), dtype=np.int64) for n in self.spec.spike_counts}
        spikes = {n: np.empty((T, B, *self._spike_shape(n)), dtype=np.uint8) for n in self.spec.spike_tensors} \
            if self.spikes else {}
        k_counts, k_states = 1, 1 + len(counts)
        k_spikes = k_states + len(self.spec.states)
        for t in range(T):
            res = self.session.run(self._fetch, {self.spec.input: frames[t], **state})
            out[t] = res[0]
            for j, n in enumerate(counts):
                counts[n][t] = res[k_counts + j]
            state = {s.input: res[k_states + j] for j, s in enumerate(self.spec.states)}
            for j, n in enumerate(spikes):
                spikes[n][t] = res[k_spikes + j]
        return RunResult(output=out, spike_counts=counts, spikes=spikes)

    def _spike_shape(self, node: str) -> list[int]:
        for s in self.spec.states:
            if s.node == node and s.var == "v":
                return s.shape
        raise KeyError(node)  # pragma: no cover

    def run(self, frames: np.ndarray) -> RunResult:
        frames = self._frames(frames)
        B = frames.shape[1]
        if B == 0 or frames.shape[0] == 0:
            raise UserError(f"no samples or no time steps to run (frames of shape {list(frames.shape)})")
        starts = list(range(0, B, self.batch_size))
        it = starts
        show = self.progress if self.progress is not None else len(starts) > 4
        if show and len(starts) > 1:
            from tqdm import tqdm

            it = tqdm(starts, desc="onnxruntime", unit="batch", leave=False)
        parts = [self._run_batch(frames[:, s:s + self.batch_size]) for s in it]
        return parts[0] if len(parts) == 1 else RunResult.concatenate(parts)
