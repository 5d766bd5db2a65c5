"""Quantization-aware training onto the Loihi 2 grid (``--qat loihi``): the fake-quant grid is the Lava plan's
(the same rule, from the plan), a QAT-trained model exports with weights on the plan's grid, and its
fixed-point agreement with the float reference is no worse than without QAT."""

from __future__ import annotations

import copy
import json

import nir
import numpy as np
import pytest
import torch
from synthetic import SyntheticFrames, synthetic_dataset

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.loihi.compile import compile_graph
from neuromoco.deploy.targets import get_target
from neuromoco.errors import UserError
from neuromoco.train.cli import main
from neuromoco.train.engine.checkpoint import load_checkpoint
from neuromoco.train.export import to_nir
from neuromoco.train.models.registry import build_classifier
from neuromoco.train.qat import LoihiQAT, QATConfig, project_state_dict

SHAPE = [2, 12, 12]
COMMON = ["--batch-size", "8", "--seed", "1"]


def _errors(plan) -> dict[str, float]:
    out = {f"{lay['name']} <- {src}": c["rel_weight_error"] for lay in plan.report["layers"]
           for src, c in lay["quantization"]["connections"].items()}
    out.update({f"readout <- {src}": c["rel_weight_error"]
                for src, c in plan.report["readout"]["quantization"]["connections"].items()})
    return out


def _plan(graph, scale: str, bits: int, dt: float = 1e-3, shape=SHAPE, sign_split: bool = False):
    return compile_graph(graph, dt, precision="fixed", input_shape=list(shape), per_neuron_scale=scale == "neuron",
                         weight_bits=bits, sign_split=sign_split)


def _random_model(seed: int = 0, keep: float = 0.3) -> torch.nn.Module:
    """cnn3-34 on 12x12 with random BatchNorm statistics; sparse kernels keep the 24-bit state bound from
    lowering any scale (the case QAT reproduces exactly)."""
    torch.manual_seed(seed)
    m = build_classifier("cnn3-34", SHAPE, 4)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.mul_((torch.rand_like(mod.weight) < keep).float())
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.5, 2.0)
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.weight.uniform_(0.5, 1.5)
    return m.eval()


@pytest.mark.parametrize("scale", ["neuron", "layer"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("keep", [0.3, 1.0])
def test_the_fake_quant_grid_is_the_plans_grid(scale, bits, keep):
    """keep=1.0: dense kernels, where the 24-bit state bound lowers the scales of lif1 and lif3 (a scale that
    depends on the row's own weights, which the projection iterates onto)."""
    model = _random_model(keep=keep)
    cfg = QATConfig(weight_bits=bits, scale=scale)
    plain = _errors(_plan(to_nir(model.deploy_modules(), SHAPE, 1e-3), scale, bits))
    assert max(plain.values()) > 1e-5  # unprojected float weights do not lie on the grid
    projected = copy.deepcopy(model)
    projected.load_state_dict(project_state_dict(model, cfg, SHAPE))
    qat = LoihiQAT(copy.deepcopy(projected), cfg, SHAPE)
    qat.update_grid()
    assert qat.report["limited_rows"] == 0
    plan = _plan(to_nir(projected.deploy_modules(), SHAPE, 1e-3), scale, bits)
    errs = _errors(plan)
    assert len(errs) == 4 and max(errs.values()) < 1e-6, errs
    # the folded biases too: each neuron's membrane bias is a 13-bit mantissa and 3-bit exponent exactly
    assert max(lay["quantization"]["bias_abs_error_volts"] for lay in plan.report["layers"]) < 1e-6
    if bits == 8:  # the Lava target's default sign split holds the trained mixed-sign grid exactly as well
        split = _errors(_plan(to_nir(projected.deploy_modules(), SHAPE, 1e-3), scale, bits, sign_split=True))
        assert max(split.values()) < 1e-6, split
    # the forward pass is the exported network on the grid: the same logits as the projected model's folded graph
    x = (torch.rand(3, 2, *SHAPE) < 0.2).float()
    with torch.no_grad():
        from neuromoco.train.export import fold_batchnorm

        folded = torch.nn.Sequential(*fold_batchnorm(projected.deploy_modules()))(x).mean(0)
        torch.testing.assert_close(qat(x), folded, rtol=1e-5, atol=1e-5)


def _agreement(run_dir, frames: np.ndarray, scale: str) -> tuple[float, dict[str, float]]:
    graph = nir.read(run_dir / "model.nir")
    card = ModelCard.load(run_dir / "model_card.json")
    ref_t, ref_o = get_target("reference")
    fix_t, fix_o = get_target("reference-fixed")
    ref = ref_t.runner(graph, card, ref_o).run(frames).predictions
    fix = fix_t.runner(graph, card, fix_o, scale=scale).run(frames).predictions
    plan = compile_graph(_unlifted(graph), card.dt, precision="fixed", input_shape=card.input_shape,
                         per_neuron_scale=scale == "neuron")
    return float(np.mean(ref == fix)), _errors(plan)


def _unlifted(graph):
    """``graph`` with every LIF threshold back at the model's 1.0 (a QAT export lifts them off the grid by a
    third of the voltage unit; where the state bound holds a layer's scale, that moves its float scale, not
    its integers: test_a_qat_export_lifts_thresholds_off_the_grid_without_changing_the_plans_integers)."""
    graph = copy.deepcopy(graph)
    for node in graph.nodes.values():
        if isinstance(node, nir.LIF):
            node.v_threshold = np.ones_like(np.asarray(node.v_threshold))
    return graph


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A short pre-training, then the same fine-tuning of it with and without QAT (per-neuron scales)."""
    root = tmp_path_factory.mktemp("qat")
    with synthetic_dataset("synth-qat", n_train=48, n_test=64, size=12, num_classes=4):
        assert main(["pretrain", "--dataset", "synth-qat", "--epochs", "1", "--time-steps", "3", "--queue-size",
                     "16", "--out", str(root / "pre"), *COMMON]) == 0
        base = ["finetune", "--pretrained", str(root / "pre" / "last.pt"), "--epochs", "2", *COMMON]
        assert main([*base, "--out", str(root / "plain")]) == 0
        assert main([*base, "--qat", "loihi", "--out", str(root / "qat")]) == 0
        frames = np.stack([SyntheticFrames(64, 3, 12, 4, 7919)[i][0].numpy() for i in range(64)], axis=1)
        yield root, frames


def test_qat_run_exports_weights_on_the_plans_grid(runs):
    root, frames = runs
    card = json.loads((root / "qat" / "model_card.json").read_text())
    assert card["extra"]["qat"]["scale"] == "neuron" and card["extra"]["qat"]["weight_bits"] == 8
    ck = load_checkpoint(root / "qat" / "last.pt")
    assert ck["qat"]["scheme"] == "loihi"
    cfg = json.loads((root / "qat" / "config.json").read_text())
    assert cfg["qat"]["scale"] == "neuron" and cfg["args"]["qat"] == "loihi"
    agree_qat, errs_qat = _agreement(root / "qat", frames, "neuron")
    agree_plain, errs_plain = _agreement(root / "plain", frames, "neuron")
    # every layer, lif3 included (288 inputs per neuron: the 24-bit state bound lowers its scales)
    assert max(errs_qat.values()) < 1e-6, errs_qat
    assert min(errs_plain.values()) > 1e-4
    assert agree_qat >= agree_plain


def test_qat_options_must_match_on_resume(runs, tmp_path, capsys):
    root, _ = runs
    with synthetic_dataset("synth-qat", n_train=48, n_test=64, size=12, num_classes=4):
        base = ["finetune", "--pretrained", str(root / "pre" / "last.pt"), "--epochs", "3", *COMMON, "--out",
                str(root / "qat"), "--resume"]
        assert main(base) == 2 and "--qat" in capsys.readouterr().err
        assert main([*base, "--qat", "loihi"]) == 0


def test_train_export_of_a_qat_checkpoint_projects_onto_the_grid(runs, tmp_path):
    """`train export` of a QAT checkpoint writes the same on-grid weights (and card note) as the run did."""
    root, _ = runs
    out = tmp_path / "again"
    assert main(["export", "--checkpoint", str(root / "plain" / "last.pt"), "--out", str(tmp_path / "plain")]) == 0
    assert "qat" not in json.loads((tmp_path / "plain" / "model_card.json").read_text())["extra"]
    src = root / "qat"
    with synthetic_dataset("synth-qat", n_train=48, n_test=64, size=12, num_classes=4):
        assert main(["export", "--checkpoint", str(src / "last.pt"), "--out", str(out)]) == 0
    again, first = nir.read(out / "model.nir"), nir.read(src / "model.nir")
    for name, node in first.nodes.items():
        if hasattr(node, "weight"):
            np.testing.assert_array_equal(np.asarray(again.nodes[name].weight), np.asarray(node.weight), err_msg=name)
    assert json.loads((out / "model_card.json").read_text())["extra"]["qat"]["deploy_options"] == \
        ["scale=neuron", "weight_bits=8", "sign_split=false", "min_weight_exp=0"]


def test_a_qat_export_lifts_thresholds_off_the_grid_without_changing_the_plans_integers(runs, tmp_path):
    """Thresholds a third of the voltage unit above the grid: no float voltage ties with them, and the
    fixed-point plan (mantissas, exponents, thresholds, biases) is the one the unlifted graph compiles to."""
    from neuromoco.train.qat import THRESHOLD_MARGIN, same_integers

    root, _ = runs
    card = json.loads((root / "qat" / "model_card.json").read_text())
    assert "lif1, lif2, lif3" in card["extra"]["qat"]["threshold_margin"]
    lifted = nir.read(root / "qat" / "model.nir")
    a, b = _plan(lifted, "neuron", 8), _plan(_unlifted(lifted), "neuron", 8)
    assert same_integers(a, b)
    for lay in a.layers:
        margin = (np.asarray(lifted.nodes[lay.name].v_threshold, dtype=np.float64).reshape(-1) - 1.0) * 64 * lay.scale
        # a third of the unit 1 / (64 sigma), up to float32's rounding of the stored threshold
        assert np.all(np.abs(margin - THRESHOLD_MARGIN) < 0.1), (lay.name, margin.min(), margin.max())


def test_thresholds_are_lifted_layer_by_layer(runs, monkeypatch):
    """A layer whose plan integers a third would change takes the smaller margin, and one that no margin leaves
    unchanged keeps its threshold, while the others are lifted all the same (measured on the trained
    sew-resnet18-128: an all-or-nothing lift left every layer at the grid, and float ties with the threshold
    flipped spikes: reference-fixed agreement 0.990)."""
    from neuromoco.train.qat import QATConfig, lift_thresholds, thresholds

    root, _ = runs
    graph = _unlifted(nir.read(root / "qat" / "model.nir"))
    calls: dict[str, int] = {}
    real = thresholds.same_layer_integers

    def picky(x, y):  # lif2 refuses its first margin, lif3 every margin
        calls[x.name] = calls.get(x.name, 0) + 1
        if x.name == "lif3" or (x.name == "lif2" and calls[x.name] == 1):
            return False
        return real(x, y)

    monkeypatch.setattr(thresholds, "same_layer_integers", picky)
    graph, lifted = lift_thresholds(graph, QATConfig(), list(SHAPE), 1e-3)
    assert lifted == {"lif1": thresholds.THRESHOLD_MARGIN, "lif2": thresholds.MARGINS[1]}
    assert np.all(np.asarray(graph.nodes["lif3"].v_threshold) == 1.0)
    assert np.all(np.asarray(graph.nodes["lif1"].v_threshold) > 1.0)
    entry = QATConfig().card_entry(lifted)["threshold_margin"]
    assert "lif1 by 0.3333; lif2 by 0.04167" in entry


def test_deploy_takes_the_cards_qat_options_and_o_overrides_them(capsys):
    """A QAT card's ``deploy_options`` reach every target that declares the key, below ``-o``."""
    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.commands.common import card_option_items, with_card_options

    card = ModelCard(input_shape=[2, 12, 12], time_steps=3, dt=1e-3,
                     extra={"qat": {"deploy_options": ["scale=layer", "weight_bits=16"]}})
    got = card_option_items(card, ["lava-fixed", "reference-fixed", "onnx-int8"])
    assert got["lava-fixed"] == got["reference-fixed"] == {"scale": "layer", "weight_bits": "16"}
    assert got["onnx-int8"] == {}
    merged = with_card_options(card, {"lava-fixed": {"scale": "neuron"}, "onnx-int8": {}})
    assert merged == {"lava-fixed": {"scale": "neuron", "weight_bits": "16"}, "onnx-int8": {}}
    assert "weight_bits=16" in capsys.readouterr().out
    assert with_card_options(ModelCard(input_shape=[4], time_steps=1, dt=1e-3), {"lava": {}}) == {"lava": {}}


def test_deploy_export_of_a_qat_graph_compiles_the_grid_it_was_trained_for(runs, tmp_path, capsys):
    """`deploy export` of a QAT run's model.nir with ``scale=layer`` in its card compiles per-layer scales."""
    import shutil

    from neuromoco.deploy.cli import main as deploy_main

    root, _ = runs
    run = tmp_path / "run"
    shutil.copytree(root / "qat", run, ignore=shutil.ignore_patterns("*.pt"))
    card = json.loads((run / "model_card.json").read_text())
    card["extra"]["qat"]["deploy_options"] = ["scale=layer", "weight_bits=8", "sign_split=false"]
    (run / "model_card.json").write_text(json.dumps(card))
    assert deploy_main(["export", str(run / "model.nir"), "--target", "lava", "--precision", "fixed",
                        "--out", str(tmp_path / "lava")]) == 0
    assert "scale=layer" in capsys.readouterr().out
    report = json.loads((tmp_path / "lava" / "lava_export.json").read_text())
    scales = [(lay["quantization"]["scale_min"], lay["quantization"]["scale_max"]) for lay in report["layers"]]
    assert scales and all(lo == hi for lo, hi in scales), scales  # one scale per layer


def _random_sew(shape, seed: int = 0, name: str = "sew-resnet8-34") -> torch.nn.Module:
    """A SEW-ResNet with random BatchNorm statistics and offsets (every folded bias non-zero)."""
    torch.manual_seed(seed)
    m = build_classifier(name, list(shape), 4)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.5, 2.0)
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return m.eval()


@pytest.mark.parametrize("scale", ["neuron", "layer"])
@pytest.mark.parametrize("bits", [8, 16])
def test_a_residual_model_projects_onto_the_plans_grid_weights_and_biases(scale, bits):
    """SEW blocks: a conv read from two sources (the ADD) is two Lava connections on one grid; every
    connection, shortcuts included, and every neuron's bias lie on the plan's grid after the projection, and
    the QAT forward pass (the classifier's own, with quantized weights) is the projected model's."""
    shape = [2, 16, 16]
    model = _random_sew(shape)
    cfg = QATConfig(weight_bits=bits, scale=scale)
    plain = _plan(to_nir(model.deploy_modules(), shape, 1e-3), scale, bits, shape=shape)
    assert max(lay["quantization"]["bias_abs_error_volts"] for lay in plain.report["layers"]) > 1e-6
    projected = copy.deepcopy(model)
    projected.load_state_dict(project_state_dict(model, cfg, shape))
    plan = _plan(to_nir(projected.deploy_modules(), shape, 1e-3), scale, bits, shape=shape)
    errs = _errors(plan)
    assert len(errs) == 15 and sum("<- lif1" in k for k in errs) == 3, errs  # lif1 feeds conv2, conv4, conv6
    assert max(errs.values()) < 1e-6, errs
    assert max(lay["quantization"]["bias_abs_error_volts"] for lay in plan.report["layers"]) < 1e-6
    qat = LoihiQAT(copy.deepcopy(projected), cfg, shape)
    qat.update_grid()
    assert qat.report["limited_rows"] == 0 and qat.feeds["lif1"] == "conv1" and qat.feeds["output"] == "fc1"
    x = (torch.rand(3, 2, *shape) < 0.3).float()
    with torch.no_grad():
        torch.testing.assert_close(qat(x), projected(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,shape", [("sew-resnet18-128", [2, 16, 16]), ("cnn5-128", [2, 32, 32])])
def test_the_128x128_models_project_onto_the_plans_grid(name, shape):
    """The paper's deployable backbone (its stem one 9x9 stride-4 conv, global sum pooling) and cnn5-128 train
    onto the grid: after the projection every connection of the kernel plan is on it (at 16x16 and 32x32 for
    speed: the same layers as at 128x128, and at 16x16 the last stages' 3x3 kernels on 1x1 maps read their
    centre tap alone)."""
    model = _random_sew(shape, name=name)
    cfg = QATConfig()
    projected = copy.deepcopy(model)
    projected.load_state_dict(project_state_dict(model, cfg, shape))
    plan = _plan(to_nir(projected.deploy_modules(), shape, 1e-3), "neuron", 8, shape=shape)
    assert all(c.kernel is not None for lay in plan.layers for c in lay.conns)  # convolutions stay kernels
    errs = _errors(plan)
    assert max(errs.values()) < 1e-6, errs


def test_qat_gradients_reach_every_weight_and_batchnorm():
    model = _random_sew([2, 16, 16]).train()
    qat = LoihiQAT(model, QATConfig(), [2, 16, 16])
    qat.update_grid()
    qat((torch.rand(3, 2, 2, 16, 16) < 0.3).float()).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))  # mode restored


def test_qat_refuses_pooling_between_a_conv_and_its_neuron_layer_in_one_line():
    """A pool between a conv and its LIF sums weights of several positions: the grid would be on the sums."""
    from neuromoco.train.models.base import SpikingClassifier
    from neuromoco.train.models.sew_deployable import DeployableSEWResNet

    model = SpikingClassifier(DeployableSEWResNet((2, 20, 20), stem_kernel=3, stem_pool=2), 4)
    with pytest.raises(UserError, match="SumPool2d node pool1 lies between a weight layer and lif1"):
        LoihiQAT(model, QATConfig(), [2, 20, 20])
