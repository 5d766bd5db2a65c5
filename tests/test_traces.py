"""Traces: a run's records in NIR graph data or the project's .npz, and ``trace:FILE`` as a target of parity.

Round trips are exact in both formats; a trace recorded by ``deploy run --trace`` equals the live run in
``deploy parity``; one spike flipped in one layer at one step is reported as the first divergence there; a
chip's trace (NIR graph data with spikes only, no project metadata) is compared in recorded order; a trace that
does not fit the graph or the samples is refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from neuromoco.deploy.cli import main
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets import TARGETS, spec
from neuromoco.deploy.traces import Trace, TraceInfo, read, read_info, sample_key, write
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"  # input [2, 16, 16], T = 10, lif1 -> lif2 -> lif3 -> output


def _trace(seed: int = 0, T: int = 5, N: int = 3) -> Trace:
    rng = np.random.default_rng(seed)
    spikes = {"a": (rng.random((T, N, 2, 3, 3)) < 0.3).astype(np.uint8), "b": (rng.random((T, N, 4)) < 0.5)
              .astype(np.uint8)}
    counts = {k: s.reshape(T, N, -1).sum(-1, dtype=np.int64) for k, s in spikes.items()}
    result = RunResult(output=rng.normal(size=(T, N, 4)), spike_counts=counts, spikes=spikes)
    info = TraceInfo(target="reference", options={"dtype": "float64"}, model="m.nir", dataset="d", split="test",
                     dt=0.001, output_node="out")
    return Trace(result, info, rng.integers(0, 4, N), [f"{i:040x}" for i in range(N)],
                 {"b": rng.normal(size=(T, N, 4))})


@pytest.mark.parametrize("suffix", [".nir", ".npz"])
def test_a_trace_round_trips_exactly(tmp_path, suffix):
    t = _trace()
    path = write(tmp_path / f"t{suffix}", t)
    back = read(path)
    np.testing.assert_array_equal(back.result.output, t.result.output)
    assert back.result.output.dtype == np.float64
    for k, s in t.result.spikes.items():
        assert back.result.spikes[k].dtype == np.uint8 and back.result.spikes[k].shape == s.shape, k
        np.testing.assert_array_equal(back.result.spikes[k], s, err_msg=k)
        np.testing.assert_array_equal(back.result.spike_counts[k], t.result.spike_counts[k], err_msg=k)
    np.testing.assert_array_equal(back.voltages["b"], t.voltages["b"])
    np.testing.assert_array_equal(back.labels, t.labels)
    assert back.sample_keys == t.sample_keys
    assert back.info.target == "reference" and back.info.dt == 0.001 and back.info.shapes["a"] == [2, 3, 3]
    assert read_info(path) == back.info
    if suffix == ".nir":  # NIR's own reader: per node its observables, [samples, steps, neurons]
        data = nir.read_data(str(path))
        assert set(data.nodes) == {"a", "b", "out"}
        spikes = data.nodes["a"].observables["spikes"]
        assert spikes.data.dtype == bool and spikes.data.shape == (3, 5, 18) and spikes.dt == 0.001
        np.testing.assert_array_equal(spikes.data[1, 2], t.result.spikes["a"][2, 1].ravel())
        assert set(data.nodes["b"].observables) == {"spikes", "v"}


def test_a_bad_trace_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown suffix '.txt'"):
        write(tmp_path / "t.txt", _trace())
    with pytest.raises(UserError, match="trace file not found"):
        read(tmp_path / "none.nir")
    (tmp_path / "bad.nir").write_text("not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        read(tmp_path / "bad.nir")
    counts_only = _trace()
    counts_only.result.spikes = {}
    with pytest.raises(UserError, match="recorded only counts"):
        write(tmp_path / "c.nir", counts_only)


def _frames(folder: Path, n: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / "frames.npz"
    np.savez(path, frames=rng.poisson(0.4, (n, 10, 2, 16, 16)).astype(np.float32), labels=rng.integers(0, 10, n))
    return path


def _record(tmp_path: Path, target: str, fmt: str, frames: Path, *extra: str) -> Path:
    out = tmp_path / f"run-{target}-{fmt}"
    rc = main(["run", str(TINY), "--target", target, "--dataset", str(frames), "--trace", fmt, "--out", str(out),
               "--no-progress", *extra])
    assert rc == 0
    return out / f"trace.{fmt}"


def _parity(tmp_path: Path, name: str, frames: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / f"parity-{len(list(tmp_path.iterdir()))}"
    rc = main(["parity", str(TINY), "--targets", name, "--dataset", str(frames), "--no-progress", "--out", str(out),
               *extra])
    data = json.loads((out / "parity.json").read_text())
    # the graph's picture beside the report, embedded in it
    assert (out / "graph.png").stat().st_size > 10_000
    assert "![the graph](graph.png)" in (out / "report.md").read_text()
    return rc, data["targets"][name]


@pytest.mark.parametrize("fmt", ["nir", "npz"])
def test_parity_reports_a_spike_flipped_in_a_trace(tmp_path, capsys, fmt):
    """A trace of the reference equals it; one spike flipped in lif2 at step 4 of sample 3 is found there."""
    frames = _frames(tmp_path)
    path = _record(tmp_path, "reference", fmt, frames)
    assert "reference" in capsys.readouterr().out
    assert spec(f"trace:{path}").emulator == "reference" and f"trace:{path}" not in list(TARGETS)
    assert f"trace:{path}" in TARGETS and "trace:" not in TARGETS and "tarce:x" not in TARGETS
    rc, entry = _parity(tmp_path, f"trace:{path}", frames)
    assert rc == 0 and entry["status"] == "ok" and entry["role"] == "deployment exactness", entry
    assert entry["metrics"]["mismatched_spikes"] == 0 and entry["metrics"]["samples"] == 6

    t = read(path)
    assert t.info.target == "reference" and t.sample_keys is not None
    t.result.spikes["lif2"][4, 3, 5, 2, 1] ^= 1
    t.result.spike_counts["lif2"][4, 3] = int(t.result.spikes["lif2"][4, 3].sum())
    write(path, t)
    rc, entry = _parity(tmp_path, f"trace:{path}", frames)
    assert rc == 1 and entry["status"] == "fail"
    m = entry["metrics"]
    assert m["mismatched_spikes"] == 1 and m["diverging_samples"] == 1
    assert m["worst_samples"] == [{"sample": 3, "mismatches": 1, "first_step": 4, "first_layer": "lif2",
                                   "mismatches_at_first_step": 1}]
    assert m["layers"]["lif2"]["rel_diff"] > 0 and m["layers"]["lif1"]["rel_diff"] == 0


def test_a_chip_trace_without_metadata_is_compared_in_order(tmp_path, capsys):
    """NIR graph data holding spikes only (no output, no project group): the tolerances, samples in order."""
    frames = _frames(tmp_path)
    ours = read(_record(tmp_path, "reference", "nir", frames))
    chip = tmp_path / "chip.h5"
    nir.write_data(str(chip), nir.NIRGraphData({k: nir.NIRNodeData({"spikes": nir.TimeGriddedData(
        np.swapaxes(s.reshape(10, 6, -1), 0, 1).astype(bool), 0.001)}) for k, s in ours.result.spikes.items()}))
    with h5py.File(chip, "r") as f:
        assert "neuromoco" not in f
    s = spec(f"trace:{chip}")
    assert s.emulator is None and not s.exact  # its producer is unknown: judged with the tolerances
    rc, entry = _parity(tmp_path, f"trace:{chip}", frames, "--exactness-samples", "0")
    assert rc == 0 and entry["role"] == "parity" and entry["metrics"]["mismatched_spikes"] == 0, entry
    assert entry["metrics"]["agreement"] == 1.0  # the output is lif3's spikes, the Output node's one input
    # a trace of other time steps does not fit: one line in the entry, exit 1
    short = tmp_path / "short.h5"
    nir.write_data(str(short), nir.NIRGraphData({k: nir.NIRNodeData({"spikes": nir.TimeGriddedData(
        np.swapaxes(s.reshape(10, 6, -1), 0, 1)[:, :7].astype(bool), 0.001)}) for k, s in ours.result.spikes.items()}))
    rc, entry = _parity(tmp_path, f"trace:{short}", frames, "--exactness-samples", "0")
    assert rc == 1 and entry["status"] == "error" and "holds 7 time steps, these frames 10" in entry["error"]


def test_a_trace_of_other_samples_or_a_missing_file_is_refused(tmp_path, capsys):
    frames = _frames(tmp_path)
    path = _record(tmp_path, "reference", "npz", frames)
    other = tmp_path / "other"
    other.mkdir()
    rc, entry = _parity(tmp_path, f"trace:{path}", _frames(other, seed=1))
    assert rc == 1 and "holds no run of sample 0 of this batch" in entry["error"]
    assert main(["parity", str(TINY), "--targets", f"trace:{tmp_path / 'none.nir'}", "--dataset", str(frames),
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "trace file not found" in capsys.readouterr().err


def test_a_trace_records_which_samples_it_holds(tmp_path):
    frames = _frames(tmp_path)
    t = read(_record(tmp_path, "reference", "npz", frames, "--limit", "4"))
    f = np.load(frames)["frames"]
    assert t.sample_keys == [sample_key(f[i]) for i in range(4)]
    np.testing.assert_array_equal(t.labels, np.load(frames)["labels"][:4])
    assert (t.info.dataset, t.info.split, t.info.dt, t.info.output_node) == (str(frames), "test", 0.001, "output")


def test_lava_fixed_equals_a_trace_of_reference_fixed(tmp_path):
    """Lava fixed point against reference-fixed through traces, on 2 samples (Lava is slow): exact."""
    pytest.importorskip("lava")
    from neuromoco.deploy.parity import compare

    frames = _frames(tmp_path, n=2)
    rf = read(_record(tmp_path, "reference-fixed", "nir", frames))
    lf_path = _record(tmp_path, "lava-fixed", "nir", frames)
    m = compare(rf.result, read(lf_path).result, layers=["lif1", "lif2", "lif3"])
    assert m["mismatched_spikes"] == 0 and m["max_output_abs_diff"] == 0.0 and m["agreement"] == 1.0
    # the trace of lava-fixed is judged as lava-fixed: deployment exactness against reference-fixed, equality
    # (reference-fixed's own entry, quantization loss against the float reference, is not asked about here)
    _, entry = _parity(tmp_path, f"trace:{lf_path}", frames, "--exactness-samples", "2")
    assert entry["status"] == "ok" and entry["role"] == "deployment exactness"
    assert entry["compared_with"] == "reference-fixed"
    assert entry["metrics"]["mismatched_spikes"] == 0 and entry["tolerances"]["min_agreement"] == 1.0
