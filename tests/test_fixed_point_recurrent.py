"""Fixed-point loss of the recurrent graphs in nir_models/ and the quantization rules that bound it.

The tolerances are ``reference-fixed`` (bit-exact with ``lava-fixed``) against the float64 reference on the
first 256 Poisson samples of each card (``make_fixtures.sample_frames``, seed 0), measured with
``benchmarks/fixed_point_recurrent.py`` (``benchmarks/results/fixed_point_recurrent.json``), with a margin. Before
sign-split connections and the exponent rules, ``braille_cubalif`` agreed on 0.934 (one scale per neuron),
``snntorch_rsynaptic``'s readout lost 2.5 % of its spikes, ``rnn_cubalif`` 0.17 % to its recurrent connection's
down-shift, and the 16-bit plans 0.7 % of ``braille_cubalif``'s spikes to the residual synapse's down-shift.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import scipy.sparse as sp

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph, spiking_nodes
from neuromoco.deploy.loihi import fixed_point as fp
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.parity import compare
from neuromoco.deploy.targets import get_target
from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 256

# (graph, scale, weight_bits): (min agreement, max per-layer relative count difference). Measured (256 samples):
#   rnn_cubalif         neuron/8 1.0 0.0002   layer/8 1.0 0.0008     neuron/16 1.0 0.0002   layer/16 1.0 0.0008
#   snntorch_rsynaptic  neuron/8 0.988 0.0064 layer/8 0.988 0.0032   neuron/16 0.988 0.0035 layer/16 0.988 0.0061
#   braille_cubalif     neuron/8 0.961 0.0002 layer/8 0.957 0.0010   neuron/16 0.961 0.0008 layer/16 0.957 0.0010
# Limits: two more flipped predictions (0.008) and the count difference plus 0.005 (0.01 for the 4-neuron readout of
# snntorch_rsynaptic, whose counts are a few thousand spikes).
TOLERANCES = {
    ("rnn_cubalif", "neuron", 8): (0.99, 0.007), ("rnn_cubalif", "layer", 8): (0.99, 0.006),
    ("rnn_cubalif", "neuron", 16): (0.99, 0.007), ("rnn_cubalif", "layer", 16): (0.99, 0.006),
    ("snntorch_rsynaptic", "neuron", 8): (0.98, 0.015), ("snntorch_rsynaptic", "layer", 8): (0.98, 0.012),
    ("snntorch_rsynaptic", "neuron", 16): (0.98, 0.012), ("snntorch_rsynaptic", "layer", 16): (0.98, 0.015),
    ("braille_cubalif", "neuron", 8): (0.953, 0.005), ("braille_cubalif", "layer", 8): (0.949, 0.006),
    ("braille_cubalif", "neuron", 16): (0.953, 0.006), ("braille_cubalif", "layer", 16): (0.949, 0.006),
}


@pytest.fixture(scope="module")
def measured():
    """Per graph: the graph, card, 256 samples and the float64 reference run on them."""
    sys.path.insert(0, str(ROOT / "nir_models"))
    from make_fixtures import sample_frames

    out = {}
    for name in sorted({k[0] for k in TOLERANCES}):
        path = ROOT / "nir_models" / f"{name}.nir"
        card = ModelCard.load(ModelCard.beside(path))
        graph = load_graph(path, input_shape=card.input_shape)
        frames = sample_frames(json.loads(ModelCard.beside(path).read_text()), SAMPLES)
        ref = ReferenceRunner(graph, card, ReferenceOptions(dtype="float64", record_spikes=True)).run(frames)
        out[name] = (graph, card, frames, ref)
    return out


@pytest.mark.parametrize("key", list(TOLERANCES), ids=[f"{g}-{s}-{b}" for g, s, b in TOLERANCES])
def test_recurrent_graphs_stay_within_their_measured_fixed_point_loss(measured, key):
    name, scale, bits = key
    graph, card, frames, ref = measured[name]
    impl, options = get_target("reference-fixed")
    res = impl.runner(graph, card,
                      options.updated({"scale": scale, "weight_bits": bits, "record_spikes": True})).run(frames)
    m = compare(ref, res, layers=spiking_nodes(graph))
    min_agree, max_count = TOLERANCES[key]
    assert m["agreement"] >= min_agree, (key, m["agreement"])
    assert m["max_count_rel_diff"] <= max_count, (key, {k: v["rel_diff"] for k, v in m["layers"].items()})


def test_sign_split_beats_one_mixed_sign_process_on_braille(measured):
    """The gain the default buys (one scale per neuron, 8 bits): measured 0.934 -> 0.961 agreement and the
    readout's count difference 0.20 % -> 0.02 %."""
    graph, card, frames, ref = measured["braille_cubalif"]
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

    got = {}
    for split in (False, True):
        plan = compile_graph(graph, card.dt, precision="fixed", input_shape=list(card.input_shape), sign_split=split)
        got[split] = compare(ref, FixedPointExecutor(plan).run(frames), layers=spiking_nodes(graph))
    assert got[True]["agreement"] >= got[False]["agreement"] + 0.015
    assert got[True]["max_count_rel_diff"] < got[False]["max_count_rel_diff"]


# ------------------------------------------------------------------------------------------- the rules, by hand

def test_sign_split_quantizes_each_sign_with_all_8_bits_and_its_own_exponent():
    m = sp.csr_matrix(np.array([[40.3, -20.6, 3.2]]))
    sigma = np.ones(1)
    # one mixed-sign process: exponent ceil(log2(40.3 / 254)) = -2, even mantissas 162, -82, 12
    (mixed,), rep = fp.quantize_conn(m, sigma)
    assert mixed[1] == -2 and mixed[0].toarray().tolist() == [[162, -82, 12]] and rep["sign_mode"] == "mixed"
    # split: positive weights at ceil(log2(40.3 / 255)) = -2 -> 161, 13; negative at ceil(log2(20.6 / 255)) = -3
    # -> -165
    (pos, neg), rep = fp.quantize_conn(m, sigma, sign_split=True)
    assert pos[1] == -2 and pos[0].toarray().tolist() == [[161, 0, 13]]
    assert neg[1] == -3 and neg[0].toarray().tolist() == [[0, -165, 0]]
    assert rep["sign_mode"] == "split" and (rep["weight_exp"], rep["weight_exp_inhibitory"]) == (-2, -3)
    # the real weights they stand for: 40.25, -20.625, 3.25 (errors 0.05, 0.025, 0.05 against 0.2, 0.1, 0.2)
    err = np.array([40.25 - 40.3, -20.625 + 20.6, 3.25 - 3.2])
    assert rep["rel_weight_error"] == pytest.approx(np.linalg.norm(err) / np.linalg.norm(m.data))
    # a single-sign connection is left as it was
    (one,), rep1 = fp.quantize_conn(sp.csr_matrix(np.array([[40.3, 3.2]])), sigma, sign_split=True)
    assert one[0].toarray().tolist() == [[161, 13]] and rep1["sign_mode"] == "excitatory"


def test_a_connection_keeps_exponent_0_where_its_weights_span_64_steps_there():
    """Lava's synapse shifts a negative exponent's sum down (3 >> 1 = 1, -3 >> 1 = -2: towards minus
    infinity), a bias of about -1/2 unit per step; 64 levels at exponent 0 err less than that."""
    import torch

    from neuromoco.deploy.targets.reference_fixed import arith

    assert arith.weight_shift(torch.tensor([3.0, -3.0], dtype=torch.float64), -1).tolist() == [1.0, -2.0]
    sigma = np.ones(1)
    # 100.3 / 255 would take exponent -1 (mantissas 201, 6); 100.3 >= 64 steps of 1: exponent 0, mantissas 100, 3
    ((q, e),), _ = fp.quantize_conn(sp.csr_matrix(np.array([[100.3, 3.2]])), sigma)
    assert e == 0 and q.toarray().tolist() == [[100, 3]]
    # mixed sign: steps of 2, so 128 units are needed; 100.3 keeps exponent -1 (even mantissas 200, -6)
    ((q, e),), _ = fp.quantize_conn(sp.csr_matrix(np.array([[100.3, -3.2]])), sigma)
    assert e == -1 and q.toarray().tolist() == [[200, -6]]
    # 40.3 spans fewer than 64 steps at 0: it keeps its negative exponent (see the test above)
    assert fp.UNSHIFTED_MIN_LEVELS == 64


def test_min_weight_exp_0_keeps_every_sum_exact():
    """``min_weight_exp=0``: the mixed-sign 100.3 above takes exponent 0 (even mantissas 100, -4: no floored
    shift), a 16-bit residual that would need exponent -1 is left out and says why, and a compiled plan has no
    negative exponent anywhere; the option is checked."""
    sigma = np.ones(1)
    ((q, e),), _ = fp.quantize_conn(sp.csr_matrix(np.array([[100.3, -3.2]])), sigma, min_exp=0)
    assert e == 0 and q.toarray().tolist() == [[100, -4]]
    pieces, rep = fp.quantize_conn(sp.csr_matrix(np.array([[100.3, -3.2]])), sigma, parts=2, min_exp=0)
    assert len(pieces) == 1 and "below min_weight_exp 0" in rep["residual_left_out"]
    # exponents above 0 are untouched: 600 needs exponent 2 (mantissa 150) either way
    ((q, e),), _ = fp.quantize_conn(sp.csr_matrix(np.array([[600.0, 8.0]])), sigma, min_exp=0)
    assert e == 2 and q.toarray().tolist() == [[150, 2]]
    card = ModelCard.load(ROOT / "nir_models" / "rnn_cubalif.card.json")
    graph = load_graph(ROOT / "nir_models" / "rnn_cubalif.nir", input_shape=list(card.input_shape))
    default, exact = (get_target("reference-fixed")[0].compile(graph, card, sign_split=False, min_weight_exp=e)
                      for e in (-8, 0))
    for plan, lowest in ((default, -1), (exact, 0)):  # -1: its recurrent connection
        assert min(c.weight_exp for lay in plan.layers for c in [*lay.conns, *plan.readout.conns]) == lowest
    with pytest.raises(UserError, match="min_weight_exp must be in -8..0"):
        get_target("reference-fixed")[0].compile(graph, card, min_weight_exp=1)


def test_a_sign_split_plan_marks_its_inhibitory_process_and_runs_the_same_synapses():
    graph = load_graph(ROOT / "nir_models" / "braille_cubalif.nir", input_shape=[12])
    real = compile_graph(graph, 1e-4, precision="float", input_shape=[12])
    plain = compile_graph(graph, 1e-4, precision="fixed", input_shape=[12])
    split = compile_graph(graph, 1e-4, precision="fixed", input_shape=[12], sign_split=True)
    for f, a, b in zip(real.layers, plain.layers, split.layers, strict=True):
        assert len(b.conns) == 2 * len(a.conns)  # every connection here has both signs
        # the float synapses, less those rounded to zero (fewer than with 7-bit magnitudes)
        assert sum(c.nnz for c in a.conns) <= sum(c.nnz for c in b.conns) <= sum(c.nnz for c in f.conns)
        assert [c.report.get("sign_part_of") for c in b.conns[1::2]] == [c.source for c in a.conns]
        for c in b.conns:
            assert c.matrix.data.min() > 0 or c.matrix.data.max() < 0  # single-sign: no dropped bit
            assert np.abs(c.matrix.data).max() <= fp.MANT_SINGLE


@pytest.mark.parametrize("exp,mixed,residual_exp,pays", [
    (0, True, -7, False),  # step 2: the floor's bias would outweigh what the residual corrects
    (1, True, -6, False),  # step 4 (measured: braille_cubalif one scale per layer, -0.64 % spikes with it)
    (2, False, -6, False),  # single sign, step 4
    (2, True, -5, True),  # step 8
    (3, False, -5, True),
    (-3, True, 0, True),  # a residual that does not shift down never biases
])
def test_a_residual_synapse_that_shifts_down_is_added_only_where_it_pays(exp, mixed, residual_exp, pays):
    assert fp.residual_pays(exp, mixed, residual_exp) is pays


def test_16_bit_plans_keep_only_the_residuals_that_pay():
    for name in ("rnn_cubalif", "snntorch_rsynaptic", "braille_cubalif"):
        card = ModelCard.load(ROOT / "nir_models" / f"{name}.card.json")
        graph = load_graph(ROOT / "nir_models" / f"{name}.nir", input_shape=card.input_shape)
        plan = compile_graph(graph, card.dt, precision="fixed", input_shape=list(card.input_shape), weight_bits=16,
                             sign_split=True)
        for lay in plan.layers:
            conns = lay.conns
            for prev, c in itertools.pairwise(conns):
                if "residual_of" in c.report and c.weight_exp < 0:
                    assert 2.0 ** prev.weight_exp >= fp.RESIDUAL_MIN_STEP, (name, lay.name)
            left_out = [n for n in lay.report.get("notes", []) if "residual synapse left out" in n]
            residuals = [c for c in conns if "residual_of" in c.report]
            assert left_out or residuals, (name, lay.name)


# ------------------------------------------------------------------------------------- what cannot be mapped

def _slow_lif_graph(dt: float) -> nir.NIRGraph:
    """Input -> Affine -> CubaLIF ``slow`` (tau_mem = 3000 dt: dv = 1/3000, off the 12-bit grid) -> Output."""
    n = 4
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=np.random.default_rng(0).normal(0, 1, (n, 3)), bias=np.zeros(n)),
        "slow": nir.CubaLIF(tau_syn=np.full(n, 4 * dt), tau_mem=np.full(n, 3000 * dt), r=np.ones(n),
                            v_leak=np.zeros(n), v_threshold=np.full(n, 0.1), v_reset=np.zeros(n)),
        "output": nir.Output(output_type=np.array([n])),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "slow"), ("slow", "output")], type_check=False)


def test_the_export_names_a_decay_that_12_bits_cannot_hold(tmp_path):
    dt = 1e-3
    card = ModelCard(input_shape=[3], time_steps=5, dt=dt)
    impl, options = get_target("lava-fixed")
    art = impl.export(_slow_lif_graph(dt), card, tmp_path / "x", options)
    rep = json.loads((tmp_path / "x" / "lava_export.json").read_text())
    (lay,) = rep["layers"]
    notes = lay["quantization"]["notes"]
    # dv = 1/3000 = 1.365/4096 rounds to 1/4096: the membrane time constant runs 3000/4096 - 1 = -26.76 % off;
    # du = 0.25 = 1024/4096 is on the grid and gets no note
    assert notes == [("dv = dt/tau_mem = 0.000333333 rounds to 1/4096 = 0.000244141 (relative error -26.7578%, "
                      "1 - dv +0.0089%): 12-bit decays cannot hold it")]
    summary = "\n".join(impl.summary(art))
    assert "not exact: dv = dt/tau_mem = 0.000333333 rounds to 1/4096" in summary


def test_decay_notes_by_hand():
    assert fp.decay_note("dv", np.array([0.25, 0.5]), np.array([1024.0, 2048.0]), "tau_mem") is None
    # tau_syn = 1.05 dt: du = 0.952381 -> 3901/4096 = 0.952393; what the current keeps, 1 - du, is 0.2 % off
    note = fp.decay_note("du", np.array([1 / 1.05]), np.array([3901.0]), "tau_syn")
    assert note.startswith("du = dt/tau_syn = 0.952381 rounds to 3901/4096 = 0.952393 (relative error +0.0012%, "
                           "1 - du -0.0244%)")
