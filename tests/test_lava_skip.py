"""Skip connections on Lava: the short path of a layer's inputs is padded by a synaptic delay (``DelaySparse``).

Every Lava connection delivers one step late, so in ``input -> l1 -> l2 -> l3`` with a skip ``l1 -> l3``
the skip arrives one step before ``l2``'s spikes; the plan gives that connection one step of added delay
and both meet ``l3`` at the step the reference computes it. The delays are computed by hand here on small
graphs, then an Affine-LIF MLP with a skip across two neuron layers (and the Input read by a deep layer,
and a readout fed by two depths) runs exactly like the float64 reference on lava-float, and
reference-fixed reproduces lava-fixed spike for spike on it. A recurrence through two neuron layers
cannot be fixed by *adding* delay and stays refused.
"""

from __future__ import annotations

import itertools
import json

import h5py
import nir
import numpy as np
import pytest
import torch

from neuromoco.deploy.graph import check_graph, normalize_graph, structure
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.loihi.layout import MAX_EXTRA_DELAY, layout
from neuromoco.deploy.loihi.plan_io import load_plan, save_plan
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.errors import UserError

DT = 1e-3
EYE = np.eye(4)


def _lif(n: int, tau: float = 0.004, vth: float = 0.4) -> nir.LIF:
    return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, vth))


def _lay(nodes: dict, edges: list[tuple[str, str]]):
    g = normalize_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    check_graph(g)
    return layout(g, structure(g))


# ------------------------------------------------------------------------------------ delays by hand


def test_delays_of_skips_around_one_and_two_layers_and_an_early_input():
    """input -> a1 -> l1 -> a2 -> l2 -> a3 -> l3 -> a4 -> l4 -> output, plus l1 -> a3 (skip around l2),
    l1 -> a4 (skip around l2 and l3), input -> a2 (the Input read one layer deep), l3 onto itself."""
    nodes = {"input": nir.Input(input_type=np.array([4])), "output": nir.Output(output_type=np.array([4]))}
    for i in range(1, 5):
        nodes[f"a{i}"] = nir.Affine(weight=EYE, bias=np.zeros(4))
        nodes[f"l{i}"] = _lif(4)
    nodes["rec"] = nir.Linear(weight=EYE)
    edges = [("input", "a1"), ("a1", "l1"), ("l1", "a2"), ("a2", "l2"), ("l2", "a3"), ("a3", "l3"),
             ("l3", "a4"), ("a4", "l4"), ("l4", "output"),
             ("l1", "a3"), ("l1", "a4"), ("input", "a2"), ("l3", "rec"), ("rec", "l3")]
    lay = _lay(nodes, edges)
    # d(X) = max over paths of d(S) + 1 - r; Lava adds one step per connection
    assert lay.delays == {"input": 0, "l1": 1, "l2": 2, "l3": 3, "l4": 4, "output": 5}
    # added delay k = d(X) - (d(S) + 1 - r): the skip around one layer waits 1 step, around two 2 steps
    assert lay.extra == {
        "l1": {("input", 0): 0},
        "l2": {("l1", 0): 0, ("input", 0): 1},
        "l3": {("l2", 0): 0, ("l1", 0): 1, ("l3", 1): 0},
        "l4": {("l3", 0): 0, ("l1", 0): 2},
        "output": {("l4", 0): 0},
    }


def test_readout_fed_from_two_depths_is_padded():
    nodes = {"input": nir.Input(input_type=np.array([4])), "a1": nir.Linear(weight=EYE), "l1": _lif(4),
             "a2": nir.Linear(weight=EYE), "l2": _lif(4), "r1": nir.Linear(weight=EYE),
             "r2": nir.Affine(weight=EYE, bias=np.ones(4)), "output": nir.Output(output_type=np.array([4]))}
    edges = [("input", "a1"), ("a1", "l1"), ("l1", "a2"), ("a2", "l2"), ("l2", "r2"), ("l1", "r1"),
             ("r1", "r2"), ("r2", "output")]
    lay = _lay(nodes, edges)
    assert lay.delays["output"] == 3
    assert lay.extra["output"] == {("l2", 0): 0, ("l1", 0): 1}


def test_two_layer_loop_is_refused_and_the_delay_limit_holds():
    nodes = {"input": nir.Input(input_type=np.array([4])), "a": nir.Linear(weight=EYE), "l1": _lif(4),
             "b": nir.Linear(weight=EYE), "l2": _lif(4), "back": nir.Linear(weight=EYE),
             "output": nir.Output(output_type=np.array([4]))}
    loop = [("input", "a"), ("a", "l1"), ("l1", "b"), ("b", "l2"), ("l2", "back"), ("back", "l1"),
            ("l2", "output")]
    with pytest.raises(UserError, match=r"'l1' receives a recurrent input from 'l2' that loops through more "
                                        r"than one neuron layer.*takes 2 steps"):
        _lay(nodes, loop)
    # a skip around MAX_EXTRA_DELAY + 1 layers needs more than Loihi 2's 6-bit synaptic delay
    n = MAX_EXTRA_DELAY + 3  # l0 -> l{n-1} skips l1 .. l{n-2}
    deep = {"input": nir.Input(input_type=np.array([4])), "output": nir.Output(output_type=np.array([4]))}
    chain = ["input"]
    for i in range(n):
        deep[f"w{i}"], deep[f"l{i}"] = nir.Linear(weight=EYE), _lif(4)
        chain += [f"w{i}", f"l{i}"]
    deep["skip"] = nir.Linear(weight=EYE)
    edges = [*itertools.pairwise(chain), (chain[-1], "output"), ("l0", "skip"), ("skip", f"l{n - 1}")]
    with pytest.raises(UserError, match=r"at most 63 steps"):
        _lay(deep, edges)


# --------------------------------------------------------------------------------------- on Lava


def skip_mlp(seed: int = 1) -> nir.NIRGraph:
    """input(6) -> fc1 -> l1 -> fc2 -> l2 -> fc3 -> l3 -> fc4 -> l4 -> ro -> output, with l1 -> fc4 (a skip
    across l2 and l3), input -> in2 -> l2 (the Input one layer deep) and l2 -> ro2 -> output (the readout fed
    from two depths); several edges into one node add up."""
    rng = np.random.default_rng(seed)

    def aff(n_out: int, n_in: int, gain: float) -> nir.Affine:
        return nir.Affine(weight=rng.normal(0, gain / np.sqrt(n_in), size=(n_out, n_in)),
                          bias=np.full(n_out, 0.02))

    nodes = {"input": nir.Input(input_type=np.array([6])),
             "fc1": aff(10, 6, 1.5), "l1": _lif(10), "fc2": aff(10, 10, 1.5), "in2": aff(10, 6, 1.0),
             "l2": _lif(10),
             "fc3": aff(10, 10, 1.5), "l3": _lif(10), "fc4": aff(8, 10, 1.5), "l4": _lif(8),
             "ro": aff(3, 8, 1.0), "ro2": nir.Linear(weight=rng.normal(0, 0.3, size=(3, 10))),
             "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fc1"), ("fc1", "l1"), ("l1", "fc2"), ("fc2", "l2"), ("l2", "fc3"), ("fc3", "l3"),
             ("l3", "fc4"), ("fc4", "l4"), ("l4", "ro"), ("ro", "output"),
             ("l1", "fc4"), ("input", "in2"), ("in2", "l2"), ("l2", "ro2"), ("ro2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


T, B = 12, 3


@pytest.fixture(scope="module")
def mlp():
    g = skip_mlp()
    frames = np.random.default_rng(5).poisson(0.5, size=(T, B, 6)).astype(np.float32)
    ref = ReferenceExecutor(g, DT, dtype=torch.float64, record_spikes=True, input_shape=[6]).run(frames)
    for name in ("l1", "l2", "l3", "l4"):  # a silent layer would make the comparison vacuous
        assert ref.spike_counts[name].sum() > 0, name
    return g, frames, ref


def test_plan_carries_the_added_delays_and_old_files_load_with_zero(mlp, tmp_path):
    g, _, _ = mlp
    plan = compile_graph(g, DT, precision="fixed", input_shape=[6], weight_bits=16)
    added = {(lay.name, c.source): c.delay for lay in plan.layers for c in lay.conns}
    assert added == {("l1", "input"): 0, ("l2", "l1"): 0, ("l2", "input"): 1, ("l3", "l2"): 0,
                     ("l4", "l3"): 0, ("l4", "l1"): 2}  # 16-bit weights: both synapses of a pair delayed
    assert {c.source: c.delay for c in plan.readout.conns} == {"l4": 0, "l2": 2}
    assert plan.layer("l4").delay == 4 and plan.readout.delay == 5
    rep = {c["source"]: c["added_delay"] for c in plan.report["layers"][3]["connections"]}
    assert rep == {"l3": 0, "l1": 2}
    assert {c["process"] for c in plan.report["layers"][3]["connections"] if c["added_delay"]} == {"DelaySparse"}
    path = save_plan(plan, tmp_path / "p.h5")
    back = load_plan(path)
    assert [[c.delay for c in lay.conns] for lay in back.layers] == [[c.delay for c in lay.conns]
                                                                     for lay in plan.layers]
    # a plan file written before connections carried a delay: every connection loads with 0
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs["meta"])
        for entry in [*meta["layers"], meta["readout"]]:
            for cm in entry["conns"]:
                cm.pop("delay")
        f.attrs["meta"] = json.dumps(meta)
    old = load_plan(path)
    assert all(c.delay == 0 for lay in old.layers for c in lay.conns)
    # ... which for this graph is inconsistent, and the emulator says so instead of running it misaligned
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

    with pytest.raises(UserError, match=r"inconsistent Lava plan: the connection 'input' -> 'l2' arrives at "
                                        r"delay 1"):
        FixedPointExecutor(old)


def test_skip_mlp_on_lava_float_equals_reference(mlp):
    from neuromoco.deploy.targets.lava.runner import LavaRunner

    g, frames, ref = mlp
    plan = compile_graph(g, DT, precision="float", input_shape=[6])
    res = LavaRunner(plan, tile=2, record_spikes=True).run(frames)  # 2 groups in time, 2 samples side by side
    assert set(res.spikes) == set(ref.spikes)
    for name, s in ref.spikes.items():
        np.testing.assert_array_equal(res.spikes[name], s, err_msg=name)
    np.testing.assert_allclose(res.output, ref.output, rtol=1e-9, atol=1e-9)


def test_skip_mlp_reference_fixed_equals_lava_fixed(mlp):
    from neuromoco.deploy.targets.lava.runner import LavaRunner
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

    g, frames, ref = mlp
    plan = compile_graph(g, DT, precision="fixed", input_shape=[6])
    lava = LavaRunner(plan, tile=2, record_spikes=True).run(frames)
    ours = FixedPointExecutor(plan, record_spikes=True).run(frames)
    assert set(ours.spikes) == set(lava.spikes) == set(ref.spikes)
    for name in lava.spikes:
        np.testing.assert_array_equal(ours.spikes[name], lava.spikes[name], err_msg=name)
        assert lava.spike_counts[name].sum() > 0, name
    np.testing.assert_array_equal(ours.output, lava.output)


def test_delayed_connections_are_lava_delay_sparse_with_their_delay(mlp, tmp_path):
    """The padded connections are Lava's ``DelaySparse`` (stacked weights cached, see processes.py)."""
    from neuromoco.deploy.targets.lava.network import build_network

    g, _, _ = mlp
    plan = compile_graph(g, DT, precision="fixed", input_shape=[6])
    net = build_network(plan, np.zeros((6, T + plan.depth), dtype=np.int32), T, 1, T + plan.depth, tmp_path,
                        False, "fixed_pt")
    delayed = {p: m for p, m in net.models.items() if type(p).__name__ == "DelaySparse"}
    # input -> l2 (+1), l1 -> l4 (+2), l2 -> readout (+2); every piece of a split connection alike
    assert {int(p.proc_params["max_delay"]) for p in delayed} == {1, 2} and len(delayed) >= 3
    assert {m.__name__ for m in delayed.values()} == {"PyDelaySparseStaticFixed"}
