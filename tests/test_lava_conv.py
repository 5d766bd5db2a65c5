"""Lava back end: a plan's kernel connection runs as a ``PlanConv`` process, a convolution.

* the process alone: ``RingBuffer -> PlanConv -> Recorder`` beside Lava's own ``Sparse`` / ``DelaySparse``
  given the expanded matrix (``Kernel.matrix()``), on the same graded input: fixed point bit for bit
  (mixed-sign odd and out-of-range weights, int32 wrap, ``weight_exp`` -2 / 0 / 2, added delay 0 / 2, two
  tiles side by side), float within 1e-9;
* whole networks: a hand-made plan with kernel connections (from the input, from a spiking layer, a delayed
  skip) runs on ``LavaRunner`` exactly as the same plan with every kernel expanded into its matrix.

Each Lava run starts one OS process per Lava process (about a second), so there are four runs of a few steps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, Readout, connection_process
from neuromoco.deploy.targets.lava.compat import import_lava

W = 2  # samples side by side
STEPS = 6  # steps of input; the run adds the longest delay


def _kernel(rng: np.random.Generator, fixed: bool) -> Kernel:
    """3x3 stride 2 on [3, 9, 8], cropped to 8x7, padded (1, 2, 0, 1): [4, 5, 3]."""
    shape = (4, 3, 3, 3)
    if fixed:  # mixed sign, odd values (truncated) and beyond 8 bits (clipped)
        w = rng.integers(-256, 256, shape).astype(np.float64)
        w.flat[:3] = [300.0, -400.0, 255.0]
    else:
        w = rng.normal(0.0, 1.0, shape)
    return Kernel(w, (2, 2), (1, 2, 0, 1), (3, 9, 8), (4, 5, 3), crop=(8, 7))


def _run_pairs(k: Kernel, data: np.ndarray, cases: list[tuple[int, int]], fixed: bool,
               tmp: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each ``(weight_exp, delay)``: the recorded ``a_out`` of ``PlanConv`` and of Lava's own synapse on
    the expanded matrix (``Sparse``, ``DelaySparse`` with an added delay), all in one Lava run."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.sparse.process import DelaySparse, Sparse

    from neuromoco.deploy.targets.lava.processes import MODELS, PlanConv, Recorder

    tag = "fixed_pt" if fixed else "floating_pt"
    steps = data.shape[1]
    n_out = W * k.shape[0]
    m = sp.kron(sp.identity(W), k.matrix(), format="csr")
    m.eliminate_zeros()
    if fixed:
        m = m.astype(np.int32)
    src = RingBuffer(data=data)
    ours: dict = {}
    paths = []
    for i, (exp, delay) in enumerate(cases):
        kw = {"num_message_bits": 24, **({"weight_exp": exp, "num_weight_bits": 8} if fixed else {})}
        conv = PlanConv(kernel=k, tiles=W, delay=delay, **kw)
        if delay:
            delays = sp.csr_matrix((np.full(m.nnz, delay), m.indices, m.indptr), shape=m.shape)
            lava = DelaySparse(weights=m, delays=delays, max_delay=delay, **kw)
        else:
            lava = Sparse(weights=m, **kw)
        pair = []
        for j, proc in enumerate((conv, lava)):
            path = tmp / f"{i}_{j}.dat"
            np.memmap(path, dtype=np.float64, mode="w+", shape=(steps, n_out)).flush()
            rec = Recorder(n=n_out, steps=steps, path=str(path), mode="full", groups=W)
            src.s_out.connect(proc.s_in)
            proc.a_out.connect(rec.s_in)
            ours[rec] = MODELS[tag][Recorder]
            pair.append(path)
        ours[conv] = MODELS[tag][PlanConv]
        paths.append(pair)
    src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=tag, exception_proc_model_map=ours))
    src.stop()
    return [tuple(np.array(np.memmap(p, dtype=np.float64, mode="r", shape=(steps, n_out))) for p in pair)
            for pair in paths]


def test_plan_conv_fixed_is_bit_exact_with_lava_sparse_on_the_expanded_matrix(tmp_path):
    rng = np.random.default_rng(0)
    k = _kernel(rng, fixed=True)
    data = np.zeros((W * k.shape[1], STEPS + 3), dtype=np.int32)
    data[:, :STEPS] = rng.integers(-(1 << 21), 1 << 21, (W * k.shape[1], STEPS))  # sums wrap at 2**31
    data[:, 1] = rng.integers(-3, 4, W * k.shape[1])  # a step of small values: no wrap, shifts visible
    cases = [(exp, delay) for exp in (-2, 0, 2) for delay in (0, 2)]
    runs = _run_pairs(k, data, cases, True, tmp_path)
    for (exp, delay), (conv, lava) in zip(cases, runs, strict=True):
        np.testing.assert_array_equal(conv, lava, err_msg=f"weight_exp {exp}, delay {delay}")
        assert np.count_nonzero(conv[:1 + delay]) == 0  # nothing before the first input arrives
        assert np.abs(conv[1 + delay]).max() > 1 << 24  # wide values are kept (no 24-bit clamp)
    # mixed sign: clipped to [-256, 255], the lowest bit dropped (rounding down), as Lava's Sparse does
    small = data[:, 1].astype(np.float64).reshape(W, -1)
    kept = k.with_weight(np.floor(np.clip(k.weight, -256, 255) / 2) * 2)
    conv0 = runs[cases.index((0, 0))][0]
    np.testing.assert_array_equal(conv0[2], kept.apply(torch.from_numpy(small)).numpy().ravel())
    assert not np.array_equal(conv0[2], k.apply(torch.from_numpy(small)).numpy().ravel())


def test_plan_conv_float_equals_lava_sparse(tmp_path):
    rng = np.random.default_rng(1)
    k = _kernel(rng, fixed=False)
    data = np.zeros((W * k.shape[1], STEPS + 3))
    data[:, :STEPS] = rng.normal(0.0, 2.0, (W * k.shape[1], STEPS))
    cases = [(0, 0), (0, 2)]
    # torch's OpenMP threads in use before Lava forks its processes: PlanConv's torch calls must not hang there
    torch.nn.functional.conv2d(torch.ones(2, 3, 20, 20, dtype=torch.float64),
                               torch.ones(4, 3, 3, 3, dtype=torch.float64))
    for (_, delay), (conv, lava) in zip(cases, _run_pairs(k, data, cases, False, tmp_path), strict=True):
        np.testing.assert_allclose(conv, lava, rtol=0, atol=1e-9, err_msg=f"delay {delay}")
        assert np.abs(conv[1 + delay:1 + delay + STEPS]).min() > 0


# ---------------------------------------------------------------------------------- whole networks

def _layer(name: str, shape: tuple[int, ...], delay: int, conns: list[Conn], fixed: bool) -> Layer:
    """A stock LIF layer (Lava's ``LIFReset``): uniform decays and threshold, no bias, reset to zero."""
    n = int(np.prod(shape))

    def full(v: float) -> np.ndarray:
        return np.full(n, v)

    du, dv, vth = (1024.0, 512.0, 2000.0) if fixed else (0.3, 0.1, 1.0)
    zero = np.zeros(n)
    return Layer(name, "LIF", shape, delay, True, full(du), full(dv), full(vth), zero, zero, zero, zero, zero, zero,
                 conns)


def conv_plan(fixed: bool, seed: int = 3) -> LavaPlan:
    """input [2, 7, 6] -> 3x3 conv -> l1 [3, 7, 6] -> 3x3 stride 2 on a 6x6 crop -> l2 [4, 3, 3] -> matrix
    -> readout [3], and a skip input -> 2x2 stride 2 -> l2 one step late (an added delay)."""
    rng = np.random.default_rng(seed)

    def weight(shape: tuple[int, ...], lo: int, hi: int, gain: float) -> np.ndarray:
        return rng.integers(lo, hi, shape).astype(np.float64) if fixed else rng.normal(0.0, gain, shape)

    k1 = Kernel(weight((3, 2, 3, 3), -60, 120, 0.5), (1, 1), (1, 1, 1, 1), (2, 7, 6), (3, 7, 6))
    k2 = Kernel(weight((4, 3, 3, 3), -40, 90, 0.6), (2, 2), (0, 1, 1, 0), (3, 7, 6), (4, 3, 3), crop=(6, 6))
    k3 = Kernel(weight((4, 2, 2, 2), -50, 80, 0.4), (2, 2), (0, 0, 0, 0), (2, 7, 6), (4, 3, 3), crop=(6, 6))
    ro = sp.csr_matrix(weight((3, 36), -100, 100, 1.0))
    exp = (lambda e: e) if fixed else (lambda e: 0)
    l1 = _layer("l1", (3, 7, 6), 1, [Conn("input", None, weight_exp=exp(0), kernel=k1)], fixed)
    l2 = _layer("l2", (4, 3, 3), 2, [Conn("l1", None, weight_exp=exp(1), kernel=k2),
                                     Conn("input", None, weight_exp=exp(-1), delay=1, kernel=k3)], fixed)
    readout = Readout(3, (3,), conns=[Conn("l2", ro, weight_exp=exp(0))])
    return LavaPlan("fixed" if fixed else "float", 0.001, "input", (2, 7, 6), [l1, l2], readout, input_max=20.0)


def expanded(plan: LavaPlan) -> LavaPlan:
    """The plan with every kernel connection as its matrix (same source, exponent and delay)."""
    def mat(c: Conn) -> Conn:
        return Conn(c.source, c.expanded(), c.recurrent, c.weight_exp, delay=c.delay)

    layers = [replace(lay, conns=[mat(c) for c in lay.conns]) for lay in plan.layers]
    return replace(plan, layers=layers, readout=replace(plan.readout, conns=[mat(c) for c in plan.readout.conns]))


@pytest.mark.parametrize("fixed", [False, True], ids=["float", "fixed"])
def test_kernel_plan_on_lava_equals_the_expanded_plan(fixed):
    from neuromoco.deploy.targets.lava.runner import LavaRunner

    plan = conv_plan(fixed)
    assert [connection_process(c.weights, 2, c.delay) for c in plan.layers[1].conns] == ["Conv", "Conv"]
    frames = np.random.default_rng(4).poisson(1.0, size=(8, 3, 2, 7, 6)).astype(np.float64)
    res = LavaRunner(plan, tile=2, record_spikes=True).run(frames)  # 3 samples: 2 side by side, then 1
    ref = LavaRunner(expanded(plan), tile=2, record_spikes=True).run(frames)
    for name in ("l1", "l2"):
        rate = ref.spikes[name].mean()
        assert 0.1 < rate < 0.6, (name, rate)  # neither silent nor saturated: the comparison has teeth
        np.testing.assert_array_equal(res.spikes[name], ref.spikes[name], err_msg=name)
    if fixed:
        np.testing.assert_array_equal(res.output, ref.output)
    else:
        np.testing.assert_allclose(res.output, ref.output, rtol=0, atol=1e-9)
    assert np.abs(ref.output).max() > 0
