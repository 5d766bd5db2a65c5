"""`deploy export --target lava` and `deploy run --target lava` from the command line, on a frames file."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.cli import main


def _model(tmp_path):
    rng = np.random.default_rng(0)
    nodes = {
        "input": nir.Input(input_type=np.array([2, 4, 4])),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([2, 4, 4])}),
        "fc": nir.Affine(weight=rng.normal(0.15, 0.3, (12, 32)), bias=np.zeros(12)),
        "lif": nir.LIF(tau=np.full(12, 0.02), r=np.ones(12), v_leak=np.zeros(12), v_threshold=np.ones(12)),
        "ro": nir.Affine(weight=rng.normal(0, 1, (3, 12)), bias=np.zeros(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "ro"),
                                         ("ro", "output")])
    path = tmp_path / "model.nir"
    nir.write(str(path), g)
    ModelCard(input_shape=[2, 4, 4], time_steps=6, dt=0.004, class_names=["a", "b", "c"]).save(
        tmp_path / "model_card.json")
    frames = rng.poisson(0.8, size=(10, 6, 2, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "frames.npz", frames=frames, labels=rng.integers(0, 3, 10))
    return path


def test_export_then_run_writes_predictions_counts_and_summary(tmp_path, capsys):
    model = _model(tmp_path)
    out = tmp_path / "lava_fixed"
    assert main(["export", str(model), "--target", "lava", "--precision", "fixed", "--out", str(out)]) == 0
    assert (out / "lava_network.h5").exists() and (out / "model_card.json").exists()
    report = json.loads((out / "lava_export.json").read_text())
    assert report["precision"] == "fixed" and "rel_weight_error" in json.dumps(report)
    assert "weight error" in capsys.readouterr().out

    run_dir = tmp_path / "run"
    assert main(["run", str(model), "--target", "lava-float", "--dataset", str(tmp_path / "frames.npz"),
                 "--batch-size", "4", "--out", str(run_dir), "--no-progress", "-o", "tile=2"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["samples"] == 10 and 0 <= summary["accuracy"] <= 1 and summary["options"]["tile"] == 2
    with np.load(run_dir / "predictions.npz") as z:
        assert z["output"].shape == (6, 10, 3) and z["predictions"].shape == (10,)
        assert z["spike_counts/lif"].shape == (6, 10) and z["labels"].shape == (10,)

    # the exported folder runs as it is (fixed point)
    run2 = tmp_path / "run2"
    assert main(["run", str(out), "--target", "lava-fixed", "--dataset", str(tmp_path / "frames.npz"),
                 "--out", str(run2), "--no-progress"]) == 0
    assert json.loads((run2 / "summary.json").read_text())["samples"] == 10


def test_cli_errors_are_one_line(tmp_path, capsys):
    model = _model(tmp_path)
    assert main(["export", str(model), "--target", "lava", "--int8", "--out", str(tmp_path / "x")]) == 2
    assert "--int8 applies to the onnx target only" in capsys.readouterr().err
    assert main(["export", str(model), "--target", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err
    out = tmp_path / "fl"
    assert main(["export", str(model), "--target", "lava", "--out", str(out)]) == 0
    assert main(["run", str(out), "--target", "lava-fixed", "--dataset", str(tmp_path / "frames.npz"),
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "float-point network" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["tile", "=3"])
def test_bad_option_syntax(tmp_path, capsys, bad):
    model = _model(tmp_path)
    assert main(["export", str(model), "--target", "lava", "--out", str(tmp_path / "o"), "-o", bad]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
