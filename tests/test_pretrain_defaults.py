"""Pre-training defaults on small data: the automatic queue size and the falling-similarity (collapse) warning."""

from __future__ import annotations

import json
import math

import pytest
from synthetic import synthetic_dataset

from neuromoco.train.cli import main
from neuromoco.train.engine import pretraining
from neuromoco.train.engine.checkpoint import load_checkpoint
from neuromoco.train.engine.fit import Run
from neuromoco.train.engine.pretraining import COLLAPSE_EPOCHS, auto_queue_size, falling_epochs

COMMON = ["pretrain", "--dataset", "synth-defaults", "--time-steps", "3", "--batch-size", "8", "--seed", "1"]


@pytest.fixture(autouse=True)
def _synthetic():
    with synthetic_dataset("synth-defaults", n_train=40, n_test=8, size=12, num_classes=4):
        yield


def _epochs(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "epoch"]


def test_auto_queue_size_rule():
    assert auto_queue_size(1618, 64) == 768  # the embedded training split: 47 %
    assert auto_queue_size(4500, 64) == 2240  # embedded-mnist's
    assert auto_queue_size(60000, 64) == 4096  # N-MNIST: the cap
    assert auto_queue_size(60000, 96) == 4032  # the cap, as a multiple of the batch
    assert auto_queue_size(40, 8) == 16 and auto_queue_size(10, 8) == 8  # at least one batch
    for n, b in [(1618, 64), (333, 16), (100, 32), (50_000, 128)]:
        k = auto_queue_size(n, b)
        assert k % b == 0 and b <= k <= max(b, n * pretraining.QUEUE_FRACTION) and k <= pretraining.QUEUE_MAX


def test_queue_size_from_the_training_set_said_in_the_first_line(tmp_path, capsys):
    out = tmp_path / "auto"
    assert main([*COMMON, "--epochs", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    first = err.strip().splitlines()[0]
    assert first.startswith("queue 16 = 40 % of 40 training samples"), first
    assert "note: the queue" not in err
    ck = load_checkpoint(out / "last.pt")
    assert ck["moco"]["queue_size"] == 16 and ck["state_dict"]["queue"].shape[0] == 16
    config = json.loads((out / "config.json").read_text())
    assert json.dumps(config).count('"queue_size_auto": true') == 1 and '"queue_size": 16' in json.dumps(config)


def test_explicit_queue_size_still_works_with_the_note(tmp_path, capsys):
    out = tmp_path / "explicit"
    assert main([*COMMON, "--epochs", "1", "--queue-size", "64", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert not err.startswith("queue ") and "automatic: the largest" not in err
    assert "note: the queue (64) is larger than the training set (40)" in err and "--queue-size 16" in err
    assert load_checkpoint(out / "last.pt")["moco"]["queue_size"] == 64


def test_falling_epochs_counts_the_current_fall():
    assert falling_epochs([]) == 0 and falling_epochs([0.3]) == 0
    assert falling_epochs([0.1, 0.2, 0.3]) == 0
    assert falling_epochs([0.5, 0.4, 0.3, 0.2]) == 3
    assert falling_epochs([0.5, 0.4, 0.45, 0.3, 0.2]) == 2
    assert falling_epochs([0.5, 0.5, 0.4]) == 1  # equal is not a fall
    assert falling_epochs([0.5, None, 0.4]) == 0


def _scripted(monkeypatch, pos_sims: list[float]) -> None:
    """Run.train_over returns these epochs' summaries (the rest of the run, reporting included, is real)."""
    def train_over(self, dataset, step_fn, epoch):
        self.step += 5
        return {"loss": 6.0, "acc": 0.5, "pos_sim": pos_sims[epoch - 1], "samples_per_s": 100.0}

    monkeypatch.setattr(Run, "train_over", train_over)


def test_collapse_warning_fires_on_a_collapsing_run(tmp_path, capsys, monkeypatch):
    sims = [0.40, 0.35, 0.22, 0.10, -0.05, -0.20]  # falling epoch after epoch: the collapse signal
    _scripted(monkeypatch, sims)
    out = tmp_path / "collapse"
    assert main([*COMMON, "--epochs", str(len(sims)), "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == len(sims)
    warned = [i + 1 for i, ln in enumerate(lines) if "warning: positive similarity has fallen" in ln]
    assert warned == [4, 5, 6] and COLLAPSE_EPOCHS == 3
    assert "fallen 3 epochs in a row (0.400 -> 0.100)" in lines[3]
    assert "fallen 5 epochs in a row (0.400 -> -0.200)" in lines[5]
    rows = _epochs(out)
    assert [r["collapse_warning"] for r in rows] == [False, False, False, True, True, True]
    assert [r["pos_sim_falling_epochs"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert json.loads((out / "pretrain.json").read_text())["final"]["collapse_warning"] is True


def test_no_warning_on_a_healthy_run(tmp_path, capsys, monkeypatch):
    sims = [0.15, 0.22, 0.20, 0.31, 0.29, 0.27, 0.35]  # rising, with dips of at most two epochs
    _scripted(monkeypatch, sims)
    out = tmp_path / "healthy"
    assert main([*COMMON, "--epochs", str(len(sims)), "--out", str(out)]) == 0
    assert "warning:" not in capsys.readouterr().err
    assert not any(r["collapse_warning"] for r in _epochs(out))


def test_collapse_epochs_option(tmp_path, capsys, monkeypatch):
    _scripted(monkeypatch, [0.4, 0.3, 0.2, 0.1])
    assert main([*COMMON, "--epochs", "4", "--collapse-epochs", "0", "--out", str(tmp_path / "off")]) == 0
    assert "warning:" not in capsys.readouterr().err
    assert main([*COMMON, "--epochs", "4", "--collapse-epochs", "2", "--out", str(tmp_path / "two")]) == 0
    rows = _epochs(tmp_path / "two")
    assert [r["collapse_warning"] for r in rows] == [False, False, True, True]


def test_momentum_schedule_rises_to_one():
    from neuromoco.train.engine.pretraining import scheduled_momentum

    assert scheduled_momentum(0.99, 0, 100) == 0.99 and scheduled_momentum(0.99, 100, 100, "constant") == 0.99
    ms = [scheduled_momentum(0.99, k, 100, "cosine") for k in range(101)]
    assert ms[0] == pytest.approx(0.99) and ms[50] == pytest.approx(0.995) and ms[100] == pytest.approx(1.0)
    assert all(ms[i + 1] >= ms[i] for i in range(100))


def test_momentum_schedule_in_a_run(tmp_path):
    out = tmp_path / "cos"
    assert main([*COMMON, "--epochs", "2", "--momentum", "0.9", "--momentum-schedule", "cosine",
                 "--out", str(out)]) == 0
    rows = _epochs(out)  # 5 steps per epoch, 10 in all: the last step of epoch 2 is step 9 of 10
    assert rows[0]["momentum"] == pytest.approx(1 - 0.1 * (1 + math.cos(math.pi * 0.4)) / 2)
    assert rows[1]["momentum"] == pytest.approx(1 - 0.1 * (1 + math.cos(math.pi * 0.9)) / 2)
    assert load_checkpoint(out / "last.pt")["moco"]["momentum_schedule"] == "cosine"
