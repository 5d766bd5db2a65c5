"""reference-fixed decides its batch from the memory available before it allocates: lowered where the asked batch
does not fit (same results), refused in one line where one sample does not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.targets.reference_fixed import memory
from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor
from neuromoco.errors import UserError

MODEL = Path(__file__).resolve().parents[1] / "nir_models" / "neuromoco_embedded_cnn3.nir"


def test_batch_bytes_by_hand():
    """Input 10 values, layer 0 (100 neurons) read by layer 1 (50 neurons, kept to the end), T=4, B=2: the peak
    is layer 0's work, 24 bytes a value: 4 * 2 * (8 * 10 + 24 * 100) bytes."""
    assert memory.batch_bytes(10, [(100, 1, True), (50, 2, True)], 4, 2) == 4 * 2 * (80 + 2400)
    # while layer 1 runs, layer 0's record (one byte a value) is live beside layer 1's work
    assert memory.batch_bytes(10, [(10, 1, True), (100, 2, True)], 1, 1) == 80 + 10 + 2400


@pytest.fixture(scope="module")
def plan_and_frames():
    card = json.loads(MODEL.with_name(MODEL.stem + ".card.json").read_text())
    graph = load_graph(MODEL, input_shape=card["input_shape"])
    plan = compile_graph(graph, card["dt"], precision="fixed", input_shape=card["input_shape"], sign_split=True)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 3, size=(6, 8, *card["input_shape"])).astype(np.float32)
    return plan, frames


def test_a_batch_that_does_not_fit_is_lowered_with_the_same_results(plan_and_frames, monkeypatch):
    plan, frames = plan_and_frames
    full = FixedPointExecutor(plan, batch_size=256)
    want = full.run(frames)
    assert full.last_run["batch_size"] == 8
    per_sample = memory.batch_bytes(plan.input_size, full._memory_layers(), frames.shape[0], 1)
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(3.5 * per_sample / memory.HEADROOM))
    low = FixedPointExecutor(plan, batch_size=256)
    got = low.run(frames)
    assert low.last_run["batch_size"] == 3 and low.last_run["batches"] == 3
    np.testing.assert_array_equal(got.output, want.output)
    for name, counts in want.spike_counts.items():
        np.testing.assert_array_equal(got.spike_counts[name], counts)


def test_one_sample_that_does_not_fit_is_refused_in_one_line(plan_and_frames, monkeypatch):
    plan, frames = plan_and_frames
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(UserError, match=r"one sample of 6 steps needs about .* GiB") as err:
        FixedPointExecutor(plan).run(frames)
    assert "\n" not in str(err.value)


def test_records_no_later_layer_reads_are_freed_and_still_counted(plan_and_frames):
    """Only the readout's sources are kept to the end; every spiking layer still has its counts."""
    plan, frames = plan_and_frames
    ex = FixedPointExecutor(plan)
    last = ex._last_readers()
    kept = [name for name, j in last.items() if j == len(ex.layers)]
    assert kept and len(kept) < len(ex.layers)
    res = ex.run(frames)
    assert set(res.spike_counts) == {lay.name for lay in plan.layers if lay.spiking}
