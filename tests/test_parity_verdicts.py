"""`deploy parity` verdicts (issue 27): INCONCLUSIVE when too few samples decide the agreement tolerance (exit 0,
1 with --strict), FAIL for a clear miss or any other broken limit; --limit bounds only the slow (emulated) targets;
comparisons the user did not name are labelled as added.

The targets here are the reference with deliberate, counted changes (``doctored``), so each verdict is known in
advance: one flipped prediction in 24 samples is 0.9583 agreement, whose 95 % interval still reaches 0.99.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
from test_parity_cli import write_model

from neuromoco.deploy.cli import main
from neuromoco.deploy.parity import (
    Tolerances,
    agreement_undecided,
    samples_for_agreement,
    verdict,
    wilson_interval,
)
from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets import TARGETS, TargetSpec
from neuromoco.deploy.targets.base import Target
from neuromoco.deploy.targets.options import TargetOptions, option

SAMPLES = 24  # write_model's frames


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """The report's PNGs are not what these tests check, and they are most of a small run's time."""
    monkeypatch.setattr("neuromoco.deploy.report._target_plots", lambda *args: [])


@dataclass(frozen=True)
class DoctoredOptions(TargetOptions):
    flips: int = option(0, "the first N samples get another predicted class")
    extra_spikes: int = option(0, "spikes added to the first layer's count of sample 0")


class _DoctoredRunner:
    def __init__(self, inner, options: DoctoredOptions) -> None:
        self.inner, self.options, self.seen = inner, options, 0

    def run(self, frames: np.ndarray) -> RunResult:
        r = self.inner.run(frames)
        out, counts = r.output.copy(), {k: v.copy() for k, v in r.spike_counts.items()}
        for b in range(out.shape[1]):
            if self.seen + b < self.options.flips:
                other = (int(out[:, b].sum(axis=0).argmax()) + 1) % out.shape[2]
                out[:, b] = 0.0
                out[0, b, other] = 1e6
        if self.seen == 0 and self.options.extra_spikes:
            counts[next(iter(counts))][0, 0] += self.options.extra_spikes
        self.seen += out.shape[1]
        return RunResult(output=out, spike_counts=counts, spikes=r.spikes)


class _DoctoredTarget(Target):
    """The reference executor with ``flips`` predictions changed and ``extra_spikes`` added: known differences."""

    name = "doctored"
    Options = DoctoredOptions

    def build(self, graph, card, options, context):
        from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner

        return _DoctoredRunner(ReferenceRunner(graph, card, ReferenceOptions(record_spikes=options.record_spikes)),
                               options)


@pytest.fixture
def doctored(monkeypatch):
    """Targets ``flip1`` (one flipped prediction), ``flip12`` (twelve), ``flip1-counts`` (one, and 10,000 extra
    spikes), ``clean`` (none), ``slow`` (emulated by ``clean``, one flipped prediction) and ``slow-exact``."""
    module = types.ModuleType("neuromoco_test_doctored_target")
    module.TARGET = _DoctoredTarget()
    module.DoctoredOptions = DoctoredOptions
    monkeypatch.setitem(sys.modules, module.__name__, module)
    opts = f"{module.__name__}:DoctoredOptions"

    def add(name, preset, **facts):
        monkeypatch.setitem(TARGETS, name, TargetSpec(module.__name__, opts, preset, **facts))

    add("flip1", {"flips": 1})
    add("flip12", {"flips": 12})
    add("flip1-counts", {"flips": 1, "extra_spikes": 10_000})
    add("clean", {})
    add("slow", {"flips": 1}, emulator="clean")
    add("slow-exact", {}, emulator="clean")


def parity(tmp_path, targets: str, *extra: str, out: str = "out") -> tuple[int, dict, str, str]:
    model, frames = write_model(tmp_path)
    rc = main(["parity", str(model), "--targets", targets, "--dataset", str(frames), "--batch-size", "8",
               "--no-progress", "--out", str(tmp_path / out), *extra])
    return rc, json.loads((tmp_path / out / "parity.json").read_text()), (tmp_path / out / "report.md").read_text(), out


# ------------------------------------------------------------------------------------ the rule, by hand

def test_one_flip_in_24_is_undecided_twelve_are_a_clear_miss():
    tol = Tolerances()
    assert samples_for_agreement(0.99) == 381  # 0.99 * 1.96^2 / 0.01, rounded up
    lo, hi = wilson_interval(23, 24)
    assert lo < 0.99 <= hi  # 23/24 = 0.958, yet the interval reaches 0.99: too few samples to say
    assert wilson_interval(12, 24)[1] < 0.99  # half the predictions flipped: a clear miss at any sample count
    layers = {"l": {"reference_spikes": 100, "target_spikes": 100, "rel_diff": 0.0}}
    one = {"samples": 24, "agreement": 23 / 24, "agreement_ci95": [lo, hi], "layers": layers, "rate_cosine": 1.0,
           "rate_basis": "per-neuron"}
    assert agreement_undecided(one, tol) and verdict(one, tol) == "inconclusive"
    assert verdict({**one, "agreement": 0.5, "agreement_ci95": list(wilson_interval(12, 24))}, tol) == "fail"
    # enough samples: the same agreement is a failure, not a question of sample size
    assert verdict({**one, "samples": 400, "agreement_ci95": list(wilson_interval(383, 400))}, tol) == "fail"
    # another limit broken too: FAIL
    assert verdict({**one, "layers": {"l": {**layers["l"], "target_spikes": 150, "rel_diff": 0.5}}}, tol) == "fail"
    assert verdict({**one, "rate_cosine": 0.5}, tol) == "fail"
    # equality (an exact target) needs no sample count: one flip is a failure
    assert not agreement_undecided(one, tol.equality()) and verdict(one, tol.equality()) == "fail"
    assert verdict({**one, "agreement": 1.0}, tol) == "ok"


# ------------------------------------------------------------------------------------- the command

def test_too_few_samples_is_inconclusive_exit_0_and_1_with_strict(tmp_path, capsys, doctored):
    rc, data, report, _ = parity(tmp_path, "flip1")
    text = capsys.readouterr()
    entry = data["targets"]["flip1"]
    assert rc == 0, text.out + text.err
    assert entry["status"] == "inconclusive" and entry["verdict"] == "INCONCLUSIVE"
    assert entry["metrics"]["samples"] == SAMPLES and entry["metrics"]["agreement"] == pytest.approx(23 / 24)
    assert entry["violations"] and "381 samples" in entry["sample_size_note"]
    assert data["verdict"] == "INCONCLUSIVE" and data["passed"] and not data["strict"]
    assert "flip1: INCONCLUSIVE [24 samples]" in text.out and "FAIL" not in text.out
    assert "too few samples to decide: prediction agreement 0.9583 < 0.99" in text.out
    assert "INCONCLUSIVE" in text.err and "--strict" in text.err
    assert "| flip1 | INCONCLUSIVE |" in report and "**Inconclusive** (too few samples to decide):" in report

    rc, data, _, _ = parity(tmp_path, "flip1", "--strict", out="strict")
    assert rc == 1 and data["targets"]["flip1"]["verdict"] == "INCONCLUSIVE"
    assert data["strict"] and not data["passed"]


def test_a_clear_miss_or_another_broken_limit_is_still_fail(tmp_path, capsys, doctored):
    rc, data, report, _ = parity(tmp_path, "flip12,flip1-counts,clean")
    text = capsys.readouterr().out
    t = data["targets"]
    assert rc == 1 and data["verdict"] == "FAIL" and not data["passed"]
    assert t["flip12"]["verdict"] == "FAIL" and t["flip12"]["metrics"]["agreement"] == 0.5
    # one flip (undecided on its own) and a spike count outside its limit: FAIL, both reasons listed
    assert t["flip1-counts"]["verdict"] == "FAIL" and len(t["flip1-counts"]["violations"]) == 2
    assert t["clean"]["verdict"] == "OK"
    assert "flip12: FAIL" in text and "flip1-counts: FAIL" in text and "outside tolerance: layer lif1" in text
    assert "| flip12 | FAIL |" in report and "| clean | OK |" in report
    # --strict changes nothing for a run without an inconclusive target
    assert parity(tmp_path, "clean", "--strict", out="clean")[0] == 0


def test_limit_bounds_only_the_slow_targets_and_the_emulator_runs_every_sample(tmp_path, capsys, doctored):
    rc, data, report, _ = parity(tmp_path, "slow-exact,clean", "--limit", "5")
    t = data["targets"]
    assert rc == 0, capsys.readouterr()
    assert data["samples"] == SAMPLES and data["limit"] == 5
    # the slow target against its emulator: at most --limit samples ...
    assert t["slow-exact"]["role"] == "deployment exactness" and t["slow-exact"]["metrics"]["samples"] == 5
    # ... the emulator's quantization check and a target without an emulator: the whole split
    assert t["slow-exact"]["compared_with"] == "clean" and t["clean"]["role"] == "quantization loss"
    assert t["clean"]["metrics"]["samples"] == SAMPLES
    assert "`--limit 5`" in report
    # --exactness-samples below --limit bounds the subset further; --exactness-samples 0: against the reference,
    # still on --limit samples only
    _, data, _, _ = parity(tmp_path, "slow-exact", "--limit", "10", "--exactness-samples", "3", out="three")
    assert data["targets"]["slow-exact"]["metrics"]["samples"] == 3
    assert data["targets"]["clean"]["metrics"]["samples"] == SAMPLES
    _, data, _, _ = parity(tmp_path, "slow-exact,flip12", "--limit", "7", "--exactness-samples", "0", out="plain")
    plain = data["targets"]["slow-exact"]
    assert plain["role"] == "parity" and plain["metrics"]["samples"] == 7
    assert data["targets"]["flip12"]["metrics"]["samples"] == SAMPLES


def test_the_help_says_what_limit_bounds(capsys):
    with pytest.raises(SystemExit):
        main(["parity", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "lava-fixed" in text and "at most the first N samples" in text and "always run the whole split" in text
    assert "--strict" in text


def test_added_targets_are_labelled_and_exactness_against_an_emulator_counts_as_equality(tmp_path, capsys,
                                                                                         doctored):
    rc, data, report, _ = parity(tmp_path, "slow")
    text = capsys.readouterr().out
    t = data["targets"]
    # the slow target differs from its emulator in one prediction: equality is broken, whatever the sample count
    assert rc == 1 and t["slow"]["verdict"] == "FAIL" and t["slow"]["added"] is None
    assert t["clean"]["added"] == "the bit-exact emulator of slow, its quantization check"
    assert "clean: OK (added: the bit-exact emulator of slow, its quantization check) [quantization loss" in text
    assert "| clean (added) | OK |" in report and "**Added** (not named in `--targets`):" in report
    assert "Held to equality (exact targets, and targets against their bit-exact emulator): slow (against clean)" \
        in report
    # named by the user, the emulator is not "added"
    _, data, _, _ = parity(tmp_path, "clean,slow-exact", out="named")
    assert data["targets"]["clean"]["added"] is None and data["targets"]["clean"]["role"] == "quantization loss"


def test_default_targets_are_labelled_added(tmp_path, capsys, doctored, monkeypatch):
    import neuromoco.deploy.commands.parity as command

    monkeypatch.setitem(TARGETS, "clean", dataclasses.replace(TARGETS["clean"], parity_default=True))
    monkeypatch.setattr(command, "parity_defaults", lambda: ("clean",))
    model, frames = write_model(tmp_path)
    assert main(["parity", str(model), "--dataset", str(frames), "--no-progress", "--out", str(tmp_path / "o")]) == 0
    entry = json.loads((tmp_path / "o" / "parity.json").read_text())["targets"]["clean"]
    assert entry["added"] == "the default --targets"
    assert "clean: OK (added: the default --targets)" in capsys.readouterr().out
