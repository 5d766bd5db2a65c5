"""The training API (issue 24): an encoder of one's own — plain PyTorch, Norse, snnTorch through the adapter,
SpikingJelly where it imports — pre-trains with NeuroMoCo (its loss falls) and then fine-tunes, through the
fit loop the commands run; ``load_dataset`` frames every source; ``export_nir`` of a model of the project's
layers deploys; checkpoints of own encoders are refused where the registry would have to rebuild them."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import SyntheticFrames, synthetic_dataset
from torch import nn
from torch.utils.data import Dataset

from neuromoco.errors import UserError
from neuromoco.train import api
from neuromoco.train.api.runs import step_lines
from neuromoco.train.models.layers import SumPool2d, TimeDistributed
from neuromoco.train.models.neurons import LIF

SIZE, T, CLASSES = 12, 3, 4
FAST = {"batch_size": 16, "progress": False, "log_every": 1, "seed": 0, "device": "cpu"}
MOCO = api.MoCoOptions(queue_size=16, momentum=0.9)


@pytest.fixture(scope="module")
def synth():
    with synthetic_dataset("synth-api", n_train=64, n_test=16, size=SIZE, num_classes=CLASSES) as name:
        yield name


class Patterns(Dataset):
    """Two views of fixed random spike patterns, each view dropping 30 % of the spikes: a contrastive task a
    small encoder learns in a few steps (the views are told apart only by the pattern)."""

    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = (torch.rand(n, T, 2, SIZE, SIZE, generator=g) < 0.1).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        x = self.x[i]
        return (x * (torch.rand_like(x) > 0.3), x * (torch.rand_like(x) > 0.3)), 0


class PlainEncoder(nn.Module):
    """Plain PyTorch in multi-step form: [T, B, 2, H, W] -> [T, B, D], no feature_dim attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        y = torch.relu(self.bn(self.conv(x.flatten(0, 1))))
        return y.reshape(t, b, -1)


def deployable_encoder() -> nn.Sequential:
    """An encoder of the project's deployable layers, assembled by hand (not a registry model)."""
    return nn.Sequential(TimeDistributed(nn.Conv2d(2, 8, 3, padding=1, bias=False)),
                         TimeDistributed(nn.BatchNorm2d(8)), LIF(), TimeDistributed(SumPool2d(2)),
                         TimeDistributed(nn.Flatten()))


def norse_net() -> nn.Module:
    import norse.torch as nt

    cell = nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.as_tensor(500.0), v_th=torch.as_tensor(0.3)))
    return api.norse_encoder(nt.SequentialState(nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), cell,
                                                nn.Flatten()))


def snntorch_net() -> nn.Module:
    import snntorch as snn

    return api.snntorch_encoder(nn.Sequential(nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                              snn.Leaky(beta=0.5, init_hidden=True), nn.Flatten()))


#: SpikingJelly 2.0 declares a torchaudio built for another torch, so it is not in the venv: `make bench` puts it
#: (and loguru, all its activation_based modules need) --no-deps in benchmarks/.deps; used from there if present
SJ_DEPS = Path(__file__).resolve().parents[1] / "benchmarks" / ".deps"
SPIKINGJELLY = importlib.util.find_spec("spikingjelly") is not None or (SJ_DEPS / "spikingjelly").is_dir()


def spikingjelly_net() -> nn.Module:
    if importlib.util.find_spec("spikingjelly") is None:
        sys.path.append(str(SJ_DEPS))  # after the venv's packages: its torch stays the one imported
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(layer.Conv2d(2, 8, 3, stride=2, padding=1), layer.BatchNorm2d(8), neuron.LIFNode(),
                        layer.Flatten())
    functional.set_step_mode(net, "m")
    return api.spikingjelly_encoder(net)


ENCODERS = {
    "plain": PlainEncoder,
    "deployable": deployable_encoder,
    "norse": norse_net,
    "snntorch": snntorch_net,
    "spikingjelly": pytest.param(spikingjelly_net, marks=pytest.mark.skipif(
        not SPIKINGJELLY, reason="spikingjelly is not importable beside this torch: `make bench` puts it in "
                                 "benchmarks/.deps (docs/api.md)")),
}


@pytest.mark.parametrize("make", list(ENCODERS.values()), ids=list(ENCODERS))
def test_own_encoder_pretrains_with_a_falling_loss_then_finetunes(make, synth, tmp_path):
    torch.manual_seed(0)
    encoder = make()
    pre = api.pretrain(encoder, Patterns(), out=tmp_path / "pre", epochs=3, lr=1e-2, moco=MOCO, **FAST)
    losses = [r["loss"] for r in step_lines(pre.run_dir)]
    assert len(losses) == 12 and all(map(math.isfinite, losses))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    assert pre.encoder is encoder and [h["epoch"] for h in pre.history] == [1, 2, 3]
    ck = torch.load(pre.last_checkpoint, weights_only=True)
    assert ck["model"]["own"] and ck["model"]["name"].startswith("own:")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    ft = api.finetune(encoder, pre, synth, out=tmp_path / "ft", epochs=1, recipe=api.Recipe(), **FAST)
    assert ft.model.encoder is encoder and ft.history[0]["epoch"] == 1
    assert 0.0 <= ft.accuracy["last"]["top1"] <= 1.0 and ft.last_checkpoint.is_file()
    assert any(not torch.equal(before[k], v) for k, v in encoder.state_dict().items() if v.is_floating_point())


def test_resume_takes_the_encoder_again_and_a_registry_rebuild_is_refused(synth, tmp_path):
    run = dict(out=tmp_path / "pre", time_steps=T, moco=MOCO, **FAST)
    api.pretrain(PlainEncoder(), synth, epochs=1, **run)
    again = api.pretrain(PlainEncoder(), synth, epochs=2, resume=True, **run)
    assert [h["epoch"] for h in again.history] == [1, 2]
    with pytest.raises(UserError, match="resumes with the same encoder class"):
        api.pretrain("cnn3-34", synth, epochs=2, resume=True, **run)
    with pytest.raises(UserError, match="holds an encoder of one's own"):
        api.finetune(None, tmp_path / "pre", out=tmp_path / "ft", epochs=1, **FAST)
    from neuromoco.train.cli import main

    assert main(["finetune", "--pretrained", str(tmp_path / "pre"), "--out", str(tmp_path / "cli")]) == 2


def test_labelled_dataset_objects(tmp_path, capsys):
    train, test = SyntheticFrames(32, T, SIZE, 5, seed=1), SyntheticFrames(10, T, SIZE, 5, seed=2)
    res = api.supervised(PlainEncoder(), (train, test), out=tmp_path / "sup", epochs=1, **FAST)
    assert res.model.head.out_features == 5 and res.accuracy["test_samples"] == 10 and res.accuracy["dataset"] is None
    err = capsys.readouterr().err
    assert res.nir is None and "not deployable (NIR export failed: no NIR mapping for PlainEncoder" in err
    ck = torch.load(res.last_checkpoint, weights_only=True)
    assert ck["data"]["class_names"] == ["0", "1", "2", "3", "4"] and ck["data"]["time_steps"] == T


def test_registry_model_by_name_and_linear_probe(synth, tmp_path):
    pre = api.pretrain("cnn3-34", synth, out=tmp_path / "pre", epochs=1, time_steps=T, moco=MOCO, **FAST)
    assert pre.encoder.feature_dim == 32 * 1 * 1
    lin = api.linear_probe(None, pre, out=tmp_path / "lin", epochs=2, **FAST)
    assert lin.nir is not None and lin.nir.is_file() and lin.accuracy["last"]["epoch"] == 2


def test_neuromoco_module_finds_the_feature_size_by_a_dry_run():
    enc = PlainEncoder()
    model = api.NeuroMoCo(enc, input_shape=[2, SIZE, SIZE], queue_size=16)
    assert model.feature_dim == 8 * 6 * 6 and model.encoder is enc
    x = torch.rand(T, 4, 2, SIZE, SIZE)
    loss, mets = model(x, x)
    assert loss.requires_grad and set(mets) >= {"acc", "pos_sim"}
    with pytest.raises(ValueError, match="feature_dim"):
        api.NeuroMoCo(PlainEncoder())


def test_defaults_are_the_commands():
    from neuromoco.train.commands import pretrain as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = vars(p.parse_args(["--out", "x"]))
    for f in dataclasses.fields(api.MoCoOptions):
        assert getattr(api.MoCoOptions(), f.name) == args[f.name], f.name
    import inspect

    sig = inspect.signature(api.pretrain).parameters
    assert [sig[k].default for k in ("epochs", "batch_size", "lr", "time_steps")] == [
        args["epochs"], args["batch_size"], args["lr"], args["time_steps"]]


def test_load_dataset_embedded_and_own_folder(tmp_path):
    ds = api.load_dataset("embedded", "test", time_steps=4, max_samples=3)
    x, y = ds[0]
    assert len(ds) == 3 and list(x.shape) == [4, 2, 34, 34] and x.dtype == torch.float32 and isinstance(y, int)
    (q, k), _ = api.load_dataset("embedded", "train", time_steps=2, views=2, max_samples=2)[0]
    assert q.shape == k.shape == (2, 2, 34, 34)
    from own_recordings import digit_events, write_npy

    for i, (ev, label) in enumerate(digit_events(per_class=2, classes=2)):
        folder = tmp_path / "rec" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        write_npy(folder / f"{i}.npy", ev)
    sensor = (34, 34, 2)
    ds = api.load_dataset(tmp_path / "rec", time_steps=3, sensor_size=list(sensor), root=tmp_path / "data",
                          transform=api.data.Compose((api.data.RandomHorizontalFlip(sensor),)))
    x, y = ds[0]
    assert list(x.shape) == [3, 2, 34, 34] and y in (0, 1)


def test_export_nir_of_own_deployable_model_deploys(synth, tmp_path):
    torch.manual_seed(0)
    encoder = deployable_encoder()
    ft = api.supervised(encoder, synth, out=tmp_path / "sup", epochs=1, time_steps=T, **FAST)
    assert ft.nir is not None  # the fit loop's own export of a model of the project's layers
    res = api.export_nir(ft.model, [2, SIZE, SIZE], out=tmp_path / "nir", time_steps=T, class_names=list("abcd"))
    assert res.path is not None and res.card.class_names == list("abcd") and "lif1" in res.graph.nodes
    assert res.card.dt == pytest.approx(1e-3)
    from neuromoco.deploy.cli import main as deploy

    test = api.load_dataset(synth, "test", time_steps=T, max_samples=8)
    frames = torch.stack([test[i][0] for i in range(8)])
    labels = np.array([test[i][1] for i in range(8)])
    np.savez(tmp_path / "frames.npz", frames=frames.numpy(), labels=labels)
    assert deploy(["run", str(res.path), "--target", "reference", "--dataset", str(tmp_path / "frames.npz"),
                   "--out", str(tmp_path / "dep"), "--no-progress"]) == 0
    with torch.no_grad():
        mine = ft.model.eval()(frames.transpose(0, 1)).argmax(-1).numpy()
    got = np.load(tmp_path / "dep" / "predictions.npz")
    assert np.array_equal(got["predictions"], mine), (got["predictions"], mine)
    with pytest.raises(UserError, match="NIR export failed"):
        api.export_nir(PlainEncoder(), [2, SIZE, SIZE])
    assert json.loads((tmp_path / "nir" / "model_card.json").read_text())["time_steps"] == T


def test_qat_from_python_records_the_grid_as_the_flag_does(synth, tmp_path):
    """``qat="loihi"`` is ``--qat loihi``: the run's config, checkpoint and model card state the grid; a linear probe
    refuses it (it trains no encoder weight)."""
    res = api.supervised("cnn3-34", synth, out=tmp_path / "q", epochs=1, time_steps=T, qat="loihi", **FAST)
    assert json.loads((res.run_dir / "config.json").read_text())["qat"]["scheme"] == "loihi"
    assert torch.load(res.last_checkpoint, weights_only=True)["qat"]["min_weight_exp"] == 0
    card = json.loads((res.run_dir / "model_card.json").read_text())
    assert card["extra"]["qat"]["weight_bits"] == 8
    with pytest.raises(UserError, match="trains no encoder weight"):
        api.linear_probe(None, res.last_checkpoint, out=tmp_path / "lin", qat="loihi", **FAST)
