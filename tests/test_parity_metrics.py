"""Parity figures on hand-made RunResults: cosine, relative difference, agreement, first divergence."""

from __future__ import annotations

import numpy as np
import pytest

from neuromoco.deploy.parity import ParityAccumulator, Tolerances, check, compare, cosine, relative_difference
from neuromoco.deploy.result import RunResult

T, B = 4, 3


def make(spikes: dict[str, np.ndarray], logits: np.ndarray, with_spikes: bool = True) -> RunResult:
    counts = {k: v.reshape(T, B, -1).sum(-1).astype(np.int64) for k, v in spikes.items()}
    out = np.zeros((T, B, logits.shape[1]))
    out[0] = logits
    return RunResult(output=out, spike_counts=counts, spikes=spikes if with_spikes else {})


@pytest.fixture
def pair():
    rng = np.random.default_rng(1)
    a = (rng.random((T, B, 5)) < 0.5).astype(np.uint8)
    b = (rng.random((T, B, 2, 2)) < 0.5).astype(np.uint8)
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    ref = make({"a": a.copy(), "b": b.copy()}, logits)
    b2 = b.copy()
    b2[2, 1, 0, 1] ^= 1  # one flipped spike in layer b, step 2, sample 1
    a2 = a.copy()
    a2[3, 1, 4] ^= 1  # and a later one in layer a, same sample
    logits2 = logits.copy()
    logits2[2] = [0.0, 1.0]  # sample 2 predicted differently
    tgt = make({"a": a2, "b": b2}, logits2)
    return ref, tgt, a, b, a2, b2


def test_cosine_and_relative_difference():
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert cosine([3, 4], [4, 3]) == pytest.approx(24 / 25)
    assert cosine([0, 0], [0, 0]) == 1.0 and cosine([0, 0], [1, 0]) == 0.0
    assert relative_difference(102, 100) == pytest.approx(0.02)
    assert relative_difference(1, 0) == 1.0 and relative_difference(0, 0) == 0.0


def test_compare_by_hand(pair):
    ref, tgt, a, b, a2, b2 = pair
    labels = np.array([0, 1, 1])
    m = compare(ref, tgt, labels, layers=["b", "a"])  # b comes first in graph order
    assert m["accuracy_reference"] == pytest.approx(2 / 3) and m["accuracy_target"] == 1.0
    assert m["agreement"] == pytest.approx(2 / 3)
    for name, r, t in (("a", a, a2), ("b", b, b2)):
        layer = m["layers"][name]
        assert layer["reference_spikes"] == r.sum() and layer["target_spikes"] == t.sum()
        assert layer["rel_diff"] == pytest.approx(abs(int(t.sum()) - int(r.sum())) / r.sum())
        assert layer["rate_cosine"] == pytest.approx(cosine(r.sum((0, 1)), t.sum((0, 1))))
    both_r = np.concatenate([b.sum((0, 1)).ravel(), a.sum((0, 1)).ravel()])
    both_t = np.concatenate([b2.sum((0, 1)).ravel(), a2.sum((0, 1)).ravel()])
    assert m["rate_basis"] == "per-neuron"
    assert m["rate_cosine"] == pytest.approx(cosine(both_r, both_t))
    assert m["mismatched_spikes"] == 2 and m["diverging_samples"] == 1
    (worst,) = m["worst_samples"]
    assert worst == {"sample": 1, "mismatches": 2, "first_step": 2, "first_layer": "b", "mismatches_at_first_step": 1}


def test_first_layer_follows_graph_order_at_the_same_step():
    z = np.zeros((T, B, 3), dtype=np.uint8)
    ref = make({"x": z.copy(), "y": z.copy()}, np.zeros((B, 2)))
    x2, y2 = z.copy(), z.copy()
    x2[1, 0, 0] = y2[1, 0, 2] = y2[0, 2, 1] = 1
    tgt = make({"x": x2, "y": y2}, np.zeros((B, 2)))
    m = compare(ref, tgt, layers=["y", "x"])
    rows = {w["sample"]: w for w in m["worst_samples"]}
    assert rows[0]["first_step"] == 1 and rows[0]["first_layer"] == "y" and rows[0]["mismatches"] == 2
    assert rows[2]["first_step"] == 0 and rows[2]["first_layer"] == "y"
    assert [w["sample"] for w in m["worst_samples"]] == [0, 2]  # most mismatches first


def test_identical_results_are_exact(pair):
    ref = pair[0]
    m = compare(ref, ref)
    assert m["agreement"] == 1.0 and m["rate_cosine"] == 1.0 and m["max_count_rel_diff"] == 0.0
    assert m["worst_samples"] == [] and m["max_output_abs_diff"] == 0.0
    assert check(m, Tolerances().for_target("onnx")) == []


def test_per_layer_fallback_without_spike_records(pair):
    ref, tgt, *_ = pair
    tgt_counts_only = RunResult(tgt.output, tgt.spike_counts)
    m = compare(ref, tgt_counts_only)
    assert m["rate_basis"] == "per-layer" and m["mismatch_basis"] == "per-layer counts"
    assert "rate_cosine" not in m["layers"]["a"]
    assert m["worst_samples"][0]["sample"] == 1


def test_accumulating_batches_equals_one_batch(pair):
    ref, tgt, *_ = pair

    def part(r: RunResult, sl: slice) -> RunResult:
        return RunResult(r.output[:, sl], {k: v[:, sl] for k, v in r.spike_counts.items()},
                         {k: v[:, sl] for k, v in r.spikes.items()})

    acc = ParityAccumulator()
    acc.update(part(ref, slice(0, 2)), part(tgt, slice(0, 2)), np.array([0, 1]))
    acc.update(part(ref, slice(2, 3)), part(tgt, slice(2, 3)), np.array([1]))
    whole = compare(ref, tgt, np.array([0, 1, 1]))
    got = acc.result()
    for key in ("agreement", "rate_cosine", "accuracy_target", "mismatched_spikes", "worst_samples", "layers"):
        assert got[key] == whole[key]
    assert acc.raster.index == 1  # the most diverging sample is kept for the raster


def test_check_names_each_broken_tolerance(pair):
    ref, tgt, *_ = pair
    m = compare(ref, tgt, np.array([0, 1, 1]))
    tol = Tolerances(min_agreement=0.99, max_count_rel_diff=0.02, min_rate_cosine=0.9999)
    bad = check(m, tol)
    assert any("agreement" in v for v in bad)
    assert any(v.startswith("layer ") for v in bad)
    assert any("cosine" in v for v in bad)
    assert check(m, Tolerances(min_agreement=0.5, max_count_rel_diff=1.0, min_rate_cosine=0.5)) == []
    exact = Tolerances(min_agreement=0.5, max_count_rel_diff=1.0, min_rate_cosine=0.5).for_target("lava-float")
    assert exact.min_agreement == 1.0 and exact.max_count_rel_diff == 0.0 and check(m, exact)


def test_wilson_interval_against_hand_values():
    from neuromoco.deploy.parity import wilson_interval

    z2 = 1.959964 ** 2
    lo, hi = wilson_interval(0, 10)  # k = 0: [0, z^2 / (n + z^2)]
    assert lo == 0.0 and hi == pytest.approx(z2 / (10 + z2), abs=1e-12)
    lo, hi = wilson_interval(10, 10)  # k = n: [n / (n + z^2), 1]
    assert hi == 1.0 and lo == pytest.approx(10 / (10 + z2), abs=1e-12)
    # 178 of 179 (one flip on the embedded test split), by the formula written out
    n, p = 179, 178 / 179
    c = (p + z2 / (2 * n)) / (1 + z2 / n)
    h = (z2 ** 0.5) * ((p * (1 - p) / n + z2 / (4 * n * n)) ** 0.5) / (1 + z2 / n)
    assert wilson_interval(178, 179) == pytest.approx((c - h, c + h), abs=1e-12)
    assert wilson_interval(178, 179)[0] < 0.99 < wilson_interval(178, 179)[1]


def test_too_few_samples_for_the_tolerance_is_said():
    from neuromoco.deploy.parity import Tolerances, sample_size_note, samples_for_agreement, wilson_interval

    assert samples_for_agreement(0.99) == 381  # 381 / (381 + z^2) >= 0.99 > 380 / (380 + z^2)
    assert 381 / (381 + 1.959964 ** 2) >= 0.99 > 380 / (380 + 1.959964 ** 2)
    assert samples_for_agreement(1.0) == 0
    tol = Tolerances(min_agreement=0.99)
    few = {"samples": 179, "agreement": 1.0, "agreement_ci95": list(wilson_interval(179, 179))}
    note = sample_size_note(few, tol)
    assert note is not None and "179 samples are too few" in note and "381" in note and "0.56%" in note
    many = {"samples": 400, "agreement": 1.0, "agreement_ci95": list(wilson_interval(400, 400))}
    assert sample_size_note(many, tol) is None
    assert sample_size_note(few, Tolerances(min_agreement=1.0)) is None  # exact targets: no estimate


def test_a_silent_or_constant_output_is_flagged_degenerate():
    """Agreement 1.0 between two outputs that never change says nothing: the result names the side."""
    rng = np.random.default_rng(3)
    live = make({"a": (rng.random((T, B, 5)) < 0.5).astype(np.uint8)}, rng.normal(size=(B, 4)))
    silent = RunResult(np.zeros_like(live.output), live.spike_counts, live.spikes)
    m = compare(silent, silent)
    assert m["agreement"] == 1.0 and len(m["degenerate"]) == 2
    assert "reference's output is zero (a silent output layer)" in m["degenerate"][0]
    constant = RunResult(np.broadcast_to(live.output[:, :1], live.output.shape).copy(), live.spike_counts,
                         live.spikes)
    m = compare(live, constant)
    assert len(m["degenerate"]) == 1 and m["degenerate"][0].startswith("the target's output is the same")
    assert compare(live, live)["degenerate"] == []
