"""A trace stands for the target that made it: in ``deploy parity``, a recorded run of a slow target's emulator
(``reference-fixed`` for ``lava-fixed``) is used in the emulator's place, when it was recorded with the plan
options the emulator would run with; otherwise the emulator runs and the trace's entry says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.api.comparison import ParitySettings, plan_comparisons, stand_ins
from neuromoco.deploy.cli import main
from neuromoco.deploy.targets import spec

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"  # input [2, 16, 16], T = 10


def _frames(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "frames.npz"
    np.savez(path, frames=rng.poisson(0.4, (n, 10, 2, 16, 16)).astype(np.float32), labels=rng.integers(0, 10, n))
    return path


def _record_rf(tmp_path: Path, frames: Path, *extra: str) -> str:
    out = tmp_path / f"rf{len(extra)}"
    assert main(["run", str(TINY), "--target", "reference-fixed", "--dataset", str(frames), "--trace", "nir",
                 "--out", str(out), "--no-progress", *extra]) == 0
    return f"trace:{out / 'trace.nir'}"


def test_which_trace_stands_in_for_an_emulator(tmp_path, capsys):
    frames = _frames(tmp_path, 2)
    rf = _record_rf(tmp_path, frames)
    assert spec(rf).recorded is not None and spec(rf).recorded[0] == "reference-fixed"
    rf_values = {"reference-fixed": {"record_spikes": "true"}}
    assert stand_ins(["lava-fixed", rf], rf_values) == ({"reference-fixed": rf}, {})
    plan = plan_comparisons(["lava-fixed", rf], ParitySettings(exactness_samples=2), None, {"reference-fixed": rf})
    assert set(plan) == {"lava-fixed", rf}  # reference-fixed does not run
    assert plan["lava-fixed"].baseline == rf and plan["lava-fixed"].role == "deployment exactness"
    assert plan[rf].role == "quantization loss" and plan[rf].baseline == "reference:float32" and plan[rf].added is None
    # the user names reference-fixed: it runs, the trace is one more target
    assert stand_ins(["lava-fixed", "reference-fixed", rf], rf_values) == ({}, {})
    # nothing to stand in for without a slow target
    assert stand_ins([rf], rf_values) == ({}, {})
    # the emulator would compile another plan than the one recorded: it runs, the trace's entry says why
    found, notes = stand_ins(["lava-fixed", rf], {"reference-fixed": {"scale": "layer"}})
    assert found == {} and "recorded with scale='neuron' (now 'layer'); reference-fixed runs instead" in notes[rf]
    # options that do not change the plan (the emulator's device, batch size) do not matter
    layer = _record_rf(tmp_path, frames, "-o", "batch_size=7")
    assert stand_ins(["lava-fixed", layer], rf_values)[0] == {"reference-fixed": layer}


def test_lava_fixed_is_exact_against_a_trace_of_reference_fixed(tmp_path, capsys):
    """2 samples (Lava is slow): lava-fixed's deployment exactness is judged against the trace, which stands in for
    reference-fixed (not run), and it is exact."""
    pytest.importorskip("lava")
    frames = _frames(tmp_path, 2)
    rf = _record_rf(tmp_path, frames)
    out = tmp_path / "parity"
    rc = main(["parity", str(TINY), "--targets", f"lava-fixed,{rf}", "--dataset", str(frames), "--no-progress",
               "--exactness-samples", "2", "--max-count-rel-diff", "0.5", "--out", str(out)])
    # (the loose count tolerance is for the trace's own quantization-loss entry on 2 samples; exactness is equality)
    entries = json.loads((out / "parity.json").read_text())["targets"]
    assert set(entries) == {"lava-fixed", rf}  # no reference-fixed run
    e = entries["lava-fixed"]
    assert e["compared_with"] == f"reference-fixed ({rf})" and e["role"] == "deployment exactness"
    assert e["status"] == "ok" and e["metrics"]["mismatched_spikes"] == 0 and e["metrics"]["samples"] == 2, e
    assert e["metrics"]["max_output_abs_diff"] == 0.0 and e["tolerances"]["min_agreement"] == 1.0
    assert entries[rf]["role"] == "quantization loss" and entries[rf]["status"] in ("ok", "inconclusive")
    assert rc == 0
    assert f"vs reference-fixed ({rf})" in capsys.readouterr().out
