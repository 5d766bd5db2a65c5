"""Round trip: a PyTorch/Norse model, exported to NIR and run by the reference executor, spikes identically.

Every architecture is run layer by layer in PyTorch (float32, CPU) on random event-count frames; the
exported graph is written with ``nir.write``, read back with ``neuromoco.deploy.graph.load_graph`` and traced by
the reference executor; every layer's output must be *equal* (not close) at every step and sample.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.train.export import ExportError, export_model, fold_batchnorm, layer_names, to_nir
from neuromoco.train.models.layers import SumPool2d
from neuromoco.train.models.layers import TimeDistributed as TD
from neuromoco.train.models.neurons import LIF, LIFConfig

DT = 1e-3
CFG = LIFConfig(tau_mem=2e-3, dt=DT, v_threshold=0.5)


def _frames(shape: tuple[int, ...], t: int = 8, b: int = 4, rate: float = 0.5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((t, b, *shape), rate), generator=g)


def _calibrate(modules: list[nn.Module], x: torch.Tensor, low: float = 0.03, high: float = 0.5) -> None:
    """Rescale the weights before each LIF until every spiking layer fires at a moderate rate on ``x``."""
    for _ in range(60):
        h, last, changed = x, None, False
        with torch.no_grad():
            for m in modules:
                inner = m.module if isinstance(m, TD) else m
                if isinstance(inner, nn.Sequential):
                    inner = [c for c in inner if isinstance(c, (nn.Conv2d, nn.Linear))][-1]
                if isinstance(inner, (nn.Conv2d, nn.Linear)):
                    last = inner
                h = m(h)
                if isinstance(m, LIF):
                    rate = float(h.mean())
                    if rate < low or rate > high:
                        last.weight.mul_(1.5 if rate < low else 0.7)
                        changed = True
                        break
        if not changed:
            return
    raise AssertionError("could not calibrate the test model")


def _layer_outputs(modules: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    outs = []
    with torch.no_grad():
        for m in modules:
            x = m(x)
            outs.append(x)
    return outs


def _roundtrip(modules: list[nn.Module], input_shape: list[int], tmp_path, x: torch.Tensor, dt: float = DT) -> dict:
    """Export, reload, trace; compare every layer with the (BN-folded) PyTorch model. Returns per-layer stats."""
    for m in modules:
        m.eval()
    _calibrate(modules, x)
    folded = fold_batchnorm(modules)
    names = layer_names(modules, input_shape, dt)
    assert len(names) == len(folded)
    path = export_model(modules, tmp_path, input_shape=input_shape, time_steps=x.shape[0], dt=dt,
                        dataset={"name": "random"}, class_names=[], accuracy={}, model_name="test")
    graph = load_graph(path, input_shape=input_shape)
    trace = ReferenceExecutor(graph, dt).trace(x)
    torch_outs = _layer_outputs(folded, x)
    stats = {}
    for name, ref in zip(names, torch_outs, strict=True):
        got = trace[name]
        assert got.shape == ref.shape, name
        assert torch.equal(got, ref), f"{name}: {(got != ref).sum().item()} of {ref.numel()} values differ"
        if name.startswith("lif"):
            stats[name] = float(ref.mean())
    # every spiking layer fires, and none saturates: equality is a real test
    for name, rate in stats.items():
        assert 0.0 < rate < 0.9, f"{name} fires at rate {rate}"
    # the RunResult view agrees with the trace
    res = ReferenceExecutor(graph, dt).run(x)
    for name in stats:
        np.testing.assert_array_equal(res.spike_counts[name], trace[name].reshape(*x.shape[:2], -1).sum(-1).numpy())
    assert res.output.shape == (x.shape[0], x.shape[1], int(np.prod(torch_outs[-1].shape[2:])))
    np.testing.assert_array_equal(res.output, torch_outs[-1].reshape(*x.shape[:2], -1).double().numpy())
    return stats


def test_conv_net_with_avg_and_sum_pooling(tmp_path):
    torch.manual_seed(1)
    modules = [TD(nn.Conv2d(2, 8, 3, padding=1)), LIF(CFG), TD(nn.AvgPool2d(2)),
               TD(nn.Conv2d(8, 16, 3, padding=1)), LIF(CFG), TD(SumPool2d(2)),
               TD(nn.Flatten()), TD(nn.Linear(16 * 4 * 4, 10)), LIF(CFG)]
    stats = _roundtrip(modules, [2, 16, 16], tmp_path, _frames((2, 16, 16)))
    assert set(stats) == {"lif1", "lif2", "lif3"}


def test_conv_without_bias_stride_dilation_groups(tmp_path):
    torch.manual_seed(2)
    modules = [TD(nn.Conv2d(2, 8, 3, padding=1, bias=False)), LIF(CFG),
               TD(nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False)), LIF(CFG),
               TD(nn.Conv2d(8, 12, 3, padding=2, dilation=2)), LIF(CFG),
               TD(nn.Conv2d(12, 12, 4, padding="same", bias=False)), LIF(CFG),
               TD(nn.Flatten()), TD(nn.Linear(12 * 8 * 8, 6, bias=False)), LIF(CFG)]
    _roundtrip(modules, [2, 16, 16], tmp_path, _frames((2, 16, 16)))
    graph = to_nir(modules, [2, 16, 16], DT)
    assert isinstance(graph.nodes["fc1"], nir.Linear)  # no bias: Linear, not Affine
    assert graph.nodes["conv4"].padding == "same"  # even kernel: asymmetric 'same' kept as the string
    assert tuple(graph.nodes["conv2"].stride) == (2, 2) and graph.nodes["conv2"].groups == 2
    assert all(graph.nodes[f"conv{i}"].input_shape is not None for i in range(1, 5))


@pytest.mark.parametrize("tau,dt,v_th", [(2e-3, 1e-3, 0.5), (3e-3, 7e-4, 0.3), (1.7e-2, 1e-3, 0.25),
                                         (5e-3, 1e-3, 1.0)])
def test_mlp(tmp_path, tau, dt, v_th):
    """Several time constants and steps whose ratio is not a round number: k is formed exactly like Norse's."""
    torch.manual_seed(3)
    cfg = LIFConfig(tau_mem=tau, dt=dt, v_threshold=v_th)
    modules = [TD(nn.Flatten()), TD(nn.Linear(2 * 8 * 8, 64)), LIF(cfg), TD(nn.Dropout(0.5)),
               TD(nn.Linear(64, 32)), LIF(cfg), TD(nn.Identity()), TD(nn.Linear(32, 5)), LIF(cfg)]
    _roundtrip(modules, [2, 8, 8], tmp_path, _frames((2, 8, 8), t=12), dt=dt)


def test_sequential_inside_time_distributed(tmp_path):
    torch.manual_seed(4)
    modules = [TD(nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6))), LIF(CFG),
               TD(nn.Sequential(SumPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 4))), LIF(CFG)]
    _roundtrip(modules, [2, 8, 8], tmp_path, _frames((2, 8, 8)))


def _bn_model() -> list[nn.Module]:
    return [TD(nn.Conv2d(2, 8, 3, padding=1, bias=False)), TD(nn.BatchNorm2d(8)), LIF(CFG), TD(nn.AvgPool2d(2)),
            TD(nn.Conv2d(8, 16, 3, padding=1)), TD(nn.BatchNorm2d(16)), LIF(CFG), TD(SumPool2d(2)),
            TD(nn.Flatten()), TD(nn.Linear(16 * 4 * 4, 32)), TD(nn.BatchNorm1d(32)), LIF(CFG),
            TD(nn.Linear(32, 4))]


def test_batchnorm_trained_then_folded(tmp_path, capsys):
    torch.manual_seed(5)
    modules = _bn_model()
    model = nn.Sequential(*modules)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for step in range(6):  # a few real steps: running statistics and weights move away from their init
        x = _frames((2, 16, 16), b=8, seed=100 + step)
        y = torch.randint(0, 4, (8,))
        loss = nn.functional.cross_entropy(model(x).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    bn = modules[1].module
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))

    x = _frames((2, 16, 16), b=6, seed=7)
    _calibrate(modules, x)
    before = [p.detach().clone() for p in model.parameters()]
    stats = _roundtrip(modules, [2, 16, 16], tmp_path, x)  # exact against the folded PyTorch model
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), \
        "folding must not touch the model"
    graph = load_graph(tmp_path / "model.nir")
    assert not any(type(n).__name__.startswith("BatchNorm") for n in graph.nodes.values())

    # the unfolded model differs from the folded one only by float rounding: report how often spikes agree
    unfolded = _layer_outputs(modules, x)
    folded = _layer_outputs(fold_batchnorm(modules), x)
    lif_u = [o for m, o in zip(modules, unfolded, strict=True) if isinstance(m, LIF)]
    lif_f = [o for m, o in zip(fold_batchnorm(modules), folded, strict=True) if isinstance(m, LIF)]
    agreement = {f"lif{i + 1}": float((a == b).float().mean())
                 for i, (a, b) in enumerate(zip(lif_u, lif_f, strict=True))}
    with capsys.disabled():
        print(f"\n[BN fold] spike agreement unfolded vs folded model per layer: {agreement}; rates {stats}")
    assert all(v >= 0.99 for v in agreement.values()), agreement


def test_model_card_written(tmp_path):
    torch.manual_seed(6)
    modules = [TD(nn.Flatten()), TD(nn.Linear(8, 3)), LIF(CFG)]
    path = export_model(modules, tmp_path, input_shape=[2, 2, 2], time_steps=5, dt=DT,
                        dataset={"name": "embedded", "split": "test", "preprocessing": {"bins": 5}},
                        class_names=["a", "b", "c"], accuracy={"test": 0.5}, model_name="tiny")
    assert path == tmp_path / "model.nir"
    card = ModelCard.load(ModelCard.beside(path))
    assert card.input_shape == [2, 2, 2] and card.time_steps == 5 and card.dt == DT
    assert card.class_names == ["a", "b", "c"] and card.accuracy == {"test": 0.5} and card.model == "tiny"
    assert card.version
    raw = json.loads((tmp_path / "model_card.json").read_text())
    assert raw["dataset"]["preprocessing"] == {"bins": 5}
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_lif_parameters_in_seconds():
    """tau is the membrane time constant in seconds (Norse 1.1's to_nir writes dt/tau_mem_inv)."""
    cfg = LIFConfig(tau_mem=5e-3, dt=1e-3, v_threshold=0.7, v_reset=0.0)
    graph = to_nir([TD(nn.Linear(4, 3)), LIF(cfg)], [4], cfg.dt)
    lif = graph.nodes["lif1"]
    np.testing.assert_allclose(lif.tau, np.full(3, 5e-3), rtol=1e-6)
    assert lif.tau.dtype == np.float64
    np.testing.assert_array_equal(lif.r, np.ones(3))
    np.testing.assert_array_equal(lif.v_threshold, np.full(3, np.float32(0.7)))
    np.testing.assert_array_equal(lif.v_leak, np.zeros(3))
    # the reference forms dt * float32(1/tau) exactly as Norse forms dt * tau_mem_inv
    inv = np.float32(LIF(cfg).p.tau_mem_inv.item())
    assert np.float32(1.0 / lif.tau[0]) == inv


@pytest.mark.parametrize("bad,message", [
    ([TD(nn.Linear(4, 3)), TD(nn.ReLU())], "no NIR mapping for ReLU (module 1.module)"),
    ([TD(nn.Linear(4, 3)), nn.MaxPool1d(2)], "no NIR mapping for MaxPool1d (module 1)"),
    ([TD(nn.BatchNorm1d(4)), TD(nn.Linear(4, 3))], "cannot fold BatchNorm1d (module 0.module)"),
    ([TD(nn.Linear(4, 3)), LIF(LIFConfig(dt=2e-3))], "dt=0.002"),
    ([TD(nn.Linear(4, 3)), LIF(LIFConfig(v_leak=0.1))], "v_leak"),
    ([TD(nn.Flatten(0))], "batch"),
])
def test_unmappable_modules_are_named(bad, message):
    with pytest.raises(ExportError) as info:
        to_nir(bad, [4], DT)
    assert message in str(info.value)


def test_batchnorm_after_pooling_is_refused():
    modules = [TD(nn.Conv2d(1, 2, 3)), TD(nn.AvgPool2d(2)), TD(nn.BatchNorm2d(2))]
    with pytest.raises(ExportError, match=r"cannot fold BatchNorm2d \(module 2.module\): it follows AvgPool2d"):
        to_nir(modules, [1, 8, 8], DT)


def test_avgpool_variants_without_nir_form_are_refused():
    for pool, what in [(nn.AvgPool2d(2, ceil_mode=True), "ceil_mode"),
                       (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
                       (nn.AvgPool2d(3, 1, padding=1, count_include_pad=False), "count_include_pad")]:
        with pytest.raises(ExportError, match=what):
            to_nir([TD(pool)], [1, 8, 8], DT)


def test_deployable_mlp_for_one_dimensional_sensors(tmp_path):
    """The registry's flat model (flatten, linear-BN-LIF x2, readout) exports exactly, BatchNorm folded."""
    from neuromoco.train.models.registry import build_classifier

    torch.manual_seed(3)
    model = build_classifier("mlp2-256", (2, 1, 20), 4)
    modules = model.deploy_modules()
    x = _frames((2, 1, 20), b=5, seed=11)
    stats = _roundtrip(modules, [2, 1, 20], tmp_path, x)
    assert set(stats) == {"lif1", "lif2"}
