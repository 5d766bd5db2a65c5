"""`deploy parity` end to end: files written, exit 0 within tolerance, 1 for a perturbed or broken target."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import types
from dataclasses import dataclass

import nir
import numpy as np
import pytest

from neuromoco.deploy.cli import main
from neuromoco.deploy.targets import TARGETS, TargetSpec
from neuromoco.deploy.targets.base import Target
from neuromoco.deploy.targets.options import TargetOptions, option


def write_model(folder, seed: int = 0):
    """A small conv SNN (conv -> LIF -> sum-pool -> flatten -> affine -> LIF), its card and 24 samples."""
    rng = np.random.default_rng(seed)
    c, h, w = 2, 8, 8
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([c, h, w])}),
        "conv": nir.Conv2d(input_shape=(h, w), weight=rng.normal(0, 0.8, (4, c, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "lif1": nir.LIF(tau=np.full((4, h, w), 0.005), r=np.ones((4, h, w)), v_leak=np.zeros((4, h, w)),
                        v_threshold=np.ones((4, h, w))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0, 0.5, (5, 64)), bias=np.zeros(5)),
        "lif2": nir.LIF(tau=np.full(5, 0.005), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5)),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }, edges=[("input", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "flat"), ("flat", "fc"),
              ("fc", "lif2"), ("lif2", "output")])
    nir.write(str(folder / "model.nir"), g)
    (folder / "model_card.json").write_text(json.dumps({
        "input_shape": [c, h, w], "time_steps": 6, "dt": 0.001, "dataset": {"name": "toy"},
        "class_names": [str(i) for i in range(5)]}))
    frames = (rng.random((24, 6, c, h, w)) < 0.3).astype(np.float32)
    np.savez(folder / "frames.npz", frames=frames, labels=rng.integers(0, 5, 24))
    return folder / "model.nir", folder / "frames.npz"


@dataclass(frozen=True)
class PerturbedOptions(TargetOptions):
    scale: float = option(1.0, "factor on every LIF threshold")


class _PerturbedTarget(Target):
    """The reference executor with every LIF threshold multiplied by ``scale``: a deliberately wrong target."""

    name = "perturbed"
    Options = PerturbedOptions

    def build(self, graph, card, options, context):
        from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner

        g = copy.copy(graph)
        g.nodes = dict(graph.nodes)
        for k, node in graph.nodes.items():
            if isinstance(node, nir.LIF):
                n = copy.copy(node)
                n.v_threshold = np.asarray(node.v_threshold) * options.scale
                g.nodes[k] = n
        return ReferenceRunner(g, card, ReferenceOptions(record_spikes=options.record_spikes))


@pytest.fixture
def perturbed(monkeypatch):
    module = types.ModuleType("neuromoco_test_perturbed_target")
    module.TARGET = _PerturbedTarget()
    module.PerturbedOptions = PerturbedOptions
    monkeypatch.setitem(sys.modules, module.__name__, module)
    opts = f"{module.__name__}:PerturbedOptions"
    monkeypatch.setitem(TARGETS, "perturbed", TargetSpec(module.__name__, opts, {"scale": 0.6}))
    monkeypatch.setitem(TARGETS, "slightly-perturbed", TargetSpec(module.__name__, opts, {"scale": 0.995}))
    monkeypatch.setitem(TARGETS, "unperturbed", TargetSpec(module.__name__, opts, {"scale": 1.0}))
    monkeypatch.setitem(TARGETS, "missing", TargetSpec("neuromoco.deploy.targets.no_such_module",
                                                       "neuromoco.deploy.targets.no_such_module:Options"))


def test_reference_against_itself_passes_and_writes_the_report(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    out = tmp_path / "out"
    rc = main(["parity", str(model), "--targets", "reference", "--dataset", str(frames), "--out", str(out),
               "--batch-size", "10"])
    assert rc == 0, capsys.readouterr()
    data = json.loads((out / "parity.json").read_text())
    t = data["targets"]["reference"]
    assert data["passed"] and t["status"] == "ok" and data["samples"] == 24
    m = t["metrics"]
    assert m["agreement"] == 1.0 and m["rate_cosine"] == 1.0 and m["rate_basis"] == "per-neuron"
    assert set(m["layers"]) == {"lif1", "lif2"} and m["layers"]["lif1"]["reference_spikes"] > 0
    report = (out / "report.md").read_text()
    for png in ("counts_reference.png", "rates_reference.png", "raster_reference.png"):
        assert (out / png).stat().st_size > 1000 and png in report


def test_perturbed_target_exits_1_and_names_the_broken_tolerances(tmp_path, capsys, perturbed):
    model, frames = write_model(tmp_path)
    out = tmp_path / "out"
    rc = main(["parity", str(model), "--targets", "unperturbed,perturbed", "--dataset", str(frames),
               "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 1
    assert "perturbed: FAIL" in text.out and "unperturbed: OK" in text.out
    assert "outside tolerance: layer lif1" in text.out
    data = json.loads((out / "parity.json").read_text())
    bad = data["targets"]["perturbed"]
    assert bad["status"] == "fail" and bad["violations"] and not data["passed"]
    assert bad["metrics"]["worst_samples"] and bad["metrics"]["worst_samples"][0]["first_layer"] in ("lif1", "lif2")
    assert "Outside tolerance" in (out / "report.md").read_text()


def test_within_given_tolerances_exits_0(tmp_path, capsys, perturbed):
    model, frames = write_model(tmp_path)
    args = ["parity", str(model), "--targets", "slightly-perturbed", "--dataset", str(frames),
            "--out", str(tmp_path / "out")]
    assert main(args) == 1  # the default tolerances catch the small change ...
    # ... looser ones let it pass
    assert main(args + ["--min-agreement", "0.5", "--max-count-rel-diff", "0.5", "--min-rate-cosine", "0.5"]) == 0
    # an exact target is held to equality whatever the tolerances
    assert main(args + ["--min-agreement", "0.5", "--max-count-rel-diff", "0.5", "--min-rate-cosine", "0.5",
                        "--exact-targets", "slightly-perturbed"]) == 1


def test_target_that_cannot_build_is_an_error_not_a_traceback(tmp_path, capsys, perturbed):
    model, frames = write_model(tmp_path)
    out = tmp_path / "out"
    rc = main(["parity", str(model), "--targets", "missing,reference", "--dataset", str(frames),
               "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 1 and "missing: ERROR could not build" in text.out and "Traceback" not in text.err
    data = json.loads((out / "parity.json").read_text())
    assert data["targets"]["missing"]["status"] == "error" and data["targets"]["reference"]["status"] == "ok"


def test_usage_errors_exit_2(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    assert main(["parity", str(model), "--targets", "nonsense", "--dataset", str(frames),
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown target" in capsys.readouterr().err
    assert main(["parity", str(tmp_path / "nope.nir"), "--targets", "reference", "--dataset", str(frames),
                 "--out", str(tmp_path / "o")]) == 2


def test_flat_input_graph_runs_from_an_npz(tmp_path, capsys):
    """A graph with a flat input (snnTorch's MLP fixture, input [16]) takes frames [N, T, 16] from an .npz."""
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "nir_models" / "snntorch_mlp.nir"
    rng = np.random.default_rng(0)
    frames = (rng.random((6, 20, 16)) < 0.5).astype(np.float32)
    np.savez(tmp_path / "flat.npz", frames=frames, labels=rng.integers(0, 4, 6))
    assert main(["run", str(model), "--target", "reference", "--dataset", str(tmp_path / "flat.npz"),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    with np.load(tmp_path / "run" / "predictions.npz") as z:
        assert len(z["predictions"]) == 6

    np.savez(tmp_path / "bad.npz", frames=frames, labels=np.zeros(5))  # one label short
    capsys.readouterr()
    assert main(["run", str(model), "--target", "reference", "--dataset", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "6 samples of frames but labels of shape [5]" in err and "Traceback" not in err


def test_an_emulated_target_is_judged_against_its_emulator_on_a_subset(tmp_path, capsys, perturbed, monkeypatch):
    """Deployment exactness (target vs its bit-exact emulator, first N samples, equality) and quantization
    loss (emulator vs the float reference, every sample) are two entries; a target that differs from its
    emulator fails however small the difference."""
    monkeypatch.setitem(TARGETS, "slightly-perturbed",
                        dataclasses.replace(TARGETS["slightly-perturbed"], emulator="unperturbed"))
    model, frames = write_model(tmp_path)
    out = tmp_path / "out"
    rc = main(["parity", str(model), "--targets", "slightly-perturbed", "--dataset", str(frames),
               "--exactness-samples", "10", "--batch-size", "4", "--no-progress", "--out", str(out)])
    data = json.loads((out / "parity.json").read_text())
    exact, loss = data["targets"]["slightly-perturbed"], data["targets"]["unperturbed"]
    assert exact["role"] == "deployment exactness" and exact["compared_with"] == "unperturbed"
    assert exact["metrics"]["samples"] == 10 and loss["metrics"]["samples"] == 24
    assert loss["role"] == "quantization loss" and loss["status"] == "ok"
    assert exact["status"] == "fail" and rc == 1 and exact["tolerances"]["min_agreement"] == 1.0
    assert "deployment exactness vs unperturbed, 10 samples" in capsys.readouterr().out
    # --exactness-samples 0: the target against the float reference on every sample, the tolerances apply
    rc = main(["parity", str(model), "--targets", "slightly-perturbed", "--dataset", str(frames),
               "--exactness-samples", "0", "--min-agreement", "0.5", "--max-count-rel-diff", "0.2",
               "--min-rate-cosine", "0.9", "--no-progress", "--out", str(tmp_path / "plain")])
    plain = json.loads((tmp_path / "plain" / "parity.json").read_text())["targets"]
    assert list(plain) == ["slightly-perturbed"] and plain["slightly-perturbed"]["metrics"]["samples"] == 24
    assert plain["slightly-perturbed"]["role"] == "parity" and rc == 0


def test_lava_fixed_is_exact_against_reference_fixed(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    out = tmp_path / "out"
    rc = main(["parity", str(model), "--targets", "lava-fixed", "--dataset", str(frames), "--exactness-samples",
               "6", "--min-agreement", "0.5", "--max-count-rel-diff", "0.5", "--min-rate-cosine", "0.9",
               "--no-progress", "--out", str(out)])
    data = json.loads((out / "parity.json").read_text())["targets"]
    assert rc == 0, capsys.readouterr()
    assert data["lava-fixed"]["compared_with"] == "reference-fixed" and data["lava-fixed"]["metrics"]["samples"] == 6
    assert data["lava-fixed"]["metrics"]["mismatched_spikes"] == 0
    assert data["reference-fixed"]["compared_with"] == "reference, float32"
    assert data["reference-fixed"]["metrics"]["samples"] == 24
    # reference-fixed was not named: it is labelled as added; lava-fixed counts as held to equality (issue 27)
    assert "reference-fixed: OK (added: the bit-exact emulator of lava-fixed" in capsys.readouterr().out
    assert data["lava-fixed"]["held_to_equality"] and not data["reference-fixed"]["held_to_equality"]
    assert "lava-fixed (against reference-fixed)" in (out / "report.md").read_text()


def test_several_splits_are_joined_but_not_for_a_frames_file(tmp_path, capsys):
    model, frames = write_model(tmp_path)
    assert main(["parity", str(model), "--targets", "onnx", "--dataset", str(frames), "--split", "train,test",
                 "--out", str(tmp_path / "o")]) == 2
    assert "has no splits" in capsys.readouterr().err


def test_train_and_test_splits_together(tmp_path):
    """--split train,test runs both splits of a named dataset (the embedded one: 1,618 + 179 samples)."""
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "nir_models" / "neuromoco_embedded_cnn3.nir"
    out = tmp_path / "run"
    assert main(["run", str(model), "--target", "reference", "--split", "train,test", "--batch-size", "256",
                 "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 1797 and summary["split"] == "train,test"
