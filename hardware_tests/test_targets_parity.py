"""Every graph in nir_models/ on every target, against the reference executor, on seeded samples.

The targets and what each is held to come from their :class:`~neuromoco.deploy.targets.TargetSpec` (every
name that is not another's default configuration), so a new target is tested here without editing this file:

* Exact targets (``exact``: ``reference``, ``lava-float``, ``onnx``) must reproduce the reference exactly:
  the same spike count at every layer, step and sample, the same 0/1 record per neuron where the target gives
  one, and the same predictions. Each is compared with the reference in its ``reference_dtype`` (float64 for
  ``lava-float``: Lava's floating-point simulation computes in float64; float32 for the others).
* The others (``lava-fixed``, ``reference-fixed``, ``onnx-int8``) must stay within :data:`APPROXIMATE`,
  tolerances measured on these graphs and inputs (see the comment there) with a margin.
* A target with a bit-exact emulator that is another target (``lava-fixed``'s ``reference-fixed``) must equal
  it exactly: the same 0/1 spikes at every layer, step and sample and the same outputs (``reference-fixed`` runs
  the same fixed-point plan as integer arithmetic in PyTorch).

A target whose module does not exist yet is skipped with that reason; once it exists it runs, and any
failure to build or run it fails the test. Nothing else is skipped.
"""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph, spiking_nodes
from neuromoco.deploy.parity import Tolerances, check, compare
from neuromoco.deploy.targets import REFERENCE, TARGETS, distinct_targets, get_target
from neuromoco.deploy.targets.options import RunContext
from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "nir_models"

#: the targets every graph goes through; "reference" checks the target wrapper against the executor itself
TARGET_NAMES = distinct_targets()
#: (target, its bit-exact emulator) where the emulator is another target, not the reference itself
EMULATED = tuple((n, TARGETS[n].emulator) for n in TARGET_NAMES if TARGETS[n].emulator not in (None, REFERENCE))

SAMPLES = 4  # per graph and target: Lava's start-up, not the samples, is the cost
CALIBRATION_SAMPLES = 8


def discover_graphs() -> list[Path]:
    """Every ``.nir`` file under nir_models/ (fixtures in other tools' forms and the project's trained model)."""
    return sorted(p for p in MODELS.rglob("*.nir") if p.is_file())


def graph_id(path: Path) -> str:
    return str(path.relative_to(MODELS).with_suffix(""))


def target_module_missing(name: str) -> str | None:
    """Why ``name`` cannot run yet (its module is not written), or None when it exists and must run."""
    module = TARGETS[name].module
    return None if importlib.util.find_spec(module) is not None else f"target module {module} does not exist yet"


def poisson_frames(card, samples: int, salt: str) -> np.ndarray:
    """Seeded event-count frames ``[T, B, *input_shape]`` at the card's stated rate (default 0.3 events/bin).

    The seed comes from ``salt`` (the graph's name), so every run feeds the same samples.
    """
    rate = float(((card.dataset or {}).get("preprocessing") or {}).get("rate", 0.3))
    rng = np.random.default_rng(zlib.crc32(salt.encode()))
    return rng.poisson(rate, size=(card.time_steps, samples, *card.input_shape)).astype(np.float32)


def dataset_frames(card, samples: int, split: str) -> np.ndarray | None:
    """Real frames ``[T, B, ...]`` of the card's dataset when it names one a provider serves, else None.

    A trained model is only meaningful on its own data: random inputs leave its outputs near-tied.
    """
    from neuromoco.deploy.datasets import load_frames

    spec = card.dataset or {}
    if not spec.get("name") or "rate" in (spec.get("preprocessing") or {}):
        return None
    frames, _ = load_frames(card, split=split, limit=samples)
    return np.ascontiguousarray(np.swapaxes(frames, 0, 1))


# Measured on nir_models/ with these seeded inputs (4 samples per graph; int8 calibrated on 8 other seeded
# samples), worst over the six fixture graphs:
#   onnx-int8   agreement 1.0, per-layer count rel. diff 0.044, rate cosine 0.9999
#   lava-fixed  agreement 1.0, per-layer count rel. diff 0.087, rate cosine 0.9997
# (the largest differences are in last layers of a few dozen spikes). Over 64 samples the count differences
# shrink below 0.015 but agreement drops to 0.92-0.95 on the random-weight graphs (near-tied outputs), so
# one flipped prediction in four is allowed. The limits keep about twice the measured margin; re-measure
# (python -c in the note of issue 7) when graphs are added to nir_models/.
# braille_cubalif (added later; the NIR paper's Braille graph), measured the same way on its 4 seeded samples
# with sign-split fixed-point connections (2026-12-02): reference-fixed = lava-fixed agreement 1.0, count rel.
# diff 0.0027, rate cosine 0.99994; onnx-int8 1.0 / 0.0043 / 0.99994 (on 64 samples reference-fixed 0.984 /
# 0.0019 / 1.0). The same limits hold it with a wide margin; the recurrent graphs' fixed-point loss over 256
# samples, per scale mode and weight width, is held tighter in tests/test_fixed_point_recurrent.py.
# One set of limits holds every target that is not exact (onnx-int8, lava-fixed and reference-fixed, which
# computes lava-fixed's plan bit for bit: test_target_equals_its_emulator), and a new one until it needs its own.
APPROXIMATE = Tolerances(min_agreement=0.75, max_count_rel_diff=0.15, min_rate_cosine=0.995, exact=())
# Trained models run on REAL_SAMPLES samples of their own test split (int8 calibrated on their train split).
# Measured on the demo's cnn3-34 over the whole embedded test split (179 samples, `deploy parity`, 2026-12-01):
#   lava-fixed  agreement 1.0,    worst layer count diff 0.0053, rate cosine 0.9998
#   onnx-int8   agreement 0.9944, worst layer count diff 0.0028, rate cosine 0.9999
# and on its first REAL_SAMPLES samples: lava-fixed 1.0 / 0.0030 / 0.9991, onnx-int8 1.0 / 0.0024 / 0.9998.
# The residual neuromoco_embedded_sew (sew-resnet8-34, QAT) on its first REAL_SAMPLES test samples
# (`deploy parity --limit 32`, 2026-12-02): lava-fixed 1.0 / 0.0018 / 0.99999, onnx-int8 1.0 / 0.0004 / 0.999998;
# reference-fixed over all 1,797 train + test samples 1.0 / 2e-5 / 1.0.
# On REAL_SAMPLES samples one flipped prediction is allowed; counts are held to the 2 % the Lava and ONNX
# issues ask for, the cosine keeps about three times the margin.
REAL_SAMPLES = 32
# A trained model with a large input (more than LARGE_INPUT values per step: nir_models/neuromoco_sim128_cnn5,
# cnn5-128 at 2x128x128) runs on its first LARGE_SAMPLES test samples, int8 calibrated on LARGE_CALIBRATION
# train samples: Lava's Python simulator is slow at that size (measured below), and 32 samples twice on
# lava-fixed would not fit CI time. On LARGE_SAMPLES samples the limits above allow no flipped prediction.
# Measured on neuromoco_sim128_cnn5 (cnn5-128, --qat loihi, T = 4) on its first 8 test samples, int8 calibrated
# on 16 train samples (2026-12-06, the test's own compare()): lava-fixed = reference-fixed agreement 1.0, worst
# layer count diff 5.3e-5, rate cosine 0.999994; onnx-int8 1.0 / 0.0014 / 0.9998: the limits above hold it with
# a wide margin; reference-fixed over all 500 train + test samples (`deploy parity --targets reference-fixed
# --split train,test`): agreement 1.0 (95 % 0.9924-1.0), worst layer count diff 7.7e-6, rate cosine 0.99999997.
# This graph's 7 tests took 39 s (data framed before) and 65 s (its 500-sample folder written first) on 2 CPU cores.
LARGE_INPUT = 2 * 64 * 64
LARGE_SAMPLES = 8
LARGE_CALIBRATION = 16
APPROXIMATE_TRAINED = Tolerances(min_agreement=0.96, max_count_rel_diff=0.02, min_rate_cosine=0.997, exact=())

GRAPHS = discover_graphs()


def test_nir_models_has_graphs_with_cards():
    assert GRAPHS, "nir_models/ holds no .nir graph"
    for path in GRAPHS:
        card = ModelCard.beside(path)
        assert card.exists(), f"{path.name} has no model card ({card.name})"


@pytest.fixture(scope="module", params=GRAPHS, ids=[graph_id(p) for p in GRAPHS])
def model(request):
    """Graph, card, seeded samples, calibration samples and the reference results in float32 and float64."""
    path = request.param
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    large = int(np.prod(card.input_shape)) > LARGE_INPUT
    frames = dataset_frames(card, LARGE_SAMPLES if large else REAL_SAMPLES, "test")
    trained = frames is not None
    if trained:
        calibration = np.swapaxes(dataset_frames(card, LARGE_CALIBRATION if large else 64, "train"), 0, 1)
    else:
        frames = poisson_frames(card, SAMPLES, graph_id(path))
        calibration = np.swapaxes(poisson_frames(card, CALIBRATION_SAMPLES, graph_id(path) + "/calibration"), 0, 1)
    refs = {d: ReferenceRunner(graph, card, ReferenceOptions(dtype=d, record_spikes=True)).run(frames)
            for d in ("float32", "float64")}
    for layer in spiking_nodes(graph):  # a silent layer would make parity vacuous
        assert refs["float32"].spike_counts[layer].sum() > 0, f"{path.name}: layer {layer} never fires"
    return {"path": path, "card": card, "graph": graph, "frames": frames, "calibration": calibration,
            "refs": refs, "layers": spiking_nodes(graph), "trained": trained}


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_target_matches_reference(model, target):
    reason = target_module_missing(target)
    if reason:
        pytest.skip(reason)
    impl, options = get_target(target)
    runner = impl.runner(model["graph"], model["card"], options.updated({"record_spikes": True}),
                         RunContext(calibration=model["calibration"]))
    result = runner.run(model["frames"])
    ref = model["refs"][TARGETS[target].reference_dtype]
    assert result.output.shape[:2] == ref.output.shape[:2]
    metrics = compare(ref, result, layers=model["layers"])
    if TARGETS[target].exact:
        for layer in model["layers"]:
            np.testing.assert_array_equal(result.spike_counts[layer], ref.spike_counts[layer],
                                          err_msg=f"{target}: spike counts of {layer} differ from the reference")
            if layer in result.spikes:
                np.testing.assert_array_equal(result.spikes[layer], ref.spikes[layer],
                                              err_msg=f"{target}: spikes of {layer} differ from the reference")
        np.testing.assert_array_equal(result.predictions, ref.predictions)
        assert check(metrics, Tolerances().for_target(target)) == []
    else:
        broken = check(metrics, APPROXIMATE_TRAINED if model["trained"] else APPROXIMATE)
        assert broken == [], f"{target} on {model['path'].name}: " + "; ".join(broken)


@pytest.mark.parametrize("target, emulator", EMULATED, ids=[f"{t}={e}" for t, e in EMULATED])
def test_target_equals_its_emulator(model, target, emulator):
    """The same plan as integers in PyTorch (reference-fixed for lava-fixed): every spike at every layer and
    step, and every output value."""
    for name in (target, emulator):
        reason = target_module_missing(name)
        if reason:
            pytest.skip(reason)
    results = {}
    for name in (target, emulator):
        impl, options = get_target(name)
        runner = impl.runner(model["graph"], model["card"], options.updated({"record_spikes": True}))
        results[name] = runner.run(model["frames"])
    lava, ours = results[target], results[emulator]
    assert sorted(ours.spikes) == sorted(lava.spikes) == sorted(model["layers"])
    for layer in model["layers"]:
        np.testing.assert_array_equal(ours.spikes[layer], lava.spikes[layer],
                                      err_msg=f"{emulator}: spikes of {layer} differ from {target}")
        np.testing.assert_array_equal(ours.spike_counts[layer], lava.spike_counts[layer])
    np.testing.assert_array_equal(ours.output, lava.output, err_msg=f"{emulator}: outputs differ from {target}")
    np.testing.assert_array_equal(ours.predictions, lava.predictions)
