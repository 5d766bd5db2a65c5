"""Traces written batch by batch: ``deploy parity --trace`` and :class:`~neuromoco.deploy.traces.TraceWriter`.

A parity run with ``--trace nir`` writes one trace per run (the target and the reference) that NIR's own reader
reads and that replays in parity exactly as the live run compared; the Python API writes ``.npz`` traces the same
way; the writer keeps no batch in memory once it is appended (the file grows instead), in both formats.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import nir
import numpy as np
import pytest

from neuromoco.deploy.cli import main
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.traces import TraceInfo, TraceWriter, read, read_info, sample_key
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"  # input [2, 16, 16], T = 10, lif1 -> lif2 -> lif3 -> output


def _frames(folder: Path, n: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / "frames.npz"
    np.savez(path, frames=rng.poisson(0.4, (n, 10, 2, 16, 16)).astype(np.float32), labels=rng.integers(0, 10, n))
    return path


def _parity(out: Path, targets: str, frames: Path, *extra: str) -> tuple[int, dict]:
    rc = main(["parity", str(TINY), "--targets", targets, "--dataset", str(frames), "--no-progress", "--out", str(out),
               "--batch-size", "4", *extra])
    return rc, json.loads((out / "parity.json").read_text())


def test_parity_writes_traces_that_replay_as_the_live_runs(tmp_path, capsys):
    """6 samples in batches of 4 and 2: each run's trace holds all 6, NIR reads it, and replayed in parity the
    reference's trace equals the reference and reference-fixed's trace gives the live comparison's numbers."""
    frames = _frames(tmp_path)
    rc, live = _parity(tmp_path / "live", "reference-fixed", frames, "--trace", "nir")
    assert rc == 0
    folder = tmp_path / "live" / "traces"
    assert sorted(p.name for p in folder.iterdir()) == ["reference-fixed.nir", "reference-float32.nir"]
    assert live["traces"] == {"reference:float32": str(folder / "reference-float32.nir"),
                              "reference-fixed": str(folder / "reference-fixed.nir")}
    entry = live["targets"]["reference-fixed"]
    assert entry["trace"] == str(folder / "reference-fixed.nir")

    rf = read(folder / "reference-fixed.nir")
    f = np.load(frames)
    assert rf.samples == 6 and rf.time_steps == 10
    assert rf.sample_keys == [sample_key(x) for x in f["frames"]]
    np.testing.assert_array_equal(rf.labels, f["labels"])
    i = rf.info
    assert (i.target, i.dataset, i.split, i.dt, i.output_node) == ("reference-fixed", str(frames), "test", 0.001,
                                                                 "output")
    assert i.options["record_spikes"] is True and i.options["scale"] == "neuron" and i.model == str(TINY)
    assert i.shapes == {"lif1": [8, 16, 16], "lif2": [8, 8, 8], "lif3": [10]}
    assert rf.voltages == {}  # without --trace-voltages: spikes only
    ref_info = read_info(folder / "reference-float32.nir")
    assert ref_info.target == "reference" and ref_info.options["dtype"] == "float32"
    data = nir.read_data(str(folder / "reference-fixed.nir"))  # NIR's own reader: [samples, steps, neurons]
    spikes = data.nodes["lif2"].observables["spikes"]
    assert spikes.data.dtype == bool and spikes.data.shape == (6, 10, 512)
    np.testing.assert_array_equal(spikes.data[5, 3], rf.result.spikes["lif2"][3, 5].ravel())

    # the reference's trace is the reference: held to equality, exact
    name = f"trace:{folder / 'reference-float32.nir'}"
    rc, replay = _parity(tmp_path / "replay-ref", name, frames)
    e = replay["targets"][name]
    assert rc == 0 and e["status"] == "ok" and e["role"] == "deployment exactness", e
    assert e["metrics"]["mismatched_spikes"] == 0 and e["metrics"]["max_output_abs_diff"] == 0.0
    # reference-fixed's trace compares with the reference exactly as the live run did
    name = f"trace:{folder / 'reference-fixed.nir'}"
    rc, replay = _parity(tmp_path / "replay-rf", name, frames)
    m, want = replay["targets"][name]["metrics"], entry["metrics"]
    assert rc == 0 and m["samples"] == 6
    for key in ("mismatched_spikes", "max_count_rel_diff", "rate_cosine", "agreement", "max_output_abs_diff"):
        assert m[key] == want[key], key
    assert "traces" in capsys.readouterr().out


def test_the_api_writes_npz_traces_and_needs_a_folder(tmp_path):
    from neuromoco.deploy.api import parity

    frames = _frames(tmp_path, n=3)
    with pytest.raises(UserError, match="trace= needs trace_dir="):
        parity(str(TINY), str(frames), "reference", trace="npz")
    with pytest.raises(UserError, match="trace='csv'"):
        parity(str(TINY), str(frames), "reference", trace="csv", trace_dir=tmp_path)
    with pytest.raises(UserError, match="needs --trace"):
        parity(str(TINY), str(frames), "reference", trace_voltages=True)
    report = parity(str(TINY), str(frames), "reference", trace="npz", trace_dir=tmp_path / "t", batch_size=2,
                    trace_voltages=True)
    assert set(report.data["traces"]) == {"reference", "reference:float32"}
    ours, ref = (read(report.data["traces"][k]) for k in ("reference", "reference:float32"))
    assert ours.samples == 3 and ours.info.target == "reference" and ours.info.dataset == str(frames)
    for k, s in ref.result.spikes.items():
        np.testing.assert_array_equal(ours.result.spikes[k], s, err_msg=k)
        np.testing.assert_array_equal(ours.voltages[k], ref.voltages[k], err_msg=k)
        assert ours.voltages[k].shape == s.shape and ours.voltages[k].dtype == np.float32
    np.testing.assert_array_equal(ours.result.output, ref.result.output)
    assert not list((tmp_path / "t").glob(".*"))  # no temporary file or spool left


def _batch(i: int, T: int = 4, B: int = 8) -> tuple[RunResult, np.ndarray, list[str]]:
    """A batch with half a megabyte of spikes (random, so gzip cannot shrink it away)."""
    rng = np.random.default_rng(i)
    s = (rng.random((T, B, 16, 32, 32)) < 0.3).astype(np.uint8)
    r = RunResult(rng.normal(size=(T, B, 3)), {"a": s.reshape(T, B, -1).sum(-1)}, {"a": s},
                  {"b": rng.normal(size=(T, B, 5)).astype(np.float32)})  # a non-spiking neuron's voltage
    return r, rng.integers(0, 3, B), [f"{i:020x}{b:020x}" for b in range(B)]


def _on_disk(p: Path) -> int:
    return p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.iterdir())


@pytest.mark.parametrize("suffix", [".nir", ".npz"])
def test_the_writer_holds_one_batch_not_all(tmp_path, suffix):
    """12 batches of 0.5 MB: the memory the writer holds does not grow with them, the file on disk does; the
    trace read back is every batch in order."""
    n = 12
    w = TraceWriter(tmp_path / f"t{suffix}", TraceInfo(target="x", dt=0.001))
    tracemalloc.start()
    try:
        sizes, held = [], []
        for i in range(n):
            r, lab, keys = _batch(i)
            w.append(r, lab, keys)
            del r, lab, keys
            held.append(tracemalloc.get_traced_memory()[0])
            sizes.append(_on_disk(w.temporary))
    finally:
        tracemalloc.stop()
    assert max(held) - held[0] < 400_000, held  # a writer keeping the batches would hold 0.5 MB more each
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    assert not (tmp_path / f"t{suffix}").exists()  # not before close
    path = w.close()
    assert not w.temporary.exists()
    back = read(path)
    parts = [_batch(i) for i in range(n)]
    assert back.samples == 8 * n and back.info.shapes == {"a": [16, 32, 32], "b": [5]}
    np.testing.assert_array_equal(back.result.spikes["a"], np.concatenate([p[0].spikes["a"] for p in parts], axis=1))
    np.testing.assert_array_equal(back.voltages["b"], np.concatenate([p[0].voltages["b"] for p in parts], axis=1))
    np.testing.assert_array_equal(back.labels, np.concatenate([p[1] for p in parts]))
    assert back.sample_keys == [k for p in parts for k in p[2]]


def test_a_batch_with_other_records_or_no_samples_is_refused(tmp_path):
    w = TraceWriter(tmp_path / "t.nir")
    r, lab, keys = _batch(0)
    w.append(r, lab, keys)
    with pytest.raises(ValueError, match="the first recorded"):
        w.append(RunResult(r.output, r.spike_counts, r.spikes), lab, keys)  # no voltages this time
    with pytest.raises(ValueError, match="3 labels for a batch of 8"):
        w.append(r, lab[:3], keys)
    w.abort()
    assert not w.temporary.exists() and not (tmp_path / "t.nir").exists()
    with pytest.raises(UserError, match="no samples were recorded"):
        TraceWriter(tmp_path / "e.npz").close()
    assert list(tmp_path.iterdir()) == []
