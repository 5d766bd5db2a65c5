"""Every registered model on a tiny input: output shapes, per-step features, deployable module sequences."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuromoco.errors import UserError
from neuromoco.train.models.base import count_parameters
from neuromoco.train.models.registry import (
    ALIASES,
    MODELS,
    build_classifier,
    build_encoder,
    describe,
    get_spec,
)

TINY = {"cnn3-34": (2, 34, 34), "cnn5-128": (2, 32, 32), "mlp2-256": (2, 1, 20), "spikformer-2-256": (2, 32, 32),
        "sew-resnet18": (2, 32, 32), "sew-resnet8-34": (2, 20, 20), "sew-resnet18-128": (2, 32, 32)}


def test_registry_covers_the_architectures():
    assert set(MODELS) == set(TINY)
    assert {n for n, s in MODELS.items() if s.deployable} == {"cnn3-34", "cnn5-128", "mlp2-256", "sew-resnet8-34",
                                                              "sew-resnet18-128"}


@pytest.mark.parametrize("name", list(TINY))
def test_output_shapes_on_a_tiny_input(name):
    t, b = 2, 2
    model = build_classifier(name, TINY[name], num_classes=5)
    x = (torch.rand(t, b, *TINY[name]) < 0.3).float()
    feats = model.encoder(x)
    assert feats.shape == (t, b, model.encoder.feature_dim)
    logits = model(x)
    assert logits.shape == (b, 5) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["cnn3-34", "cnn5-128", "sew-resnet8-34", "sew-resnet18-128"])
def test_deploy_modules_compose_to_the_model(name):
    model = build_classifier(name, TINY[name], num_classes=4).eval()
    x = (torch.rand(3, 2, *TINY[name]) < 0.3).float() * 2
    with torch.no_grad():
        per_step = nn.Sequential(*model.deploy_modules())(x)
        assert per_step.shape == (3, 2, 4)
        assert torch.allclose(per_step.mean(0), model(x), atol=1e-6)
    allowed = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.Flatten, nn.AvgPool2d)
    from neuromoco.train.export import flatten_graph
    from neuromoco.train.models.layers import SumPool2d
    from neuromoco.train.models.neurons import LIF
    for layer in flatten_graph(model.deploy_modules())[0]:  # residual blocks opened into their branches
        assert isinstance(layer.module, (*allowed, SumPool2d, LIF)), type(layer.module)


def test_paper_backbones_have_the_published_sizes():
    assert count_parameters(build_encoder("spikformer-2-256")) == pytest.approx(2.57e6, rel=0.01)
    assert count_parameters(build_encoder("sew-resnet18")) == pytest.approx(11.17e6, rel=0.01)
    assert build_encoder("cnn3-34").feature_dim == 512 and count_parameters(build_encoder("cnn3-34")) < 20_000


def test_deployable_sew_resnets_sizes_and_features():
    small, big = build_encoder("sew-resnet8-34"), build_encoder("sew-resnet18-128")
    assert small.feature_dim == 256 and 50_000 < count_parameters(small) < 100_000
    assert big.feature_dim == 512 and count_parameters(big) == pytest.approx(11.17e6, rel=0.01)
    # the ResNet-18 layout: the training-only sew-resnet18's blocks; its 7x7 stem conv + 2x2 sum pool as one
    # 9x9 stride-4 conv (2 x 64 x (81 - 49) more weights)
    assert count_parameters(big) == count_parameters(build_encoder("sew-resnet18")) + 2 * 64 * (81 - 49)
    from neuromoco.train.models.layers import Residual
    assert sum(isinstance(m, Residual) for m in small.modules()) == 3
    assert sum(isinstance(m, Residual) and m.shortcut is None for m in big.modules()) == 5


def test_non_deployable_models_say_so():
    with pytest.raises(NotImplementedError, match="does not deploy"):
        build_classifier("sew-resnet18", (2, 32, 32), 3).deploy_modules()


def test_describe_and_unknown_names():
    rows = describe()
    assert [r["name"] for r in rows] == list(MODELS) and all(r["params"] > r["encoder_params"] for r in rows)
    with pytest.raises(UserError, match="unknown model"):
        get_spec("resnet50")
    with pytest.raises(UserError, match="too small"):
        build_encoder("cnn5-128", (2, 8, 8))


def test_earlier_names_are_aliases_of_the_deployable_cnns():
    assert ALIASES == {"vgg34": "cnn3-34", "vgg128": "cnn5-128"}
    assert get_spec("vgg34") is MODELS["cnn3-34"] and get_spec("vgg128") is MODELS["cnn5-128"]
    old, new = build_encoder("vgg34"), build_encoder("cnn3-34")
    assert old.state_dict().keys() == new.state_dict().keys() and count_parameters(old) == count_parameters(new)
    assert {r["name"]: r["aliases"] for r in describe()}["cnn5-128"] == ["vgg128"]
