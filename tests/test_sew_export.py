"""Deployable SEW-ResNets: the residual model exported to NIR spikes exactly like the PyTorch model.

The ADD connection is written as two (or more) edges into the next node, never as a node of its own. The
round trip runs the small registered model (``sew-resnet8-34``) with random BatchNorm statistics through
``to_nir`` -> ``nir.write`` -> ``load_graph`` -> the reference executor and compares every node's output, at
every step and sample, with the model's *own forward* (BatchNorm folded into the convs, see
``fold_model``): equal, not close. Also: ``deploy inspect`` on the graph, and the energy profile of a node
with two incoming edges counted by hand.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neuromoco.deploy.cli import main as deploy_main
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.metrics.activity import Activity
from neuromoco.deploy.metrics.synops import profile
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.deploy.result import RunResult
from neuromoco.train.export import ExportError, export_model, fold_model, plan_graph, to_nir
from neuromoco.train.models.layers import Residual, TimeDistributed
from neuromoco.train.models.neurons import LIF, LIFConfig
from neuromoco.train.models.registry import build_classifier

DT = 1e-3
SHAPE = [2, 34, 34]


def _frames(t: int = 6, b: int = 3, rate: float = 0.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((t, b, *SHAPE), rate), generator=g)


def _resolve(modules: list[nn.Module], path: str) -> nn.Module:
    """The module at ``path`` ("1.0.body.0.module.0", as the exporter names it) in a deploy module list."""
    first, *rest = path.split(".")
    m = modules[int(first)]
    for part in rest:
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def _lif_rates(model: nn.Module, x: torch.Tensor) -> list[tuple[LIF, float]]:
    rates: list[tuple[LIF, float]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: rates.append((m, float(o.mean()))))
             for m in model.modules() if isinstance(m, LIF)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return rates


def _random_bn_and_calibrate(model: nn.Module, x: torch.Tensor, low: float = 0.03, high: float = 0.5) -> None:
    """Random evaluation statistics for every BatchNorm, then gammas scaled until every LIF fires moderately."""
    g = torch.Generator().manual_seed(3)
    before: dict[LIF, nn.BatchNorm2d] = {}
    bn = None
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            bn = m
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.7 + 0.8)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.3)
        elif isinstance(m, LIF):
            before[m] = bn  # the BatchNorm feeding this neuron layer (module order: conv, BN[, pool], LIF)
    model.eval()
    for _ in range(80):
        for lif, rate in _lif_rates(model, x):
            if not low <= rate <= high:
                with torch.no_grad():
                    before[lif].weight.mul_(1.4 if rate < low else 0.75)
                break
        else:
            return
    raise AssertionError("could not calibrate the test model")


@pytest.fixture(scope="module")
def sew_model():
    torch.manual_seed(0)
    model = build_classifier("sew-resnet8-34", SHAPE, 10)
    x = _frames()
    _random_bn_and_calibrate(model, x)
    return model.eval(), x


def test_graph_writes_every_add_as_edges_into_one_node(sew_model):
    model, _ = sew_model
    graph = to_nir(model.deploy_modules(), SHAPE, DT)
    kinds = {type(n) for n in graph.nodes.values()}
    assert kinds <= {nir.Input, nir.Conv2d, nir.SumPool2d, nir.LIF, nir.Flatten, nir.Affine, nir.Output}
    preds: dict[str, list[str]] = {}
    for a, b in graph.edges:
        preds.setdefault(b, []).append(a)
    multi = {n: p for n, p in preds.items() if len(p) > 1}
    # block 1 (identity shortcut): its output lif3 + the stem's lif1 feed block 2's conv and its shortcut conv;
    # block 2 (conv shortcut): lif5 + lif6 feed block 3's two convs; block 3: lif8 + lif9 feed the readout pool
    # (the stem has no pool: a 4x4 stride-2 conv feeds lif1 directly)
    assert multi == {"conv4": ["lif3", "lif1"], "conv6": ["lif3", "lif1"], "conv7": ["lif5", "lif6"],
                     "conv9": ["lif5", "lif6"], "pool1": ["lif8", "lif9"]}
    assert all(type(graph.nodes[n]) is not nir.LIF for n in multi)  # sums feed synapses, never a neuron directly
    assert not any(type(n).__name__.startswith("BatchNorm") for n in graph.nodes.values())


def test_round_trip_is_exact_at_every_layer_and_step(sew_model, tmp_path, capsys):
    model, x = sew_model
    modules = model.deploy_modules()
    path = export_model(modules, tmp_path, input_shape=SHAPE, time_steps=x.shape[0], dt=DT,
                        dataset={"name": "random"}, class_names=[str(i) for i in range(10)], accuracy={},
                        model_name="sew-resnet8-34")
    graph = load_graph(path, input_shape=SHAPE)
    trace = ReferenceExecutor(graph, DT).trace(x)

    # the model's own forward, BatchNorm folded, every exported layer's output recorded by a hook
    folded = fold_model(model)
    fmods = folded.deploy_modules()
    plan, _ = plan_graph(modules, SHAPE, DT)
    T, B = x.shape[:2]
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for p in plan:
        m = _resolve(fmods, p.layer.path)
        flat = p.layer.distributed and not isinstance(m, nn.Linear)  # time-distributed: [T*B, ...]
        hooks.append(m.register_forward_hook(
            lambda m, i, o, name=p.name, flat=flat: seen.__setitem__(name, o.reshape(T, B, *o.shape[1:]) if flat
                                                                      else o)))
    with torch.no_grad():
        logits = folded(x)
    for h in hooks:
        h.remove()
    assert set(seen) == {p.name for p in plan}
    rates = {}
    for p in plan:
        ref, got = seen[p.name], trace[p.name]
        assert got.shape == ref.shape, p.name
        assert torch.equal(got, ref), f"{p.name}: {(got != ref).sum().item()} of {ref.numel()} values differ"
        if p.name.startswith("lif"):
            rates[p.name] = float(ref.mean())
    assert len(rates) == 9 and all(0.0 < r < 0.9 for r in rates.values()), rates
    res = ReferenceExecutor(graph, DT).run(x)
    np.testing.assert_array_equal(res.output, seen["fc1"].double().numpy())
    torch.testing.assert_close(torch.as_tensor(res.output).mean(0).float(), logits, rtol=0, atol=1e-6)

    # and the unfolded model in evaluation mode: BatchNorm folding changes float rounding only
    unfolded = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: unfolded.__setitem__(k, o))
             for k, m in enumerate(mm for mm in model.modules() if isinstance(mm, LIF))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    lif_nodes = [p.name for p in plan if p.name.startswith("lif")]
    agreement = {n: float((unfolded[k] == trace[n]).float().mean()) for k, n in enumerate(lif_nodes)}
    with capsys.disabled():
        print(f"\n[SEW round trip] exact vs folded model; spike agreement vs unfolded {agreement}; rates {rates}")
    assert all(v >= 0.99 for v in agreement.values()), agreement


def test_deploy_inspect_lists_the_shortcut_edges(sew_model, tmp_path, capsys):
    model, _ = sew_model
    path = export_model(model.deploy_modules(), tmp_path, input_shape=SHAPE, time_steps=4, dt=DT,
                        dataset={"name": "random"}, class_names=[], accuracy={}, model_name="sew-resnet8-34")
    capsys.readouterr()
    assert deploy_main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "lif1 -> conv4" in out and "lif3 -> conv4" in out and "lif9 -> pool1" in out
    assert "conv4 <- lif3 + lif1" in out and "pool1 <- lif8 + lif9" in out


def test_the_big_model_exports_with_global_sum_pooling_and_one_stem_conv():
    model = build_classifier("sew-resnet18-128", [2, 32, 32], 11).eval()
    graph = to_nir(model.deploy_modules(), [2, 32, 32], DT)
    assert sum(isinstance(n, nir.LIF) for n in graph.nodes.values()) == 1 + 8 * 2 + 3  # stem, blocks, shortcuts
    assert any(isinstance(n, nir.SumPool2d) for n in graph.nodes.values())
    assert not any(isinstance(n, nir.AvgPool2d) for n in graph.nodes.values())
    stem = graph.nodes["conv1"]
    assert stem.weight.shape[2:] == (9, 9) and tuple(np.atleast_1d(stem.stride)) in ((4,), (4, 4))
    assert graph.nodes["output"].output_type["output"].tolist() == [11]


def test_residual_export_errors_are_named():
    cfg = LIFConfig()
    with pytest.raises(ExportError, match="adds a tensor to itself"):
        to_nir([TimeDistributed(nn.Flatten()), Residual(nn.Identity())], [2, 2, 2], DT)
    bad = [TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)), LIF(cfg),
           Residual(nn.Sequential(TimeDistributed(nn.Conv2d(4, 4, 3, stride=2, padding=1)), LIF(cfg)))]
    with pytest.raises(ExportError, match="different shapes"):
        to_nir(bad, [2, 8, 8], DT)
    from neuromoco.train.export import flatten_modules

    with pytest.raises(ExportError, match="branches"):
        flatten_modules([TimeDistributed(nn.Conv2d(2, 2, 1)), LIF(cfg), Residual(nn.Sequential(
            TimeDistributed(nn.Conv2d(2, 2, 1)), LIF(cfg)))])


# ---------------------------------------------------------------------------------- energy of an ADD
def _lif(shape):
    return nir.LIF(tau=np.full(shape, 0.01), r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.ones(shape))


def _conv(cout: int) -> nir.Conv2d:
    return nir.Conv2d(input_shape=(3, 3), weight=np.ones((cout, 1, 3, 3)), stride=1, padding=1, dilation=1,
                      groups=1, bias=np.zeros(cout))


def test_synaptic_operations_of_a_node_with_two_inputs_add_up_by_hand():
    """input [1,3,3] -> conv1 -> lif1 -> conv2 -> lif2; conv3 reads lif1 + lif2 (two edges) -> lif3 [2,3,3]."""
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 3, 3])}),
        "conv1": _conv(1), "lif1": _lif((1, 3, 3)),
        "conv2": _conv(1), "lif2": _lif((1, 3, 3)),
        "conv3": _conv(2), "lif3": _lif((2, 3, 3)),
        "output": nir.Output(output_type={"output": np.array([2, 3, 3])}),
    }, edges=[("input", "conv1"), ("conv1", "lif1"), ("lif1", "conv2"), ("conv2", "lif2"), ("lif2", "conv3"),
              ("lif1", "conv3"), ("conv3", "lif3"), ("lif3", "output")])
    T, B = 2, 1
    frames = np.zeros((T, B, 1, 3, 3), dtype=np.float32)
    frames[0, 0, 0, 1, 1] = 1  # one input event at the centre
    s1 = np.zeros((T, B, 1, 3, 3), dtype=np.uint8)
    s1[0, 0, 0, 0, 0] = s1[1, 0, 0, 1, 1] = 1  # lif1: a corner and the centre
    s2 = np.zeros((T, B, 1, 3, 3), dtype=np.uint8)
    s2[1, 0, 0, 0, 1] = 1  # lif2: an edge position
    s3 = np.zeros((T, B, 2, 3, 3), dtype=np.uint8)
    res = RunResult(output=np.zeros((T, B, 18)),
                    spike_counts={k: v.reshape(T, B, -1).sum(-1)
                                  for k, v in (("lif1", s1), ("lif2", s2), ("lif3", s3))},
                    spikes={"lif1": s1, "lif2": s2, "lif3": s3})
    act = Activity()
    act.update(res, frames)
    prof = profile(graph, act, [1, 3, 3])
    rows = {r["layer"]: r for r in prof["layers"]}
    assert set(rows) == {"conv1", "conv2", "conv3<-lif1", "conv3<-lif2"}
    # 3x3 kernel, padding 1 on 3 positions: a position is under r = [2, 3, 2] outputs per axis;
    # fan-out = out channels * r[i] * r[j]: corner 4, edge 6, centre 9 per output channel
    assert rows["conv1"]["synops_per_inference"] == 9  # the centre event, one output channel
    assert rows["conv2"]["synops_per_inference"] == 4 + 9  # lif1's corner and centre spikes
    assert rows["conv3<-lif1"]["synops_per_inference"] == 2 * (4 + 9)
    assert rows["conv3<-lif2"]["synops_per_inference"] == 2 * 6
    # the ADD node's synaptic operations are the sum over both inputs; its MACs and neurons are counted once
    add = [r for r in prof["layers"] if r["sink"] == "lif3"]
    assert sum(r["synops_per_inference"] for r in add) == 2 * (4 + 9) + 2 * 6
    assert sum(r["connections"] for r in add) == 2 * 2 * (2 + 3 + 2) ** 2
    assert sum(r["ann_macs"] for r in add) == 2 * 9 * 9  # 18 outputs x 9 taps, once, not once per edge
    assert sum(r["neuron_updates_per_inference"] for r in add) == 18 * T
    t = prof["per_inference"]
    assert t["synops"] == 9 + 13 + 26 + 12
    assert t["ann_macs"] == 81 + 81 + 162 and t["neuron_updates"] == (9 + 9 + 18) * T


# ---------------------------------------------------------------------------------- the CLI, end to end
def test_quick_pretrain_finetune_export_and_deploy(tmp_path):
    """NeuroMoCo on the residual model: pretrain -> finetune -> model.nir -> ``deploy run --target reference``."""
    import json

    from synthetic import SyntheticFrames, synthetic_dataset

    from neuromoco.train.cli import main as train_main

    common = ["--batch-size", "8", "--seed", "1", "--device", "cpu"]
    with synthetic_dataset("synth-sew", n_train=24, n_test=8, size=16, num_classes=3):
        assert train_main(["pretrain", "--dataset", "synth-sew", "--model", "sew-resnet8-34", "--epochs", "1",
                           "--time-steps", "3", "--queue-size", "16", "--out", str(tmp_path / "pre"), *common]) == 0
        assert train_main(["finetune", "--pretrained", str(tmp_path / "pre" / "last.pt"), "--epochs", "1",
                           "--out", str(tmp_path / "ft"), *common]) == 0
        frames = SyntheticFrames(8, 3, 16, 3, 7919, 1)
        xs, ys = zip(*(frames[i] for i in range(len(frames))), strict=True)
    card = json.loads((tmp_path / "ft" / "model_card.json").read_text())
    assert card["model"] == "sew-resnet8-34" and card["input_shape"] == [2, 16, 16]
    graph = load_graph(tmp_path / "ft" / "model.nir")
    assert sum(1 for _, b in graph.edges if b.startswith("conv")) > sum(
        1 for n in graph.nodes if n.startswith("conv"))  # shortcut edges: more edges into convs than convs
    npz = tmp_path / "frames.npz"
    np.savez(npz, frames=np.stack([np.asarray(x) for x in xs]), labels=np.asarray(ys))
    out = tmp_path / "run"
    assert deploy_main(["run", str(tmp_path / "ft" / "model.nir"), "--target", "reference", "--dataset", str(npz),
                        "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 8


def test_lava_runs_the_residual_model_exactly_and_refuses_nothing(sew_model):
    """lava-float equals the float64 reference spike for spike on the exported sew-resnet8-34 (its shortcuts are
    padded with synaptic delays), and the Lava layout of sew-resnet18-128 compiles without a refusal."""
    from neuromoco.deploy.loihi.compile import compile_graph
    from neuromoco.deploy.targets.lava.target import LavaTarget

    model, x = sew_model
    graph = load_graph_from(to_nir(model.deploy_modules(), SHAPE, DT))
    frames = x[:, :2].numpy().astype(np.float32)
    ref = ReferenceExecutor(graph, DT, dtype=torch.float64, record_spikes=True, input_shape=SHAPE).run(frames)
    from neuromoco.deploy.card import ModelCard

    card = ModelCard(input_shape=list(SHAPE), time_steps=frames.shape[0], dt=DT)
    res = LavaTarget().runner(graph, card, precision="float", tile=2, record_spikes=True).run(frames)
    for name, s in ref.spikes.items():
        np.testing.assert_array_equal(res.spikes[name], s, err_msg=name)
    plan = compile_graph(graph, DT, precision="float", input_shape=list(SHAPE))
    assert any(c.delay > 0 for lay in plan.layers for c in lay.conns)  # the shortcuts are delayed
    big = build_classifier("sew-resnet18-128", [2, 32, 32], 11).eval()
    big_plan = compile_graph(load_graph_from(to_nir(big.deploy_modules(), [2, 32, 32], DT)), DT, precision="float",
                             input_shape=[2, 32, 32])
    assert any(c.delay > 0 for lay in big_plan.layers for c in lay.conns)


def load_graph_from(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A written-and-read graph, as `deploy` sees it (normalized and checked)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.nir"
        nir.write(path, graph)
        return load_graph(path)
