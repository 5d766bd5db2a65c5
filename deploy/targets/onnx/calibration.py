"""Calibration for int8: where the frames come from, and their replay through the fp32 step graph.

Calibration replays real samples through the fp32 step graph over all time steps, so every tensor the
calibrator sees (frames, states, currents) is what the network meets at run time. With the default
min-max method the ranges are streamed over the replay (:func:`replay_ranges`) and handed to
onnxruntime as tensor overrides: memory stays flat however many samples and steps calibrate (onnxruntime
1.32's own min-max calibrator keeps every feed's tensors, and its ``CalibMaxIntermediateOutputs``
option drops the collected data instead of merging it: microsoft/onnxruntime#18893, fix not released).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.targets.onnx.spec import StepSpec
from neuromoco.errors import UserError


def calibration_frames(card: ModelCard, dataset: str | None, root: str | None, limit: int) -> np.ndarray:
    """Up to ``limit`` samples ``[N, T, ...]`` of the train split of ``dataset`` (default: the card's)."""
    from neuromoco.deploy.datasets import load_frames

    try:
        frames, _ = load_frames(card, dataset=dataset, split="train", root=root, limit=limit)
    except UserError as err:
        raise UserError(f"int8 quantization needs calibration samples from the model's dataset and none "
                        f"could be read ({err}); pass a dataset (--dataset NAME or a frames .npz file)") from None
    if len(frames) == 0:
        raise UserError("int8 quantization needs calibration samples; the dataset's train split is empty")
    return frames


class ReplayReader:
    """A ``CalibrationDataReader`` that feeds the step graph the inputs it sees on real samples.

    ``frames`` ``[N, T, C, H, W]``; samples go through the fp32 model in batches of ``batch_size`` with
    their states carried over time, and every step's feed (frame and states) is handed to the calibrator.
    """

    def __init__(self, fp32_path: str | Path, frames: np.ndarray, batch_size: int = 16) -> None:
        from neuromoco.deploy.targets.onnx.runner import OnnxRunner

        self.runner = OnnxRunner(fp32_path, batch_size=batch_size, progress=False)
        self.frames = np.asarray(frames, dtype=np.float32)
        self.batch_size = max(1, int(batch_size))
        self._it: Iterator[dict[str, np.ndarray]] | None = None
        self.feeds = 0

    def _all(self) -> Iterator[dict[str, np.ndarray]]:
        for s in range(0, self.frames.shape[0], self.batch_size):
            seq = np.swapaxes(self.frames[s:s + self.batch_size], 0, 1)  # [T, b, ...]
            for feed in self.runner.steps(seq):
                self.feeds += 1
                yield feed

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._all()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


class OneFeedReader(ReplayReader):
    """The first feed of a replay only: the quantizer's own calibration pass, when the ranges come from
    :func:`replay_ranges` (as tensor overrides), needs just one run to know the tensors."""

    def _all(self) -> Iterator[dict[str, np.ndarray]]:
        seq = np.swapaxes(self.frames[:1], 0, 1)
        yield next(iter(self.runner.steps(seq)))


def replay_ranges(fp32_path: str | Path, frames: np.ndarray, tensors: list[str],
                  batch_size: int = 16) -> tuple[dict[str, tuple[float, float]], int]:
    """Min and max of ``tensors`` over real samples replayed through the step graph, states carried.

    Streams: only the running extremes are kept, so memory does not grow with samples or time steps
    (onnxruntime's calibrators keep every intermediate tensor). Returns the ranges and the feed count.
    """
    import onnx
    import onnxruntime as ort

    from neuromoco.deploy.targets.onnx.runner import session_options

    model = onnx.load(str(fp32_path))
    spec = StepSpec.of(model)
    graph_in = {i.name for i in model.graph.input}
    present = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in graph_in and t not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
            present.add(t)
    sess = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    read = [t for t in tensors if t not in graph_in]
    fetch = [s.output for s in spec.states] + read
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    feeds = 0
    frames = np.asarray(frames, dtype=np.float32)
    for s in range(0, frames.shape[0], max(1, int(batch_size))):
        seq = np.swapaxes(frames[s:s + batch_size], 0, 1)
        state = {st.input: np.full((seq.shape[1], *st.shape), st.init, np.float32) for st in spec.states}
        for step in range(seq.shape[0]):
            feed = {spec.input: np.ascontiguousarray(seq[step]).reshape(seq.shape[1], *spec.input_shape), **state}
            res = sess.run(fetch, feed)
            feeds += 1
            values = dict(zip(read, res[len(spec.states):], strict=True))  # res: the states, then read
            values.update({k: v for k, v in feed.items() if k in lo})
            for name, v in values.items():
                lo[name] = min(lo[name], float(v.min()))
                hi[name] = max(hi[name], float(v.max()))
            state = {st.input: r for st, r in zip(spec.states, res, strict=False)}  # res's first outputs
    return {t: (lo[t], hi[t]) for t in tensors}, feeds
