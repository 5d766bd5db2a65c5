"""A target is one :class:`TargetSpec` entry: a toy registered there runs, is judged and is profiled.

The toy target (this module: ``TARGET``, :class:`ToyOptions`) is the reference executor in float64. It is
registered in one place, the ``toy`` fixture, and ``deploy run``, ``deploy parity`` and ``deploy profile`` take
it through their own code paths, reading its facts (exact, reference dtype, emulator, precision, the hook
before a progress bar) from its spec. Also: ``--limit`` below 1 is refused by every command that takes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_parity_cli import write_model

from neuromoco.deploy.cli import main
from neuromoco.deploy.targets import (
    PRECISION_BYTES,
    REFERENCE,
    TARGETS,
    TargetSpec,
    distinct_targets,
    registered,
    spec,
)
from neuromoco.deploy.targets.base import Target
from neuromoco.deploy.targets.options import TargetOptions

PROGRESS_HOOK_CALLS: list[str] = []


def before_progress() -> None:
    """The toy's ``before_progress`` hook: records that a command called it."""
    PROGRESS_HOOK_CALLS.append("toy")


@dataclass(frozen=True)
class ToyOptions(TargetOptions):
    """The toy target has only the common options (``record_spikes``)."""


class ToyTarget(Target):
    """The reference executor in float64 behind the target interface."""

    name = "toy"
    Options = ToyOptions

    def build(self, graph, card, options, context):
        from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner

        return ReferenceRunner(graph, card, ReferenceOptions(dtype="float64", record_spikes=options.record_spikes))


TARGET = ToyTarget()


@pytest.fixture
def toy():
    """The toy target as ``toy``: its whole registration."""
    spec = TargetSpec(__name__, f"{__name__}:ToyOptions", {}, "the reference in float64 (a test)",
                      precision="int8", exact=True, reference_dtype="float64", emulator=REFERENCE,
                      before_progress=f"{__name__}:before_progress")
    PROGRESS_HOOK_CALLS.clear()
    with registered("toy", spec):
        yield spec
    assert "toy" not in TARGETS


def test_a_registered_target_runs(tmp_path, capsys, toy):
    model, frames = write_model(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(model), "--target", "toy", "--dataset", str(frames), "--limit", "10",
                 "--out", str(out)]) == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == "toy" and summary["samples"] == 10
    assert PROGRESS_HOOK_CALLS == ["toy"]  # its hook ran before the progress bar
    # a shorthand flag of another target is refused, naming the target it applies to
    assert main(["run", str(model), "--target", "toy", "--int8", "--dataset", str(frames),
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--int8 applies to the onnx target only" in capsys.readouterr().err


def test_a_registered_target_is_judged_by_its_facts(tmp_path, capsys, toy):
    model, frames = write_model(tmp_path)
    out = tmp_path / "parity"
    rc = main(["parity", str(model), "--targets", "toy", "--dataset", str(frames), "--exactness-samples", "10",
               "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr()
    data = json.loads((out / "parity.json").read_text())
    entry = data["targets"]["toy"]
    # its emulator is the reference at its reference dtype: deployment exactness on the first 10 samples
    assert entry["role"] == "deployment exactness" and entry["compared_with"] == "reference, float64"
    assert entry["metrics"]["samples"] == 10 and entry["metrics"]["mismatched_spikes"] == 0
    assert "toy" in data["tolerances"]["exact"]
    # deployment exactness is equality whatever --exact-targets says (it once followed the reference's entry)
    rc = main(["parity", str(model), "--targets", "toy", "--dataset", str(frames), "--exactness-samples", "10",
               "--exact-targets", "none", "--no-progress", "--out", str(tmp_path / "none")])
    none = json.loads((tmp_path / "none" / "parity.json").read_text())["targets"]["toy"]
    assert rc == 0 and none["role"] == "deployment exactness" and none["tolerances"]["min_agreement"] == 1.0
    assert none["tolerances"]["max_count_rel_diff"] == 0.0
    # without the exactness subset: parity against the float64 reference on every sample, held to equality
    rc = main(["parity", str(model), "--targets", "toy", "--dataset", str(frames), "--exactness-samples", "0",
               "--no-progress", "--out", str(tmp_path / "plain")])
    plain = json.loads((tmp_path / "plain" / "parity.json").read_text())["targets"]["toy"]
    assert rc == 0 and plain["role"] == "parity" and plain["reference_dtype"] == "float64"
    assert plain["metrics"]["samples"] == 24 and plain["tolerances"]["min_agreement"] == 1.0


def test_a_registered_target_is_profiled(tmp_path, capsys, toy):
    model, frames = write_model(tmp_path)
    out = tmp_path / "profile"
    assert main(["profile", str(model), "--target", "toy", "--dataset", str(frames), "--limit", "8",
                 "--no-core-map", "--out", str(out)]) == 0, capsys.readouterr()
    data = json.loads((out / "energy.json").read_text())
    assert data["target"] == "toy" and data["profile"]["per_inference"]["synops"] > 0
    assert PROGRESS_HOOK_CALLS == ["toy"]
    name, per_value = toy.precision_of(data["options"])
    assert data["neurobench"]["precision"] == {"name": name, "bytes_per_value": per_value}


def test_the_hardware_tests_take_every_distinct_target(toy):
    assert distinct_targets()[-1] == "toy"
    with registered("toy-alias", TargetSpec(__name__, f"{__name__}:ToyOptions", same_as="toy")):
        assert "toy-alias" in TARGETS and "toy-alias" not in distinct_targets()


def test_every_spec_is_consistent():
    """Each fact names something that exists: a precision, a target, an importable hook."""
    import importlib

    for name, s in TARGETS.items():
        assert s.precision in PRECISION_BYTES and all(p in PRECISION_BYTES for _, _, p in s.precision_when), name
        assert s.emulator in (None, REFERENCE) or s.emulator in TARGETS, name
        assert s.same_as is None or s.same_as in TARGETS, name
        if s.before_progress:
            module, _, func = s.before_progress.partition(":")
            assert callable(getattr(importlib.import_module(module), func)), name


def test_precision_follows_the_options():
    """Bytes per value as the footprint counts them (the table in deploy/targets/__init__.py), option by option."""
    fixed8 = {"weight": 1, "bias": 2, "neuron": 4, "state": 4}
    assert spec("lava").precision_of({}) == ("float64", {"weight": 8, "bias": 8, "neuron": 8, "state": 8})
    assert spec("lava").precision_of({"precision": "fixed"}) == ("loihi2-fixed", fixed8)
    assert spec("lava-fixed").precision_of({"precision": "fixed", "weight_bits": 16}) == (
        "loihi2-fixed", {**fixed8, "weight": 2})
    assert spec("reference-fixed").precision_of({"weight_bits": 8}) == ("loihi2-fixed", fixed8)
    assert spec("lava-float").precision_of({"precision": "float", "weight_bits": 16})[1]["weight"] == 8
    assert spec("onnx").precision_of({"quantize": "none"})[0] == "float32"
    int8 = {"weight": 1, "bias": 4, "neuron": 4, "state": 4}
    assert spec("onnx").precision_of({"quantize": "int8"}) == spec("onnx-int8").precision_of({}) == ("int8", int8)
    assert spec(REFERENCE).precision_of({"dtype": "float32"})[0] == "float32"


#: bad values of the sample flags, and what the usage error says (--limit -3 once said "the dataset split holds
#: no samples"; a typo in --split was a traceback, or accepted and recorded with an .npz dataset)
BAD_SAMPLE_FLAGS = [("--limit", "-3", "--limit must be >= 1, got -3"), ("--limit", "0", "--limit must be >= 1, got 0"),
                    ("--split", "tset", "argument --split"), ("--split", ",", "argument --split"),
                    ("--split", "train,val", "argument --split")]


@pytest.mark.parametrize("command", ["run", "parity", "profile"])
@pytest.mark.parametrize("flag,value,says", BAD_SAMPLE_FLAGS, ids=lambda v: str(v))
def test_a_bad_sample_flag_is_refused_naming_it(tmp_path, capsys, command, flag, value, says):
    """A usage error (exit 2) before any work: nothing is written."""
    model, frames = write_model(tmp_path)
    target = ["--targets", "reference"] if command == "parity" else ["--target", "reference"]
    with pytest.raises(SystemExit) as exit_:
        main([command, str(model), *target, "--dataset", str(frames), flag, value,
              "--out", str(tmp_path / "o"), "--no-progress"])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not Path(tmp_path / "o").exists()
