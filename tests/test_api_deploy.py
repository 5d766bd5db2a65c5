"""The deploy API (neuromoco.deploy.api) is the job the CLI runs: same numbers, same reports, same option errors.

On the shipped tiny CNN and a seeded frames .npz (6 samples), CPU only: ``run``, ``parity`` and ``profile`` through
the API equal ``deploy run / parity / profile``'s files on the same input; a typo in an option gets ``-o``'s
message; frames that could be read two ways are refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.api import EnergyReport, Model, ParityReport, export, parity, profile, run
from neuromoco.deploy.cli import main
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("frames") / "frames.npz"
    np.savez(path, frames=(rng.random((6, 10, 2, 16, 16)) < 0.3).astype(np.float32),
             labels=rng.integers(0, 10, 6))
    return path


@pytest.fixture(scope="module")
def model() -> Model:
    return Model.load(TINY)


def _cli(*argv: str) -> int:
    return main([*argv, "--no-progress"])


def test_model_load_finds_the_card_beside_the_graph(model):
    assert model.graph is not None and model.card.input_shape == [2, 16, 16] and model.card.time_steps == 10
    with pytest.raises(UserError, match="model not found"):
        Model.load(TINY.with_name("missing.nir"))


def test_run_equals_the_cli(tmp_path, npz, model):
    assert _cli("run", str(TINY), "--target", "onnx", "--dataset", str(npz), "--out", str(tmp_path)) == 0
    with np.load(tmp_path / "predictions.npz") as z:
        cli_output, cli_counts = z["output"], {k: z[k] for k in z.files if k.startswith("spike_counts/")}
    result = run(model, str(npz), target="onnx")
    np.testing.assert_array_equal(result.output, cli_output)
    assert {f"spike_counts/{k}": v.tolist() for k, v in result.spike_counts.items()} == \
        {k: v.tolist() for k, v in cli_counts.items()}
    # an array gives what its .npz gives; a typed options instance what its keywords give
    with np.load(npz) as z:
        frames = z["frames"]
    np.testing.assert_array_equal(run(model, frames, "onnx").output, cli_output)
    np.testing.assert_array_equal(run(TINY, frames, "onnx").output, cli_output)  # a path is loaded as Model.load does
    from neuromoco.deploy.targets import options_class

    typed = run(model, frames[:2], "onnx", options_class("onnx")(opset=17))
    np.testing.assert_array_equal(typed.output, run(model, frames[:2], "onnx", opset=17).output)


def _without_timing(entry: dict) -> dict:
    return {k: ({m: v for m, v in val.items() if m != "target_seconds"} if k == "metrics" else val)
            for k, val in entry.items()}


def test_parity_equals_the_cli(tmp_path, npz, model, capsys):
    out = tmp_path / "cli"
    assert _cli("parity", str(TINY), "--targets", "onnx,reference-fixed", "--dataset", str(npz),
                "--out", str(out)) == 0
    printed = capsys.readouterr().out
    cli = json.loads((out / "parity.json").read_text())
    report = parity(model, str(npz), targets=["onnx", "reference-fixed"])
    assert isinstance(report, ParityReport) and report.passed and report.verdict == cli["verdict"] == "OK"
    assert report.verdicts == {"onnx": "OK", "reference-fixed": "OK"}
    api = json.loads(report.to_json())
    assert {n: _without_timing(e) for n, e in api.pop("targets").items()} == \
        {n: _without_timing(e) for n, e in cli.pop("targets").items()}
    assert api == {**cli, "model": str(TINY)}
    assert report.table() in printed  # the same lines the command prints
    written = report.write(tmp_path / "api")
    assert written.name == "report.md" and (tmp_path / "api" / "parity.json").exists()
    assert report.plot("onnx").axes  # a figure, reference against onnx


def test_parity_tolerances_and_unknown_ones(npz, model):
    # reference-fixed's layer counts differ from the float reference by ~2 %: a zero tolerance fails it
    tight = parity(model, str(npz), targets="reference-fixed", max_count_rel_diff=0.0)
    assert tight.verdicts == {"reference-fixed": "FAIL"} and not tight.passed
    assert tight.data["tolerances"]["max_count_rel_diff"] == 0.0 and "outside tolerance" in tight.table()
    with pytest.raises(UserError, match="unknown tolerance.*min_agreemnt"):
        parity(model, str(npz), targets="onnx", min_agreemnt=0.9)
    with pytest.raises(UserError, match="unknown target"):
        parity(model, str(npz), targets=["onxx"])


def test_profile_equals_the_cli(tmp_path, npz, model):
    assert _cli("profile", str(TINY), "--dataset", str(npz), "--out", str(tmp_path)) == 0
    cli = json.loads((tmp_path / "energy.json").read_text())
    report = profile(model, str(npz), target="reference")
    assert isinstance(report, EnergyReport)
    assert json.loads(report.to_json()) == {**cli, "model": str(TINY)}
    assert report.per_inference["synops"] > 0 and set(report.energy_pj) == set(cli["energy_pj"])
    assert report.table().splitlines()[0].startswith("reference: per inference")


def test_a_bad_option_gets_the_message_of_dash_o(tmp_path, npz, model, capsys):
    assert _cli("run", str(TINY), "--target", "onnx", "--dataset", str(npz), "--out", str(tmp_path),
                "-o", "quantise=int8") == 2
    cli_line = capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(UserError) as err:
        run(model, str(npz), "onnx", quantise="int8")
    assert cli_line == f"deploy run: error: {err.value}" and "unknown option 'quantise'" in cli_line
    with pytest.raises(UserError, match="opset"):
        run(model, str(npz), "onnx", opset="seventeen")
    from neuromoco.deploy.targets import options_class

    with pytest.raises(UserError, match="takes OnnxOptions"):
        run(model, str(npz), "onnx", options_class("reference")())


def test_ambiguous_frames_are_refused_in_one_line(tmp_path, npz, model):
    with np.load(npz) as z:
        frames, labels = z["frames"], z["labels"]
    cases = {
        "look like one sample": frames[0],
        "look like \\[T, N, ...\\]": frames.swapaxes(0, 1),
        "do not fit": frames.reshape(6, 10, 16, 16, 2),
        "must be a numpy array": frames.tolist(),
    }
    for message, bad in cases.items():
        with pytest.raises(UserError, match=message) as err:
            run(model, bad)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="labels= goes with an array"):
        run(model, str(npz), labels=labels)
    (tmp_path / "frames.txt").write_text("0")
    with pytest.raises(UserError, match="not a frames .npz"):
        run(model, str(tmp_path / "frames.txt"))


def test_export_then_load_the_folder(tmp_path, npz, model):
    artefact = export(model, "onnx", tmp_path / "onnx")
    assert artefact.exists() and (tmp_path / "onnx" / "model_card.json").exists()
    folder = Model.load(tmp_path / "onnx")
    assert folder.graph is None
    np.testing.assert_array_equal(run(folder, str(npz), "onnx").output, run(model, str(npz), "onnx").output)
    with pytest.raises(UserError, match="needs a .nir graph"):
        profile(folder, str(npz))
