"""``deploy run --trace`` streams: each batch goes to the trace as it comes, and no batch's spikes outlive it.

Seven samples in batches of 2 (four batches, the last of one sample) give the same trace (info, spikes, voltages,
outputs, labels, frame keys) and the same ``predictions.npz`` as one batch of all seven. While batch ``k`` runs,
no spike or voltage array of batches before ``k - 1`` is alive (weak references to every array the runner
returned, checked at each runner call): the run keeps per batch only its outputs and per-layer counts. A run that
fails in its third batch leaves no trace and no temporary file. The Python API's ``run`` still returns every
batch's spikes when asked for them (``record_spikes=True``): it writes no trace, so they are its result.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuromoco.deploy.api import execution
from neuromoco.deploy.cli import main
from neuromoco.deploy.traces import read, sample_key

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"  # input [2, 16, 16], T = 10, lif1 -> lif2 -> lif3 -> output
N = 7


def _frames(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    path = folder / "frames.npz"
    np.savez(path, frames=rng.poisson(0.4, (N, 10, 2, 16, 16)).astype(np.float32), labels=rng.integers(0, 10, N))
    return path


def _run(out: Path, frames: Path, fmt: str, batch_size: int, target: str = "reference") -> int:
    return main(["run", str(TINY), "--target", target, "--dataset", str(frames), "--trace", fmt, "--out", str(out),
                 "--batch-size", str(batch_size), "--no-progress"])


@pytest.mark.parametrize("fmt", ["nir", "npz"])
def test_a_trace_streamed_in_batches_equals_one_batch(tmp_path, capsys, fmt):
    frames = _frames(tmp_path)
    assert _run(tmp_path / "one", frames, fmt, 64) == 0
    assert _run(tmp_path / "many", frames, fmt, 2) == 0
    one, many = read(tmp_path / "one" / f"trace.{fmt}"), read(tmp_path / "many" / f"trace.{fmt}")

    assert many.info == one.info and many.info.target == "reference" and many.info.options["record_spikes"] is True
    assert set(many.info.shapes) == {"lif1", "lif2", "lif3"}
    assert many.samples == N and many.time_steps == 10
    f = np.load(frames)
    assert many.sample_keys == one.sample_keys == [sample_key(x) for x in f["frames"]]
    np.testing.assert_array_equal(many.labels, f["labels"])
    np.testing.assert_array_equal(many.result.output, one.result.output)
    for records in ("spikes", "voltages", "spike_counts"):
        a, b = getattr(many.result, records), getattr(one.result, records)
        assert set(a) == set(b) == {"lif1", "lif2", "lif3"}, records
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape[:2] == (10, N), (records, k)
            np.testing.assert_array_equal(a[k], b[k])
    assert sum(int(s.sum()) for s in many.result.spikes.values()) > 0  # the records hold something to compare

    with np.load(tmp_path / "one" / "predictions.npz") as p1, np.load(tmp_path / "many" / "predictions.npz") as p2:
        assert sorted(p1.files) == sorted(p2.files) and not any(k.startswith("spikes/") for k in p2.files)
        for k in p1.files:
            np.testing.assert_array_equal(p1[k], p2[k])
    assert [p.name for p in (tmp_path / "many").iterdir() if p.name.startswith(".")] == []  # no spool left


class _Tracked:
    """A runner that remembers a weak reference to every per-neuron array it returned, per batch, and at each call
    records which earlier batches still have one alive."""

    def __init__(self, runner: Any, fail_at: int | None = None) -> None:
        self.runner, self.fail_at = runner, fail_at
        self.batches: list[list[weakref.ref]] = []
        self.alive_at_call: list[list[int]] = []

    def alive(self) -> list[int]:
        gc.collect()
        return [i for i, refs in enumerate(self.batches) if any(r() is not None for r in refs)]

    def run(self, frames: np.ndarray) -> Any:
        self.alive_at_call.append(self.alive())
        if len(self.batches) == self.fail_at:
            raise RuntimeError("the device went away")
        result = self.runner.run(frames)
        arrays = [*result.spikes.values(), *result.voltages.values()]
        assert arrays, "the run records spikes"
        self.batches.append([weakref.ref(a) for a in arrays])
        return result


def _tracking(monkeypatch, fail_at: int | None = None) -> list[_Tracked]:
    made: list[_Tracked] = []
    build = execution.build_runner

    def tracked(*args: Any) -> _Tracked:
        made.append(_Tracked(build(*args), fail_at))
        return made[-1]

    monkeypatch.setattr(execution, "build_runner", tracked)
    return made


@pytest.mark.parametrize("fmt", ["nir", "npz"])
def test_no_batch_spikes_are_held_across_batches(tmp_path, capsys, monkeypatch, fmt):
    frames = _frames(tmp_path)
    made = _tracking(monkeypatch)
    assert _run(tmp_path / "out", frames, fmt, 2) == 0
    (runner,) = made
    assert len(runner.batches) == 4
    # at call k no earlier batch's records are alive (k - 1 is let pass: a runner may keep its last result);
    # a run that holds every batch until the end (as deploy run did) fails here at k = 2
    for k, alive in enumerate(runner.alive_at_call):
        assert set(alive) <= {k - 1}, (k, alive)
    assert runner.alive() == []
    assert read(tmp_path / "out" / f"trace.{fmt}").samples == N


def test_a_run_that_fails_midway_leaves_no_trace(tmp_path, capsys, monkeypatch):
    frames = _frames(tmp_path)
    _tracking(monkeypatch, fail_at=2)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="went away"):
        _run(out, frames, "nir", 2)
    assert list(out.iterdir()) == []  # made for the trace, and left empty: no trace, temporary file or predictions


def test_the_api_still_returns_every_batchs_spikes_when_asked(tmp_path):
    from neuromoco.deploy.api import run

    f = np.load(_frames(tmp_path))
    whole = run(TINY, f["frames"], "reference", batch_size=64, record_spikes=True)
    split = run(TINY, f["frames"], "reference", batch_size=2, record_spikes=True)
    assert set(split.spikes) == {"lif1", "lif2", "lif3"}
    for k, s in split.spikes.items():
        assert s.shape[:2] == (10, N)
        np.testing.assert_array_equal(s, whole.spikes[k])
    np.testing.assert_array_equal(split.output, whole.output)
