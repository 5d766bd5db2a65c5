"""benchmarks/gpu_kernels.sh and its helper can't rot while no GPU is lent: the shell parses, the helper's
dry run (CPU, tiny shapes) times the project's rows and checks their spikes, and the parts merge into one JSON."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_kernels.sh"


def _helper():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("gpu_kernels", ROOT / "benchmarks" / "gpu_kernels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shell_script_parses_and_refuses_unknown_arguments() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    done = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr


def test_dry_run_times_the_rows_checks_spikes_and_merges(tmp_path) -> None:
    helper = _helper()
    a, b, merged = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "gpu_kernels.json"
    assert helper.main(["--device", "cpu", "--dry-run", "--rows", "fused", "--out", str(a)]) == 0
    assert helper.main(["--device", "cpu", "--dry-run", "--rows", "norse", "--skip-model", "--label", "x",
                        "--out", str(b)]) == 0
    helper.main(["--merge", str(a), str(b), "--out", str(merged)])
    doc = json.loads(merged.read_text())
    assert doc["dry_run"] is True and doc["op_shape"] == [2, 2, 32, 16, 16]
    fused, norse = doc["rows"]["project_fused"], doc["rows"]["project_norse_x"]
    assert fused["op"]["spikes_identical_to_norse"] and norse["op"]["spikes_identical_to_norse"]
    assert fused["op"]["grad_max_rel_diff_vs_norse"] < 1e-5 and fused["op"]["forward_backward_ms"] > 0
    assert fused["model"]["train_samples_per_s"] > 0 and "model" not in norse
    assert len(doc["commands"]) == 2
