"""reference-fixed: Loihi 2 fixed point in PyTorch, bit-exact with Lava's bit-accurate process models.

Three levels:

* the integer primitives of :mod:`~neuromoco.deploy.targets.reference_fixed.arith` against the code of
  Lava's own models called on the same values (``AbstractPyLifModelFixed.subthr_dynamics``,
  ``clip_weights`` / ``truncate_weights``), over random values and the edges (24-bit wrap, saturation,
  int32 overflow, negative rounding, bias exponents, mixed-sign weights);
* small ``RingBuffer -> Dense | Sparse -> LIF`` networks run in Lava (``Loihi2SimCfg(select_tag="fixed_pt")``)
  against the primitives step by step (current, voltage and spikes at every step);
* whole plans: ``reference-fixed`` equals ``lava-fixed`` (spikes at every layer and step, outputs) on every
  graph in ``nir_models/``, per-neuron and per-layer scales, 8- and 16-bit weights, and in overflow.

Lava runs start a handful of processes each (about a second), so samples are few.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.targets import get_target, options_class
from neuromoco.deploy.targets.lava.compat import import_lava
from neuromoco.deploy.targets.reference_fixed import arith
from neuromoco.deploy.targets.reference_fixed.strategy import DEFAULT, DEFINITION, GENERAL, Strategy
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
#: the graphs of nir_models/ with at most 2x64x64 input values. The 128x128 one (neuromoco_sim128_cnn5, cnn5-128)
#: is held to lava-fixed bit for bit in hardware_tests/test_targets_parity.py; here its plain sparse products alone
#: ran past the 600 s timeout at ~10 GB, and the four plan options on lava-fixed took ~110 s (2026-12-06).
GRAPHS = [p for p in sorted((ROOT / "nir_models").glob("*.nir"))
          if np.prod(ModelCard.load(ModelCard.beside(p)).input_shape) <= 2 * 64 * 64]
M = 1 << 23


# ------------------------------------------------------------------------- primitives vs Lava's code

def _lava_subthr(u, v, a, du, dv, bias):
    """Lava's ``AbstractPyLifModelFixed.subthr_dynamics`` on the given int32 state (no runtime needed)."""
    import_lava()
    from lava.proc.lif.models import AbstractPyLifModelFixed

    m = object.__new__(AbstractPyLifModelFixed)
    m.ds_offset, m.dm_offset = 1, 0
    m.uv_bitwidth = 24
    m.max_uv_val = 2 ** 23
    m.decay_shift, m.decay_unity = 12, 2 ** 12
    m.vth_shift = m.act_shift = 6
    m.u, m.v = u.astype(np.int32).copy(), v.astype(np.int32).copy()
    m.du, m.dv, m.effective_bias = du, dv, bias
    AbstractPyLifModelFixed.subthr_dynamics(m, activation_in=a.astype(np.int32))
    return m.u.astype(np.int64), m.v.astype(np.int64)


def _ours_subthr(u, v, a, du, dv, bias):
    def f64(x):
        return torch.from_numpy(np.asarray(x, dtype=np.float64))

    uf = f64(arith.u_factor(du)) if np.ndim(du) else float(arith.u_factor(du))
    vf = f64(arith.v_factor(dv)) if np.ndim(dv) else float(arith.v_factor(dv))
    u2 = arith.current_update(f64(u), f64(a), uf)
    v2 = arith.voltage_update_(f64(v).clone(), u2, vf, f64(bias))
    return u2.numpy().astype(np.int64), v2.numpy().astype(np.int64)


EDGES = np.array([0, 1, -1, 4095, -4095, 4096, -4096, M - 1, M, M + 1, -M + 1, -M, -M - 1, 3 * M, -3 * M,
                  3 * M + 5, 2 ** 30, -(2 ** 30), 2 ** 31 - 1, -(2 ** 31)], dtype=np.int64)


@pytest.mark.parametrize("du,dv", [(0, 0), (4095, 4095), (1024, 512), (4094, 1), (1, 4095), (2048, 0)])
def test_neuron_update_equals_lava_subthr_dynamics(du, dv):
    """Current decay, a << 6, int32 and 24-bit wrap, voltage decay, bias, saturation: Lava's own code."""
    rng = np.random.default_rng(du * 7 + dv)
    n = 4000
    u = np.concatenate([rng.integers(-M + 1, M + 1, n), np.resize(np.clip(EDGES, -M + 1, M), n)])
    v = np.concatenate([rng.integers(-M + 1, M, n), np.resize(np.clip(EDGES, -M + 1, M - 1), n)])[::-1].copy()
    a = np.concatenate([rng.integers(-(2 ** 18), 2 ** 18, n // 2), rng.integers(-(2 ** 26), 2 ** 26, n // 2),
                        np.resize(EDGES // 64, n)])  # a << 6 past 2**23 and past 2**31 (int32 wrap)
    bias = np.concatenate([rng.integers(-4096, 4096, n) << rng.integers(0, 8, n), np.zeros(n, np.int64)])
    for du_, dv_ in ((du, dv), (np.full(2 * n, du), np.full(2 * n, dv))):  # scalar (LIFReset) and per neuron
        lu, lv = _lava_subthr(u, v, a, du_, dv_, bias.astype(np.int32))
        ou, ov = _ours_subthr(u, v, a, du_, dv_, bias)
        np.testing.assert_array_equal(ou, lu)
        np.testing.assert_array_equal(ov, lv)
    assert np.any(lu > M) or np.any(np.abs(a << 6) > 3 * M)  # the edges were reached
    assert np.any(np.abs(lv) == M - 1)  # saturation reached


def test_bias_exponents_and_threshold_like_lava():
    """``bias_mant << bias_exp`` (and ``>>`` for negative exponents) as Lava's ``scale_bias``; ``vth << 6``."""
    import_lava()
    from lava.proc.lif.models import AbstractPyLifModelFixed

    mant = np.array([-4096, -4095, -1234, -1, 0, 1, 77, 4095, -3, 3])
    exp = np.array([7, 0, 3, 7, 5, 1, 2, 7, -1, -2])
    m = object.__new__(AbstractPyLifModelFixed)
    m.bias_mant, m.bias_exp = mant.astype(np.int16), exp.astype(np.int16)
    AbstractPyLifModelFixed.scale_bias(m)
    np.testing.assert_array_equal(arith.effective_bias(mant, exp), m.effective_bias)
    np.testing.assert_array_equal(arith.effective_threshold(np.array([1, 131071])), [64, 131071 << 6])


def test_synapse_weights_and_exponent_shift_like_lava():
    """Clip and lowest-bit drop per sign mode (``-1 -> -2`` in mixed mode), int32 dot, ``<<`` / ``>>``."""
    import_lava()
    from lava.utils.weightutils import SignMode, clip_weights, determine_sign_mode, truncate_weights

    rng = np.random.default_rng(3)
    cases = {"mixed": rng.integers(-300, 300, (40, 30)), "excitatory": rng.integers(0, 400, (40, 30)),
             "inhibitory": -rng.integers(0, 400, (40, 30)), "mixed_small": np.array([[-1, 1, -3, 3, 0]])}
    for name, w in cases.items():
        mode = determine_sign_mode(w)
        assert arith.sign_mode(w) == mode.name.lower(), name
        want = truncate_weights(clip_weights(w, mode, num_bits=8), mode, 8)
        np.testing.assert_array_equal(arith.synapse_weights(w, arith.sign_mode(w)), want, err_msg=name)
    assert arith.synapse_weights(np.array([-1, 1, -3]), "mixed").tolist() == [-2, 0, -4]
    assert SignMode  # imported for the names above
    acc32 = rng.integers(-(2 ** 31), 2 ** 31, 5000).astype(np.int32)
    acc32[:4] = [-1, -7, 7, -(2 ** 31)]
    for exp in (-7, -3, -1, 0, 1, 3, 7):
        want = np.left_shift(acc32, exp) if exp > 0 else np.right_shift(acc32, -exp)
        got = arith.weight_shift(torch.from_numpy(acc32.astype(np.float64)), exp).numpy()
        np.testing.assert_array_equal(got, want.astype(np.float64), err_msg=f"exp {exp}")
    big = np.array([2 ** 31, 2 ** 33 + 5, -(2 ** 31) - 1, 3], dtype=np.int64)
    np.testing.assert_array_equal(arith.wrap32(torch.from_numpy(big.astype(np.float64))).numpy(),
                                  big.astype(np.int32).astype(np.float64))


# --------------------------------------------------------------------- small Lava networks, step by step

def _lava_dense_lif(w, weight_exp, payload, du, dv, vth, bias_mant, bias_exp, sparse):
    """RingBuffer(graded) -> Dense | Sparse (bit-accurate) -> LIF on Lava: u, v, spikes per step."""
    import scipy.sparse as sp

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import Sparse

    steps, n = payload.shape[0], w.shape[0]
    src = RingBuffer(data=payload.T.astype(np.int32))
    kw = {"weight_exp": weight_exp, "num_weight_bits": 8, "num_message_bits": 24}
    conn = (Sparse(weights=sp.csr_matrix(w.astype(np.int32)), **kw) if sparse
            else Dense(weights=w.astype(np.int32), **kw))
    lif = LIF(shape=(n,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    src.s_out.connect(conn.s_in)
    conn.a_out.connect(lif.a_in)
    mons = {}
    for name, what in (("u", lif.u), ("v", lif.v), ("s_out", lif.s_out)):
        mons[name] = Monitor()
        mons[name].probe(what, steps)
    lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    out = {k: next(iter(m.get_data().values()))[k].astype(np.int64) for k, m in mons.items()}
    lif.stop()
    return out


def _ours_dense_lif(w, weight_exp, payload, du, dv, vth, bias_mant, bias_exp):
    """The same network from the primitives (the synapse sends at t what it received at t - 1)."""
    weights = arith.synapse_weights(w, arith.sign_mode(w)).astype(np.int64)
    n = w.shape[0]
    u, v = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    bias = torch.from_numpy(arith.effective_bias(bias_mant, bias_exp).astype(np.float64))
    vth_eff = torch.full((n,), float(arith.effective_threshold(np.array(vth))))
    out = {"u": [], "v": [], "s_out": []}
    for t in range(payload.shape[0]):
        acc = weights @ payload[t - 1] if t > 0 else np.zeros(n, np.int64)
        acc = torch.from_numpy(acc.astype(np.int32).astype(np.float64))  # Lava's int32 dot product
        a = arith.weight_shift(acc, weight_exp)
        u = arith.current_update(u, a, float(arith.u_factor(du)))
        arith.voltage_update_(v, u, float(arith.v_factor(dv)), bias)
        s = arith.spike_and_reset_(v, vth_eff)
        for k, x in (("u", u), ("v", v), ("s_out", s)):
            out[k].append(x.numpy().astype(np.int64))
    return {k: np.stack(x) for k, x in out.items()}


def _case(name: str):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    steps, n_in, n = 24, 6, 5
    if name == "mixed_odd_clipped_negative_exp":  # clip to [-256, 255], drop the lowest bit, >> 2 rounds down
        w = rng.integers(-300, 300, (n, n_in))
        payload = rng.integers(-20, 40, (steps, n_in))
        return w, -2, payload, 700, 300, 400, np.array([-1234, 77, 0, 4095, -4096]), np.array([3, 0, 7, 1, 2])
    if name == "wrap_and_saturate":  # a << 6 past 2**23 and past 2**31; u wraps, v saturates
        w = np.full((n, n_in), 255)
        w[1] = 100
        payload = rng.integers(0, 2000, (steps, n_in))
        payload[::3] = 0
        return w, np.array([7]).item(), payload, 100, 0, 131071, np.zeros(n), np.zeros(n)
    if name == "inhibitory_rounding":  # negative currents decaying (rounds towards zero), IF voltage
        w = -rng.integers(0, 400, (n, n_in))
        payload = rng.integers(0, 5, (steps, n_in))
        payload[steps // 2:] = 0
        return w, 1, payload, 3, 0, 50, np.array([4095, 4095, 2000, 0, 100]), np.array([7, 6, 7, 0, 3])
    raise KeyError(name)


@pytest.mark.parametrize("name,sparse", [("mixed_odd_clipped_negative_exp", False),
                                         ("mixed_odd_clipped_negative_exp", True),
                                         ("wrap_and_saturate", False), ("inhibitory_rounding", True)])
def test_small_lava_network_state_equals_primitives(name, sparse):
    w, exp, payload, du, dv, vth, bias_mant, bias_exp = _case(name)
    lava = _lava_dense_lif(w, exp, payload, du, dv, vth, bias_mant, bias_exp, sparse)
    ours = _ours_dense_lif(w, exp, payload, du, dv, vth, bias_mant, bias_exp)
    for k in ("u", "v", "s_out"):
        np.testing.assert_array_equal(ours[k], lava[k], err_msg=f"{name}: {k}")
    if name == "wrap_and_saturate":
        assert np.any(np.diff(lava["u"], axis=0) < 0) and np.any(np.abs(lava["v"]) == M - 1)
    else:
        assert lava["s_out"].sum() > 0, "the case should spike"


# --------------------------------------------------------------------------- whole plans vs lava-fixed

def _frames(card: ModelCard, samples: int, salt: str, rate: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(salt.encode()))
    return rng.poisson(rate, size=(card.time_steps, samples, *card.input_shape)).astype(np.float32)


def _run_both(graph, card, frames, **values):
    out = {}
    for name in ("lava-fixed", "reference-fixed"):
        impl, opts = get_target(name)
        out[name] = impl.runner(graph, card, opts.updated({"record_spikes": True, **values})).run(frames)
    return out["lava-fixed"], out["reference-fixed"]


def _assert_identical(lava, ours, what: str) -> None:
    assert set(ours.spikes) == set(lava.spikes) and set(ours.spike_counts) == set(lava.spike_counts), what
    for layer in lava.spikes:
        np.testing.assert_array_equal(ours.spikes[layer], lava.spikes[layer], err_msg=f"{what}: {layer}")
        np.testing.assert_array_equal(ours.spike_counts[layer], lava.spike_counts[layer], err_msg=what)
    np.testing.assert_array_equal(ours.output, lava.output, err_msg=f"{what}: output")
    np.testing.assert_array_equal(ours.predictions, lava.predictions)


#: every plan option pair on the graphs Lava runs in a few seconds; on the residual neuromoco_embedded_sew (23 nodes,
#: 12-15 s per Lava run, measured 2026-12-06) the two pairs that differ in both options, the other two being held
#: on every other graph (CI time).
PLAN_OPTIONS = [("neuron", 8), ("layer", 8), ("neuron", 16), ("layer", 16)]
LAVA_SLOW = {"neuromoco_embedded_sew"}
LAVA_CASES = [pytest.param(p, s, b, id=f"{p.stem}-{s}-{b}") for p in GRAPHS for s, b in PLAN_OPTIONS
              if p.stem not in LAVA_SLOW or (s, b) in (("neuron", 8), ("layer", 16))]


@pytest.mark.parametrize("path,scale,weight_bits", LAVA_CASES)
def test_reference_fixed_equals_lava_fixed_on_nir_models(path, scale, weight_bits):
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card, 3, path.stem)  # lava-fixed tiles small graphs: samples side by side too
    lava, ours = _run_both(graph, card, frames, scale=scale, weight_bits=weight_bits)
    assert sum(int(c.sum()) for c in lava.spike_counts.values()) > 0
    _assert_identical(lava, ours, f"{path.stem} scale={scale} weight_bits={weight_bits}")
    plain = _run_strategy(graph, card, frames, DEFINITION, scale=scale, weight_bits=weight_bits)
    _assert_identical(lava, plain, f"{path.stem} scale={scale} weight_bits={weight_bits}: the definition")


def test_reference_fixed_equals_lava_fixed_in_overflow():
    """Inputs far past ``input_max``: currents wrap and voltages saturate in both, identically."""
    path = ROOT / "nir_models" / "sinabs_cnn.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card, 2, "overflow", rate=3.0) * 40.0
    with pytest.warns(UserWarning, match="exceed input_max"):
        lava, ours = _run_both(graph, card, frames, input_max=1.0)
    _assert_identical(lava, ours, "overflow")


def test_recurrent_and_li_readout_fixtures_and_batches(tmp_path):
    """A plan exported by lava-fixed runs on reference-fixed from its folder, in batches, identically."""
    path = ROOT / "nir_models" / "rnn_cubalif.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card, 5, "batches", rate=0.6)
    lava_t, lava_o = get_target("lava-fixed")
    folder = tmp_path / "exp"
    lava_t.export(graph, card, folder, lava_o)
    lava = lava_t.load(folder, lava_o.updated({"record_spikes": True})).run(frames)
    impl, opts = get_target("reference-fixed")
    ours = impl.load(folder, opts.updated({"record_spikes": True, "batch_size": 2})).run(frames)
    _assert_identical(lava, ours, "exported plan")


# ------------------------------------------------------------------------------ the target's interface

def test_export_is_the_lava_plan_and_float_plans_are_refused(tmp_path):
    path = ROOT / "nir_models" / "snntorch_mlp.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    impl, opts = get_target("reference-fixed")
    art = impl.export(graph, card, tmp_path / "rf", opts, weight_bits=16)
    assert art.name == "lava_network.h5" and (tmp_path / "rf" / "lava_export.json").exists()
    assert any("fixed point" in line for line in impl.summary(art))
    frames = _frames(card, 2, "export")
    lava_t, lava_o = get_target("lava-fixed")
    lava = lava_t.load(art, lava_o.updated({"record_spikes": True})).run(frames)
    _assert_identical(lava, impl.load(tmp_path / "rf", opts.updated({"record_spikes": True})).run(frames), "export")
    lava_t.export(graph, card, tmp_path / "float", lava_o.updated({"precision": "float"}))
    with pytest.raises(UserError, match="floating-point|float-point"):
        impl.load(tmp_path / "float", opts)


def test_options_are_the_lava_plan_options_and_precision_is_fixed():
    cls = options_class("reference-fixed")
    o = cls.parse({"scale": "layer", "weight_bits": "16", "input_scale": "2", "device": "cpu"})
    assert (o.scale, o.weight_bits, o.input_scale) == ("layer", 16, 2.0)
    assert o.lava_options().precision == "fixed" and o.lava_options().weight_bits == 16
    with pytest.raises(UserError, match="valid"):
        cls.parse({"precision": "float"})
    with pytest.raises(UserError):
        cls.parse({"weight_bits": "12"})


def test_runs_without_lava_and_imports_lightly(tmp_path):
    """With every ``lava`` import blocked: compile, export, load and run; importing the package pulls in
    neither torch nor Lava."""
    code = f"""
import sys
sys.modules['lava'] = None  # any import of Lava fails
import neuromoco.deploy.targets.reference_fixed
from neuromoco.deploy.targets import options_class
options_class('reference-fixed')
assert 'torch' not in sys.modules, 'torch imported by the package'
import numpy as np
from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.targets import get_target
p = {str(ROOT / 'nir_models' / 'snntorch_rsynaptic.nir')!r}
card = ModelCard.load(ModelCard.beside(p)); g = load_graph(p, input_shape=card.input_shape)
impl, opts = get_target('reference-fixed')
x = np.random.default_rng(0).poisson(0.5, (card.time_steps, 2, *card.input_shape)).astype(np.float32)
a = impl.runner(g, card, opts).run(x)
impl.export(g, card, {str(tmp_path / 'out')!r}, opts)
b = impl.load({str(tmp_path / 'out')!r}, opts).run(x)
assert np.array_equal(a.output, b.output) and not any(m == 'lava' or m.startswith('lava.') for m in sys.modules
                                                      if sys.modules[m] is not None)
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_bad_frames_and_device_are_user_errors():
    path = ROOT / "nir_models" / "snntorch_mlp.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    impl, opts = get_target("reference-fixed")
    runner = impl.runner(graph, card, opts)
    with pytest.raises(UserError, match="do not fit"):
        runner.run(np.zeros((4, 2, 3), dtype=np.float32))
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            impl.runner(graph, card, opts, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    path = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card, 8, "cuda")
    impl, opts = get_target("reference-fixed")
    cpu = impl.runner(graph, card, opts, record_spikes=True).run(frames)
    gpu = impl.runner(graph, card, opts, record_spikes=True, device="cuda").run(frames)
    _assert_identical(cpu, gpu, "cuda")


def _run_strategy(graph, card, frames, strategy: Strategy, **values):
    """The fixed-point plan of ``graph`` (plan options ``values``) run on ``frames`` by ``strategy``."""
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

    impl, opts = get_target("reference-fixed")
    plan = impl.compile(graph, card, opts.updated(values))
    return FixedPointExecutor(plan, record_spikes=True, strategy=strategy).run(frames)


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_event_driven_and_matrix_products_agree(path):
    """Spike inputs summed synapse by synapse (``index_add_``) or as a matrix product: the same integers."""
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card, 4, path.stem + "/paths")
    events = DEFAULT.but(event_cost=0, event_chunk=1000)  # always event-driven, in many chunks
    runs = {name: _run_strategy(graph, card, frames, s, weight_bits=16)
            for name, s in (("events", events), ("matrix", DEFAULT.but(event_driven=False)))}
    _assert_identical(runs["matrix"], runs["events"], f"{path.stem}: event-driven vs matrix product")


# ------------------------------------------------------------- convolutions recovered from the matrices

def _executors(graph, card, **values):
    """The fixed-point plan of ``graph`` run with its convolutions found, and as plain sparse products."""
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

    impl, opts = get_target("reference-fixed")
    plan = impl.compile(graph, card, opts.updated(values))
    return (FixedPointExecutor(plan, record_spikes=True),
            FixedPointExecutor(plan, record_spikes=True, strategy=DEFAULT.but(structured=False)))


def _pool_conv_graph(pool: str, stride: int, padding: int):
    import itertools

    import nir

    rng = np.random.default_rng(stride * 10 + padding)

    def lif(s):
        return nir.LIF(tau=np.full(s, 0.004), r=np.ones(s), v_leak=np.zeros(s), v_threshold=np.full(s, 0.5))

    pooling = getattr(nir, pool)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    h = (8 + 2 * padding - 3) // stride + 1  # 34 -> 17 (conv1), 8 (pooling), h (conv2)
    nodes = {"input": nir.Input(input_type=np.array([2, 34, 34])),
             "conv1": nir.Conv2d(input_shape=(34, 34), weight=rng.normal(0.3, 0.5, (6, 2, 3, 3)), stride=2,
                                 padding=1, dilation=1, groups=1, bias=np.zeros(6)),
             "lif1": lif((6, 17, 17)), "pool": pooling,
             "conv2": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0.4, 0.6, (5, 6, 3, 3)), stride=stride,
                                 padding=padding, dilation=1, groups=1, bias=np.zeros(5)),
             "lif2": lif((5, h, h)),
             "output": nir.Output(output_type=np.array([5, h, h]))}
    order = ["input", "conv1", "lif1", "pool", "conv2", "lif2", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order)))


def _assert_conv_decomposition(ex) -> int:
    """Every convolution (a plan's kernel, or one recovered from a matrix) plus its correction is its
    connection's weights, exactly."""
    found = 0
    for lay in ex.layers:
        for c in lay.conns:
            if c.conv is None:
                continue
            found += 1
            weights = c.matrix if c.matrix is not None else c.kernel.matrix()
            d = (c.conv.matrix() + c.conv.correction - weights).tocsr()
            d.eliminate_zeros()
            assert d.nnz == 0, lay.name
            if c.correction is not None:
                assert c.correction.matrix.nnz <= 0.25 * weights.nnz
    return found


def test_conv_decomposition_of_the_shipped_cnn3():
    path = ROOT / "nir_models" / "neuromoco_embedded_cnn3.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    ex, plain = _executors(graph, card)
    assert _assert_conv_decomposition(ex) == 3  # one per layer: the sign-split pairs are merged
    assert all(len(c.members) == 2 for lay in ex.layers for c in lay.conns)
    assert [c.conv.pool for lay in ex.layers for c in lay.conns] == [1, 2, 2]  # sum pooling, then a conv
    frames = _frames(card, 3, "cnn3/conv")
    _assert_identical(plain.run(frames), ex.run(frames), "cnn3: convolution vs sparse product")


@pytest.mark.parametrize("pool,stride,padding", [("SumPool2d", 2, 0), ("AvgPool2d", 1, 1), ("SumPool2d", 1, 0)])
@pytest.mark.parametrize("scale", ["neuron", "layer"])
def test_conv_path_equals_sparse_path_with_stride_padding_and_pooling(pool, stride, padding, scale):
    graph = _pool_conv_graph(pool, stride, padding)
    card = ModelCard(input_shape=[2, 34, 34], time_steps=6, dt=0.001)
    ex, plain = _executors(graph, card, scale=scale)
    assert _assert_conv_decomposition(ex) >= 2  # a sign part with its own exponent may keep its sparse product
    strides = [{c.conv.stride for c in lay.conns if c.conv is not None} for lay in ex.layers]
    assert strides == [{(2, 2)}, {(2 * stride, 2 * stride)}]  # the pooling composed into the second conv
    frames = _frames(card, 5, f"{pool}/{stride}/{padding}", rate=0.5)
    a, b = plain.run(frames), ex.run(frames)
    assert sum(int(c.sum()) for c in a.spike_counts.values()) > 0
    _assert_identical(a, b, f"{pool} stride {stride} padding {padding}: convolution vs sparse product")


def test_find_conv_recovers_synthetic_maps_and_refuses_others():
    import scipy.sparse as sp

    from neuromoco.deploy.targets.reference_fixed.conv_structure import conv_matrix, find_conv

    rng = np.random.default_rng(3)
    k = rng.integers(-9, 10, size=(4, 3, 3, 3)).astype(np.float64)
    m = conv_matrix(k, (2, 2), (0, 0, 0, 0), (3, 11, 11), (4, 5, 5)).tolil()
    m[0, :] = 0  # a border row with its own mantissas
    m[0, 1] = 7
    m = m.tocsr()
    op = find_conv(m, (3, 11, 11), (4, 5, 5))
    assert op is not None and op.stride == (2, 2) and op.pad[0] == 0
    assert ((op.matrix() + op.correction - m) != 0).nnz == 0
    assert op.correction.nnz <= 3 * 3 * 3 + 1
    dense = sp.csr_matrix(rng.integers(1, 5, size=(20, 30)).astype(np.float64))
    assert find_conv(dense, (30,), (20,)) is None  # flat shapes: an Affine
    assert find_conv(dense, (1, 5, 6), (1, 4, 5)) is None  # all-to-all: not a convolution


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_structured_and_plain_products_agree_on_nir_models(path):
    """Merged sign-split pairs, kernels as convolutions and the weights several sources share (a SEW ADD read
    by one conv: their spikes summed, one product) give the plain sparse products' integers; a graph without
    convolutions (Affine) keeps the sparse product."""
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    ex, plain = _executors(graph, card)
    _assert_conv_decomposition(ex)
    shared = sum(len(c.shared) for lay in ex.layers for c in lay.conns)
    if "sew" in path.stem:  # the residual graphs: every ADD's terms go through one conv
        assert shared >= 2, path.stem
    for lay in ex.layers:
        for c in lay.conns:
            if len(lay.shape) == 1:
                assert c.conv is None, f"{path.stem}: {lay.name} is an Affine's target"
    frames = _frames(card, 4, path.stem + "/structured")
    _assert_identical(plain.run(frames), ex.run(frames), f"{path.stem}: structured vs plain")


# --------------------------------------------------------------------- fast paths against the definition

#: strategies that must give the definition's integers: the default (every fast kernel where its bounds allow),
#: batched but with no optional kernel, small chunks (many per layer), and one product per plan connection
STRATEGIES = {"default": DEFAULT, "general": GENERAL,
              "chunked": DEFAULT.but(memoryless_chunk_bytes=4096, conv_chunk_bytes=4096),
              "unstructured": DEFAULT.but(structured=False)}


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_fast_paths_equal_the_definition_on_nir_models(path):
    """The plain integer step of :mod:`.definition` and every strategy of :data:`STRATEGIES` (the memoryless
    float32 / float64 step, int8 products, border ops, chunks, merged and shared connections): the same
    spikes at every layer and step, the same outputs, bit for bit."""
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames = _frames(card, 3, path.stem + "/fast")
    want = _run_strategy(graph, card, frames, DEFINITION)
    assert sum(int(c.sum()) for c in want.spike_counts.values()) > 0
    for name, strategy in STRATEGIES.items():
        _assert_identical(want, _run_strategy(graph, card, frames, strategy), f"{path.stem}: {name} vs definition")


@pytest.mark.parametrize("above", [False, True])
def test_memoryless_fast_path_just_below_its_bound(above):
    """Inputs that put the first layer's ``|a << 6|`` bound just below ``2**23`` (the fast step, voltages
    saturating) or just above (the general step): both as Lava computes them."""
    from neuromoco.deploy.targets.reference_fixed import activation, executor

    path = ROOT / "nir_models" / "sinabs_cnn.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    impl, opts = get_target("reference-fixed")
    plan = impl.compile(graph, card, opts)
    ex = executor.FixedPointExecutor(plan, record_spikes=True)
    first = ex.layers[0]
    per_unit = activation.ff_bound(first.conns, {plan.input_name: (None, 1.0)})
    limit = (arith.MAX_UV >> arith.ACT_SHIFT) - first.b_max
    below = int(np.ceil(limit / per_unit)) - 1  # the largest payload whose bound is below 2**23
    x_top = below + int(above)
    assert below >= 2 and (below * per_unit + first.b_max) * 64 < arith.MAX_UV <= ((below + 1) * per_unit) * 64
    frames = (_frames(card, 2, "near-bound", rate=0.5) > 0).astype(np.float32) * (x_top / plan.input_scale)
    with pytest.warns(UserWarning, match="exceed input_max"):
        ours = ex.run(frames)
    with pytest.warns(UserWarning, match="exceed input_max"):
        lava, _ = _run_both(graph, card, frames)
    assert (ex.layer_kernels[first.name] == "memoryless") != above
    assert int(ours.spike_counts[first.name].sum()) > 0
    _assert_identical(lava, ours, f"near the bound (above={above})")


def test_sum_pooling_of_spikes_in_uint8_equals_padded_avg_pool():
    import itertools

    import torch.nn.functional as F

    from neuromoco.deploy.targets.reference_fixed.conv_structure import pad_sum_pool_uint8

    g = torch.Generator().manual_seed(0)
    for h, w, pool in [(16, 16, 2), (17, 17, 2), (9, 11, 3), (5, 4, 2)]:
        for pad in itertools.product([-1, 0, 1, 2], repeat=4):
            x = torch.rand(2, 3, h, w, generator=g) < 0.5
            want = F.avg_pool2d(F.pad(x.float(), (pad[2], pad[3], pad[0], pad[1])), pool, pool, divisor_override=1)
            got = pad_sum_pool_uint8(x.view(torch.uint8), pool, pad, torch.float32)
            assert torch.equal(want, got), (h, w, pool, pad)


@pytest.mark.parametrize("pool", [1, 2])
@pytest.mark.parametrize("mode", ["windows", "rows"])
def test_border_op_equals_the_sparse_correction(pool, mode):
    """A conv matrix with border rows of their own: conv + border op (either way) is the matrix, exactly,
    on random integers; both layouts of the op are the same integers."""
    import scipy.sparse as sp

    from neuromoco.deploy.targets.reference_fixed import conv_structure as cs

    rng = np.random.default_rng(pool)
    k = rng.integers(-9, 10, size=(4, 3, 3, 3)).astype(np.float64)
    if pool == 2:  # a 6x6 kernel constant on 2x2 blocks, stride 2: a sum pooling, then the 3x3 conv
        k = np.repeat(np.repeat(k, 2, axis=2), 2, axis=3)
    stride, pad = (pool, pool), (pool, pool, pool, pool)
    src, tgt = (3, 12, 12), (4, 12 // pool, 12 // pool)
    m = cs.conv_matrix(k, stride, pad, src, tgt).tolil()
    for co, h, w in [(0, 0, 0), (1, 0, 3), (3, tgt[1] - 1, 2), (2, 4, tgt[2] - 1)]:  # border rows, own weights
        r = (co * tgt[1] + h) * tgt[2] + w
        cols = m.rows[r]
        m[r, cols] = (np.asarray(m[r, cols].todense()) * 2 + 1).ravel()
    m = sp.csr_matrix(m.tocsr())
    op = cs.find_conv(m, src, tgt)
    assert op is not None and op.pool == pool and op.border is not None
    dg = cs.grid_correction(op)
    built = {"windows": cs._windows(dg, tgt[0], tgt[1] * tgt[2]), "rows": cs._rows(dg)}
    op.border = built[mode]
    x = rng.integers(0, 3, size=(5, m.shape[1])).astype(np.float64)
    for x_max in (None, 2.0):  # unknown: floating point; known: rows as int8 matmuls
        got = op.apply(torch.from_numpy(x), torch.float64, x_max).numpy()
        np.testing.assert_array_equal(got, x @ m.T.toarray())
        spikes = torch.from_numpy(x > 1)  # bool inputs: padded and pooled in uint8
        want = (x > 1).astype(np.float64) @ m.T.toarray()
        np.testing.assert_array_equal(op.apply(spikes, torch.float32, x_max and 1.0).numpy(), want)


@pytest.mark.parametrize("w_max", [127, 255, 2047])
def test_int8_products_equal_float_products(w_max):
    """Dense weights as one or two int8 limbs times spikes or small graded inputs (``torch._int_mm``): the
    float product's integers; inputs past 127 are refused (the float product then)."""
    import scipy.sparse as sp

    from neuromoco.deploy.targets.reference_fixed import products
    from neuromoco.deploy.targets.reference_fixed.connection import FixedConn

    rng = np.random.default_rng(w_max)
    w = rng.integers(-w_max, w_max + 1, size=(12, 40))
    w[0, 0] = w_max  # the extremes reached
    c = FixedConn("x", False, 0, sp.csr_matrix(w.astype(np.float64)), float(np.abs(w).sum(1).max()),
                  torch.device("cpu"))
    assert c.dense
    for x in (torch.from_numpy(rng.random((33, 40)) < 0.3), torch.from_numpy(rng.integers(-127, 128, (33, 40)))):
        x_max = float(x.abs().max()) if x.dtype != torch.bool else 1.0
        got = products.int8_matmul(c, x.float() if x.dtype != torch.bool else x, x_max, torch.float64)
        assert got is not None
        np.testing.assert_array_equal(got.numpy(), x.numpy().astype(np.int64) @ w.T)
    assert products.int8_matmul(c, torch.full((3, 40), 200.0), 200.0, torch.float64) is None


def test_fast_payload_equals_the_plan_payload():
    """float32 / uint8 frames: the one-pass float32 payload is ``fixed_payload`` then int32, warnings too."""
    path = ROOT / "nir_models" / "neuromoco_tiny_cnn.nir"
    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    impl, opts = get_target("reference-fixed")
    runner = impl.runner(graph, card, opts)
    ex, plan = runner.executor, runner.plan
    frames = _frames(card, 3, "payload", rate=2.0)
    for x in (frames, frames.astype(np.uint8), frames + np.float32(0.5), frames - np.float32(2.25)):
        flat = plan.flat_frames(x)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(plan, "input_scale", 1.0)
            import warnings as w

            with w.catch_warnings(record=True) as got_w:
                w.simplefilter("always")
                got = ex.payload(flat)
            with w.catch_warnings(record=True) as want_w:
                w.simplefilter("always")
                want = plan.fixed_payload(flat).astype(np.int32).astype(np.int64)
        np.testing.assert_array_equal(got, want)
        assert [str(m.message) for m in got_w] == [str(m.message) for m in want_w]


@pytest.mark.parametrize("dv", [0, 1, 2048, 3277, 4095])
def test_voltage_bound_holds_for_any_inputs_within_it(dv):
    """``FixedLayer.voltage_bound``: Lava's voltage update (decay, add, saturate, spike reset) driven by the
    largest inputs ``|u| <= u_max`` of either sign never leaves it (where it is finite)."""
    from neuromoco.deploy.targets.reference_fixed.layer import FixedLayer

    rng = np.random.default_rng(dv)
    n, u_max = 4000, 900_000.0
    vf = float(arith.v_factor(np.array([dv]))[0])
    lay = FixedLayer("l", (n,), True, 0.0, vf, torch.full((n,), 3e6, dtype=torch.float64), None, None, None,
                     torch.from_numpy(rng.integers(-5000, 5000, n).astype(np.float64)), 0.0, 0.0, [])
    k = lay.voltage_bound(u_max)
    assert (k == float("inf")) == (dv == 0)
    v = lay.v0.clone()
    for t in range(300):
        sign = 1.0 if (t // 50) % 2 else -1.0  # long runs of one sign drive |v| towards the bound
        u = torch.from_numpy(np.round(rng.uniform(0.8, 1.0, n) * u_max * sign))
        arith.voltage_update_(v, u, vf, None, may_wrap32=False)
        if k < M:
            assert float(v.abs().max()) <= k
        arith.spike_and_reset_(v, lay.vth)
