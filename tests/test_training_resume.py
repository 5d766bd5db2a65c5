"""An interrupted pre-training run, resumed, continues the same loss curve as an uninterrupted one."""

from __future__ import annotations

import json

import pytest
from synthetic import synthetic_dataset

from neuromoco.train.cli import main
from neuromoco.train.engine import loops

ARGS = ["pretrain", "--dataset", "synth-resume", "--model", "cnn3-34", "--epochs", "2", "--batch-size", "8",
        "--time-steps", "3", "--queue-size", "24", "--momentum", "0.9", "--log-every", "1", "--seed", "3"]


@pytest.fixture(autouse=True)
def _synthetic():
    with synthetic_dataset("synth-resume", n_train=24, n_test=8, size=12, num_classes=3):
        yield


def _curve(run_dir) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["epoch"], r["step"], r["loss"], r.get("acc")) for r in rows]


def _interrupted(original):
    """``loops.train_epoch`` hit by Ctrl-C two batches into the second epoch."""
    def interrupted(step_fn, loader, *a, epoch, **kw):
        if epoch == 2:
            def batches():
                for i, b in enumerate(loader):
                    if i == 2:
                        raise KeyboardInterrupt
                    yield b
            return original(step_fn, batches(), *a, epoch=epoch, **kw)
        return original(step_fn, loader, *a, epoch=epoch, **kw)
    return interrupted


def test_resume_after_interruption_repeats_the_same_losses(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert main([*ARGS, "--out", str(straight)]) == 0

    original = loops.train_epoch
    broken = tmp_path / "broken"
    monkeypatch.setattr(loops, "train_epoch", _interrupted(original))
    assert main([*ARGS, "--out", str(broken)]) == 130
    monkeypatch.setattr(loops, "train_epoch", original)
    assert any(r[1] == 2 for r in _curve(broken))  # the partial epoch left step lines behind

    assert main([*ARGS, "--out", str(broken)]) == 2  # refuses to clobber the run without --resume
    assert main([*ARGS, "--out", str(broken), "--resume"]) == 0
    assert _curve(broken) == _curve(straight)  # same steps, same losses, bit for bit; no duplicated lines
    assert json.loads((broken / "pretrain.json").read_text())["steps"] == 6


def test_resume_with_another_configuration_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    one_epoch = [a if a != "2" else "1" for a in ARGS]  # --epochs 1
    assert main([*one_epoch, "--out", str(run)]) == 0
    capsys.readouterr()
    other_queue = [*ARGS, "--out", str(run), "--resume"]
    other_queue[other_queue.index("--queue-size") + 1] = "16"  # the queue buffer no longer fits
    assert main(other_queue) == 2
    err = capsys.readouterr().err
    assert "does not match this configuration" in err and "Traceback" not in err


def test_classifier_resume_repeats_the_same_losses_and_best(tmp_path, monkeypatch):
    """finetune/linear/supervised resume through the same skeleton; the best epoch survives the restart."""
    args = ["supervised", "--dataset", "synth-resume", "-T", "3", "--epochs", "3", "--batch-size", "8",
            "--log-every", "1", "--seed", "3", "--no-export"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert main([*args, "--out", str(straight)]) == 0
    original = loops.train_epoch
    monkeypatch.setattr(loops, "train_epoch", _interrupted(original))
    assert main([*args, "--out", str(broken)]) == 130
    monkeypatch.setattr(loops, "train_epoch", original)
    assert main([*args, "--out", str(broken), "--resume"]) == 0
    assert _curve(broken) == _curve(straight)
    acc = [json.loads((d / "accuracy.json").read_text()) for d in (straight, broken)]
    assert acc[0]["best"] == acc[1]["best"] and acc[0]["last"] == acc[1]["last"]
