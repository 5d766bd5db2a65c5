"""The fine-tuning recipe's options: backbone learning-rate scale, readout warm start (LP-FT), frozen BN statistics."""

from __future__ import annotations

import json

import pytest
import torch
from synthetic import synthetic_dataset

from neuromoco.train.cli import main
from neuromoco.train.engine import loops
from neuromoco.train.engine.checkpoint import load_checkpoint
from neuromoco.train.engine.classify import ENCODER_PREFIX

PRE_PREFIX = ENCODER_PREFIX["pretrain"]

COMMON = ["-T", "3", "--batch-size", "8", "--seed", "3", "--log-every", "1", "--no-export"]


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    with synthetic_dataset("synth-recipe", n_train=24, n_test=8, size=12, num_classes=3):
        assert main(["pretrain", "--dataset", "synth-recipe", "--epochs", "1", "--time-steps", "3", "--batch-size",
                     "8", "--queue-size", "16", "--seed", "3", "--out", str(root / "pre")]) == 0
        yield root / "pre" / "last.pt"


@pytest.fixture(autouse=True)
def _synthetic():
    with synthetic_dataset("synth-recipe", n_train=24, n_test=8, size=12, num_classes=3):
        yield


def _encoder(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _finetune(pre, out, *extra: str) -> int:
    return main(["finetune", "--pretrained", str(pre), "--epochs", "2", *COMMON, "--out", str(out), *extra])


def test_help_declares_each_knob_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = capsys.readouterr().out
    for flag in ("--backbone-lr-scale", "--head-warmup-epochs", "--head-warmup-lr", "--freeze-bn", "--no-freeze-bn"):
        assert flag in text
    with pytest.raises(SystemExit):
        main(["supervised", "--help"])
    assert "--backbone-lr-scale" not in capsys.readouterr().out  # no pre-trained encoder: no recipe


def test_zero_backbone_lr_and_frozen_bn_keep_the_encoder_exactly(pre, tmp_path, capsys):
    assert _finetune(pre, tmp_path / "ft", "--backbone-lr-scale", "0", "--freeze-bn",
                     "--head-warmup-epochs", "3") == 0
    assert "readout warm start: 3 epochs" in capsys.readouterr().err
    before = _encoder(load_checkpoint(pre)["state_dict"], PRE_PREFIX)
    after = _encoder(load_checkpoint(tmp_path / "ft" / "last.pt")["state_dict"], "encoder.")
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_the_old_recipe_moves_weights_and_statistics(pre, tmp_path):
    assert _finetune(pre, tmp_path / "old", "--backbone-lr-scale", "1", "--head-warmup-epochs", "0",
                     "--no-freeze-bn") == 0
    before = _encoder(load_checkpoint(pre)["state_dict"], PRE_PREFIX)
    after = _encoder(load_checkpoint(tmp_path / "old" / "last.pt")["state_dict"], "encoder.")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)


def test_encoder_learning_rate_is_scaled(pre, tmp_path):
    assert _finetune(pre, tmp_path / "ft", "--backbone-lr-scale", "0.25", "--lr", "0.004") == 0
    groups = load_checkpoint(tmp_path / "ft" / "last.pt")["optimizer"]["param_groups"]
    assert sorted({g["initial_lr"] for g in groups}) == pytest.approx([0.001, 0.004])


def test_bad_values_are_one_line_errors(pre, tmp_path, capsys):
    assert _finetune(pre, tmp_path / "a", "--backbone-lr-scale", "-1") == 2
    assert _finetune(pre, tmp_path / "b", "--head-warmup-lr", "0") == 2
    assert "Traceback" not in capsys.readouterr().err


def _curve(run_dir) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["epoch"], r["step"], r["loss"], r.get("acc")) for r in rows]


def test_resume_of_the_default_recipe_repeats_the_same_losses(pre, tmp_path, monkeypatch):
    """The warm start runs once, on a fresh run; a resumed run takes its readout from last.pt."""
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    args = ["--epochs", "3"]
    assert _finetune(pre, straight, *args) == 0
    original = loops.train_epoch

    def interrupted(step_fn, loader, *a, epoch, **kw):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(step_fn, loader, *a, epoch=epoch, **kw)

    monkeypatch.setattr(loops, "train_epoch", interrupted)
    assert _finetune(pre, broken, *args) == 130
    monkeypatch.setattr(loops, "train_epoch", original)
    assert _finetune(pre, broken, *args, "--resume") == 0
    assert _curve(broken) == _curve(straight)


def test_a_trained_classifier_is_a_starting_point(pre, tmp_path):
    """`--pretrained` also takes a classifier's checkpoint (e.g. a float-trained one, fine-tuned onto the Loihi
    grid with --qat loihi): with the backbone frozen, its encoder is kept exactly."""
    assert _finetune(pre, tmp_path / "first", "--head-warmup-epochs", "0") == 0
    first = tmp_path / "first" / "last.pt"
    assert _finetune(first, tmp_path / "second", "--backbone-lr-scale", "0", "--freeze-bn",
                     "--head-warmup-epochs", "2") == 0
    before = _encoder(load_checkpoint(first)["state_dict"], ENCODER_PREFIX["classifier"])
    after = _encoder(load_checkpoint(tmp_path / "second" / "last.pt")["state_dict"], "encoder.")
    assert before and before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
