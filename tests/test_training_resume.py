"""An interrupted pre-training run, resumed, continues the same loss curve as an uninterrupted one; a run directory
that holds a run is never cleared without --overwrite (issue 27)."""

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


def _interrupted(original, at_epoch: int = 2):
    """``loops.train_epoch`` hit by Ctrl-C two batches into epoch ``at_epoch``."""
    def interrupted(step_fn, loader, *a, epoch, **kw):
        if epoch == at_epoch:
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


def _files(run_dir) -> dict[str, bytes]:
    """Every file under ``run_dir`` with its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_interrupted_before_the_first_checkpoint_loses_nothing_and_resumes(tmp_path, monkeypatch, capsys):
    """Ctrl-C in epoch 1 leaves config.json, metrics.jsonl and tb/ but no last.pt: a rerun is refused and deletes
    nothing; --resume starts the run again from epoch 1 in the same files."""
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert main([*ARGS, "--out", str(straight)]) == 0
    original = loops.train_epoch
    monkeypatch.setattr(loops, "train_epoch", _interrupted(original, at_epoch=1))
    assert main([*ARGS, "--out", str(broken)]) == 130
    monkeypatch.setattr(loops, "train_epoch", original)
    left = _files(broken)
    assert "last.pt" not in left and "config.json" in left and any(k.startswith("tb/") for k in left)
    assert [r[:3] for r in _curve(broken)] == [("step", 1, 1), ("step", 1, 2)]  # two steps logged, then Ctrl-C
    capsys.readouterr()

    for again in ([], ["--epochs", "3"]):  # the same command, or another: refused, and every byte is still there
        assert main([*ARGS, *again, "--out", str(broken)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{broken} already holds a run" in err
        assert "--resume" in err and "--overwrite" in err
        assert _files(broken) == left

    assert main([*ARGS, "--out", str(broken), "--resume", "--overwrite"]) == 2  # contradictory: refused too
    assert _files(broken) == left
    assert main([*ARGS, "--out", str(broken), "--resume"]) == 0
    assert "interrupted before its first checkpoint: starting again from epoch 1" in capsys.readouterr().err
    assert _curve(broken) == _curve(straight)  # the partial epoch's two steps repeated, not written twice


def test_resume_of_a_directory_without_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("mine")
    assert main([*ARGS, "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_overwrite_replaces_the_earlier_run_cleanly(tmp_path, capsys):
    run = tmp_path / "run"
    one_epoch = [a if a != "2" else "1" for a in ARGS]  # --epochs 1
    assert main([*one_epoch, "--out", str(run)]) == 0
    (run / "notes.txt").write_text("mine")
    earlier = _files(run)
    assert main([*ARGS, "--out", str(run)]) == 2  # refused: nothing changes
    assert _files(run) == earlier
    assert main([*ARGS, "--out", str(run), "--overwrite"]) == 0
    assert "--overwrite: replacing the earlier run (config.json, metrics.jsonl, tb/, last.pt" in capsys.readouterr().err
    assert len(list((run / "tb").iterdir())) == 1  # the new run's event file only
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]  # no line of the earlier run
    assert (run / "notes.txt").read_text() == "mine"  # not a run's file: never touched
