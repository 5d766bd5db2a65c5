"""Progress while training (issue 27): a line every --log-every steps where stderr is not a terminal, a bar where it
is, neither with --no-progress; the readout warm start announced before it runs."""

from __future__ import annotations

import re

import pytest
from synthetic import synthetic_dataset

from neuromoco.train.cli import main
from neuromoco.train.engine import progress as P

COMMON = ["-T", "3", "--batch-size", "8", "--seed", "2", "--no-export"]


@pytest.fixture(autouse=True)
def _synthetic():
    with synthetic_dataset("synth-progress", n_train=48, n_test=8, size=12, num_classes=3):
        yield


def _steps(err: str, desc: str) -> list[str]:
    """The ``i/n`` of every progress line of ``desc`` in ``err``."""
    return re.findall(rf"^{re.escape(desc)}: step (\d+/\d+)  loss \d+\.\d{{4}}.* samples/s", err, flags=re.M)


def test_a_line_every_log_every_steps_and_none_with_no_progress(tmp_path, capsys):
    sup = ["supervised", "--dataset", "synth-progress", "--epochs", "2", *COMMON]
    assert main([*sup, "--log-every", "2", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert _steps(err, "supervised 1/2") == ["2/6", "4/6", "6/6"]  # 48 samples / batch 8 = 6 steps an epoch
    assert _steps(err, "supervised 2/2") == ["2/6", "4/6", "6/6"]
    assert "left" in err.split("supervised 1/2: step 2/6", 1)[1].splitlines()[0]  # the time still to go
    assert re.search(r"^epoch 1/2: loss .* train acc", err, flags=re.M)  # the epoch lines as before

    assert main([*sup, "--log-every", "2", "--no-progress", "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert ": step " not in err and ": batch " not in err
    assert re.search(r"^epoch 2/2: loss", err, flags=re.M)


def test_pretraining_shows_its_steps_too(tmp_path, capsys):
    assert main(["pretrain", "--dataset", "synth-progress", "--epochs", "1", "--queue-size", "16", "--log-every", "1",
                 "--out", str(tmp_path / "pre"), *COMMON[:-1]]) == 0
    assert _steps(capsys.readouterr().err, "pretrain 1/1") == ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"]


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "pre"
    with synthetic_dataset("synth-progress", n_train=48, n_test=8, size=12, num_classes=3):
        assert main(["pretrain", "--dataset", "synth-progress", "--epochs", "1", "--queue-size", "16",
                     "--out", str(out), *COMMON[:-1]]) == 0
    return out


def test_warm_start_is_announced_before_it_runs(pre, tmp_path, capsys):
    capsys.readouterr()
    assert main(["finetune", "--pretrained", str(pre), "--epochs", "1", "--head-warmup-epochs", "4",
                 "--log-every", "1", "--out", str(tmp_path / "ft"), *COMMON]) == 0
    err = capsys.readouterr().err
    order = [err.find(s) for s in (
        "readout warm start: 4 epochs of the readout alone on the frozen encoder's features of the 48 training "
        "samples (one forward pass computes them, then 24 readout steps",  # 4 epochs x 6 steps
        "features (train): batch 1/1",  # the feature pass shows its progress
        "readout warm start done in ",
        "finetune 1/1: step 1/6")]
    assert -1 not in order and order == sorted(order), order


def test_linear_probe_announces_and_shows_its_feature_passes(pre, tmp_path, capsys):
    capsys.readouterr()
    assert main(["linear", "--pretrained", str(pre), "--epochs", "1", "--log-every", "1",
                 "--out", str(tmp_path / "lin"), *COMMON]) == 0
    err = capsys.readouterr().err
    order = [err.find(s) for s in (
        "features of the frozen encoder, computed once: one forward pass over the 48 training and 8 test samples",
        "features (train): batch 1/1", "features (test): batch 1/1", "epoch 1/1: loss")]
    assert -1 not in order and order == sorted(order), order


def test_warm_start_keeps_to_its_step_budget(pre, tmp_path, capsys, monkeypatch):
    from neuromoco.train.engine import classify
    from neuromoco.train.engine.linear_probe import LinearProbe

    epochs: list[int] = []
    real = LinearProbe.warm_start
    monkeypatch.setattr(LinearProbe, "warm_start", lambda self, n, *a: epochs.append(n) or real(self, n, *a))
    monkeypatch.setattr(classify, "WARMUP_MAX_STEPS", 15)  # 6 steps an epoch: 2 whole epochs fit
    capsys.readouterr()
    assert main(["finetune", "--pretrained", str(pre), "--epochs", "1", "--head-warmup-epochs", "4",
                 "--out", str(tmp_path / "ft"), *COMMON]) == 0
    assert epochs == [2]
    assert "readout warm start: 2 epochs (of 4: at most 15 steps)" in capsys.readouterr().err


def _lines(every: int, n: int, capsys, show: bool = True) -> list[str]:
    bar = P.Progress(range(n), "pass", show=show, every=every, unit="batch")
    for _ in bar:
        bar.done(4, loss=0.5)
    bar.close()
    return capsys.readouterr().err.splitlines()


def test_progress_lines_count_steps_and_samples(capsys, monkeypatch):
    lines = _lines(3, 7, capsys)
    assert [ln.split("  ")[0] for ln in lines] == ["pass: batch 3/7", "pass: batch 6/7"]
    assert "loss 0.5000" in lines[0] and "samples/s" in lines[0]
    assert _lines(3, 7, capsys, show=False) == []
    monkeypatch.setattr(P, "LINE_INTERVAL_S", 0.0)  # slow steps: a line after each, whatever --log-every says
    assert len(_lines(100, 4, capsys)) == 4


def test_a_terminal_gets_a_bar_and_no_lines(tmp_path, capsys, terminal_bars):
    seen = terminal_bars
    assert main(["supervised", "--dataset", "synth-progress", "--epochs", "1", "--log-every", "1",
                 "--out", str(tmp_path / "sup"), *COMMON]) == 0
    assert seen and not any(seen)  # every bar drawn (train steps, test batches)
    assert ": step " not in capsys.readouterr().err


def test_log_every_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["supervised", "--dataset", "synth-progress", "--log-every", "0", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "expected a positive integer" in capsys.readouterr().err
