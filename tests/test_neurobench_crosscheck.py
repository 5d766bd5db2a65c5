"""Every NeuroBench metric `deploy profile` reports equals the `neurobench` package's own on the same network,
inputs and batches (benchmarks/neurobench_check.py builds both sides). Skipped without the extra."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

MISSING = [m for m in ("neurobench", "snntorch") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: install with "
                                                      "`make install`, which installs them with --no-deps")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.parametrize("inputs", ["binary", "counts"])
def test_metrics_equal_neurobench(inputs):
    from neurobench_check import compare

    run = compare(inputs)
    unequal = {k: (r["ours"], r["neurobench"]) for k, r in run["metrics"].items() if not r["equal"]}
    assert not unequal, unequal
    m = run["metrics"]
    assert {"synaptic_operations.Dense", "synaptic_operations.Effective_MACs", "synaptic_operations.Effective_ACs",
            "activation_sparsity", "membrane_updates", "connection_sparsity"} <= set(m)
    assert m["synaptic_operations.Effective_MACs"]["ours"] > 0  # the pooled input of the dense layer is graded
    if inputs == "binary":
        assert m["synaptic_operations.Effective_ACs"]["ours"] > 0
    assert 0 < m["connection_sparsity"]["ours"] < 1
