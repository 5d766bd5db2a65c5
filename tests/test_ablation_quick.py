"""benchmarks/ablation.py --quick: every cell of the ablation runs, is a finite number, and a rerun resumes."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from synthetic import synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("ablation", ROOT / "benchmarks" / "ablation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_ablation_fills_every_cell_and_resumes(ablation, tmp_path, capsys):
    out = tmp_path / "ablation.json"
    argv = ["--quick", "--dataset", "synth-ablation", "--runs", str(tmp_path / "runs"), "--out", str(out),
            "--device", "cpu", "--threads", "1"]
    with synthetic_dataset("synth-ablation", n_train=16, n_test=8, size=12, num_classes=2):
        assert ablation.main(argv) == 0
        doc = json.loads(out.read_text())
        assert doc["complete"] is True and doc["settings"]["quick"] is True
        rows = {"supervised"} | {f"{v}/{m}" for v in ("infonce_mean", "per_step", "mix")
                                 for m in ("linear", "finetune")}
        assert set(doc["table"]) == rows
        for row, cols in doc["table"].items():
            assert set(cols) == {"0.25", "0.5", "1"}, row
            for cell in cols.values():
                assert cell["n"] == 2 and math.isfinite(cell["mean"]) and math.isfinite(cell["std"])
                assert all(0.0 <= v <= 1.0 for v in cell["values"])
        assert {p["vs"] for p in doc["comparisons"]} >= {"supervised", "per_step/linear"}
        assert all(isinstance(p["within_noise"], bool) for p in doc["comparisons"])
        pre = doc["cells"]["pretrain/mix/seed0"]
        assert pre["command"].startswith("train pretrain") and "--mix-lambda 0.5" in pre["command"]

        capsys.readouterr()
        assert ablation.main(argv) == 0  # every cell cached: nothing runs again
        printed = capsys.readouterr()
        assert "top-1" not in printed.out and "resuming" in printed.err and "48/48 cells done" in printed.err
        assert ablation.main([*argv, "--summary"]) == 0
        assert json.loads(out.read_text())["table"] == doc["table"]

        with pytest.raises(SystemExit, match="other settings"):
            ablation.main([*argv, "--model", "mlp2-256"])
