"""The Lava compatibility hook: Lava imports on Python 3.11 and a tiny network matches numpy exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neuromoco.deploy.targets.lava.compat import import_lava, mutable_defaults_as_factories


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.items: list[int] = []


def _make_class(module: str) -> type:
    """A class like Lava's: an unhashable instance as a field default, defined in ``module``."""
    return type("C", (), {"__module__": module, "__annotations__": {"x": _Unhashable}, "x": _Unhashable()})


def test_hook_turns_unhashable_default_into_factory_only_inside_block():
    with pytest.raises(ValueError, match="mutable default"):
        dataclasses.dataclass(_make_class("lava.fake"))
    with mutable_defaults_as_factories("lava"):
        cls = dataclasses.dataclass(_make_class("lava.fake"))
    a, b = cls(), cls()
    assert isinstance(a.x, _Unhashable) and a.x is not b.x  # one fresh default per instance
    with pytest.raises(ValueError):  # outside the block the stock behaviour is back
        dataclasses.dataclass(_make_class("lava.fake"))


def test_hook_leaves_other_modules_alone():
    with mutable_defaults_as_factories("lava"), pytest.raises(ValueError):
        dataclasses.dataclass(_make_class("other.mod"))


def _numpy_cuba(weights: np.ndarray, inp: np.ndarray, du: float, dv: float, vth: float,
                bias: np.ndarray) -> np.ndarray:
    """Loihi CUBA LIF: u = (1-du)u + W s ; v = (1-dv)v + u + bias ; spike v > vth ; reset to 0."""
    u = np.zeros(weights.shape[0])
    v = np.zeros(weights.shape[0])
    out = np.zeros((inp.shape[0], weights.shape[0]), dtype=bool)
    for t, s in enumerate(inp):
        u = u * (1 - du) + weights @ s
        v = v * (1 - dv) + u + bias
        out[t] = v > vth
        v[out[t]] = 0
    return out


@pytest.mark.parametrize("select_tag", ["floating_pt", "fixed_pt"])
def test_small_lava_network_matches_numpy(select_tag: str):
    """input -> Dense -> LIF on Lava's simulator, spikes equal a numpy run of the same equations.

    Lava's Dense sends at step t what it accumulated at step t-1 (a one-step synaptic delay that avoids
    deadlock in recurrent graphs), so the numpy run sees the input one step late.
    """
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer as SpikeSource
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    rng = np.random.default_rng(0)
    steps, n_in, n_out = 60, 8, 5
    inp = (rng.random((steps, n_in)) < 0.3)
    if select_tag == "fixed_pt":  # integer weights, decays on Loihi's 12-bit scale, integer threshold
        # Lava's bit-accurate Dense drops the lowest bit of mixed-sign 8-bit weights: use even mantissas
        weights = 2 * rng.integers(-30, 60, size=(n_out, n_in)).astype(float)
        du_i, dv_i, vth_mant, bias = 1024, 512, 200, np.zeros(n_out)
        lif = LIF(shape=(n_out,), du=du_i, dv=dv_i, vth=vth_mant, bias_mant=bias)
    else:
        weights = rng.normal(0.5, 0.6, size=(n_out, n_in))
        du, dv, vth, bias = 0.25, 0.1, 2.0, np.full(n_out, 0.05)
        lif = LIF(shape=(n_out,), du=du, dv=dv, vth=vth, bias_mant=bias)
    src = SpikeSource(data=inp.T.astype(int))
    dense = Dense(weights=weights)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    mon = Monitor()
    mon.probe(lif.s_out, steps)
    lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag=select_tag))
    spikes = next(iter(mon.get_data().values()))["s_out"].astype(bool)
    lif.stop()

    delayed = np.concatenate([np.zeros_like(inp[:1]), inp[:-1]])
    if select_tag == "fixed_pt":
        expected = _numpy_fixed_cuba(weights.astype(int), delayed, du_i, dv_i, vth_mant)
    else:
        expected = _numpy_cuba(weights, delayed, du, dv, vth, bias)
    assert spikes.shape == expected.shape
    assert spikes.sum() > 0, "the test network should spike"
    np.testing.assert_array_equal(spikes.sum(0), expected.sum(0))
    np.testing.assert_array_equal(spikes, expected)


def _numpy_fixed_cuba(weights: np.ndarray, inp: np.ndarray, du: int, dv: int, vth_mant: int) -> np.ndarray:
    """Loihi 2 fixed point: 12-bit decays, activation shifted by 6, threshold shifted by 6."""
    u = np.zeros(weights.shape[0], dtype=np.int64)
    v = np.zeros(weights.shape[0], dtype=np.int64)
    vth = vth_mant << 6
    out = np.zeros((inp.shape[0], weights.shape[0]), dtype=bool)

    def decay(x: np.ndarray, d: int) -> np.ndarray:
        y = x * (4096 - d)
        return np.sign(y) * (np.abs(y) >> 12)

    for t, s in enumerate(inp):
        u = decay(u, du) + ((weights @ s.astype(np.int64)) << 6)
        v = decay(v, dv) + u
        out[t] = v > vth
        v[out[t]] = 0
    return out


def test_lava_imports_after_multiprocessing_was_touched():
    """A tqdm bar (or any lock) fixes the start method before Lava asks for 'fork': still importable."""
    code = ("import tqdm; tqdm.tqdm(total=1, disable=True).close(); import multiprocessing as mp; mp.RLock();"
            "from neuromoco.deploy.targets.lava.compat import import_lava;"
            "import_lava('lava.magma.runtime.message_infrastructure.multiprocessing'); print('ok')")
    import subprocess
    import sys

    proc = subprocess.run(check=False, args=[sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
