"""The training commands end to end on tiny synthetic data: pretrain -> linear / finetune, supervised, eval,
export; label fractions; bad checkpoints are one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from synthetic import SyntheticFrames, synthetic_dataset

from neuromoco.train.cli import main
from neuromoco.train.engine import loaders as D
from neuromoco.train.engine.checkpoint import load_checkpoint, save_checkpoint

COMMON = ["--batch-size", "8", "--seed", "1"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    with synthetic_dataset("synth-cmd", n_train=32, n_test=16, size=12, num_classes=4):
        run = tmp_path_factory.mktemp("pre")
        assert main(["pretrain", "--dataset", "synth-cmd", "--epochs", "1", "--time-steps", "3", "--queue-size",
                     "16", "--out", str(run), *COMMON]) == 0
        yield run / "last.pt"


@pytest.mark.parametrize("mode", ["linear", "finetune", "supervised"])
def test_downstream_writes_accuracy_checkpoints_and_nir(pretrained, tmp_path, mode):
    src = ["--pretrained", str(pretrained)] if mode != "supervised" else ["--dataset", "synth-cmd", "-T", "3"]
    out = tmp_path / mode
    assert main([mode, *src, "--epochs", "2", "--label-fraction", "0.5", "--out", str(out), *COMMON]) == 0
    acc = json.loads((out / "accuracy.json").read_text())
    assert acc["train_samples"] == 16 and acc["test_samples"] == 16
    assert acc["last"]["epoch"] == 2 and 0.0 <= acc["last"]["top1"] <= 1.0 and acc["best"]["epoch"] in (1, 2)
    assert (out / "best.pt").exists() and (out / "last.pt").exists() and (out / "metrics.jsonl").exists()
    ck = load_checkpoint(out / "last.pt", kind="classifier")
    assert ck["data"]["time_steps"] == 3 and ck["mode"] == mode
    card = json.loads((out / "model_card.json").read_text())
    assert (out / "model.nir").exists() and card["input_shape"] == [2, 12, 12] and card["time_steps"] == 3
    assert card["accuracy"]["test"] == pytest.approx(acc["last"]["top1"])


def test_linear_probe_freezes_the_encoder(pretrained, tmp_path):
    out = tmp_path / "lin"
    assert main(["linear", "--pretrained", str(pretrained), "--epochs", "2", "--out", str(out), "--no-export",
                 *COMMON]) == 0
    pre = load_checkpoint(pretrained)["state_dict"]
    lin = load_checkpoint(out / "last.pt")["state_dict"]
    for k, v in lin.items():
        if k.startswith("encoder."):
            assert torch.equal(v, pre["encoder_q.backbone." + k[len("encoder."):]]), k


def test_eval_and_export_commands(pretrained, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "--pretrained", str(pretrained), "--epochs", "1", "--out", str(out), "--no-export",
                 *COMMON]) == 0
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--out", str(tmp_path / "ev")]) == 0
    res = json.loads((tmp_path / "ev" / "eval_synth-cmd_test.json").read_text())
    acc = json.loads((out / "accuracy.json").read_text())
    assert res["samples"] == 16 and res["top1"] == pytest.approx(acc["last"]["top1"])
    assert main(["export", "--checkpoint", str(out / "last.pt"), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "model.nir").exists() and (tmp_path / "exp" / "model_card.json").exists()


def _renamed(src, dst, name: str):
    """A copy of checkpoint ``src`` whose model is called ``name`` (as checkpoints of earlier versions are)."""
    ck = torch.load(src, weights_only=True)
    ck["model"]["name"] = name
    torch.save(ck, dst)
    return dst


def test_checkpoints_naming_the_earlier_model_names_still_load(pretrained, tmp_path):
    old_pre = _renamed(pretrained, tmp_path / "old_pre.pt", "vgg34")
    out = tmp_path / "ft"
    assert main(["finetune", "--pretrained", str(old_pre), "--epochs", "1", "--out", str(out), "--no-export",
                 *COMMON]) == 0
    assert load_checkpoint(out / "last.pt")["model"]["name"] == "cnn3-34"
    old_ft = _renamed(out / "last.pt", tmp_path / "old_ft.pt", "vgg34")
    assert main(["export", "--checkpoint", str(old_ft), "--out", str(tmp_path / "exp")]) == 0
    assert json.loads((tmp_path / "exp" / "model_card.json").read_text())["model"] == "vgg34"  # as trained
    assert main(["eval", "--checkpoint", str(old_ft), "--out", str(tmp_path / "ev")]) == 0
    pre_run = tmp_path / "pre"  # a run whose last.pt says vgg34 resumes under the new name
    args = ["pretrain", "--dataset", "synth-cmd", "--time-steps", "3", "--queue-size", "16", "--out", str(pre_run),
            *COMMON]
    assert main([*args, "--model", "vgg34", "--epochs", "1"]) == 0
    _renamed(pre_run / "last.pt", pre_run / "last.pt", "vgg34")
    assert main([*args, "--model", "cnn3-34", "--epochs", "2", "--resume"]) == 0


@pytest.mark.parametrize("flag,value", [("--momentum", "1.5"), ("--mix-lambda", "-0.1")])
def test_moco_hyper_parameters_out_of_range_are_one_line_errors(pretrained, tmp_path, capsys, flag, value):
    capsys.readouterr()
    assert main(["pretrain", "--dataset", "synth-cmd", "--epochs", "1", "--time-steps", "3", "--queue-size", "16",
                 flag, value, "--out", str(tmp_path / "run"), *COMMON]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"error: {flag} must be in [0, 1], got {float(value)}") and len(err.splitlines()) == 1


def test_bad_checkpoints_are_one_line_errors(pretrained, tmp_path, capsys):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    cases = [(["eval", "--checkpoint", str(tmp_path / "missing.pt")], "not found"),
             (["finetune", "--pretrained", str(foreign), "--out", str(tmp_path / "y")], "not a NeuroMoCo checkpoint"),
             (["eval", "--checkpoint", str(pretrained)], "pre-training checkpoint")]
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def _garbage(kind: str, pretrained, path):
    """A file that is no readable checkpoint: random bytes, a real checkpoint cut short, text, or a torch
    file holding a NumPy array (which ``weights_only`` refuses with a paragraph of its own)."""
    import numpy as np

    if kind == "random":
        path.write_bytes(bytes(range(256)) * 3)
    elif kind == "truncated":
        path.write_bytes(pretrained.read_bytes()[:300])
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "numpy":
        torch.save({"format": "neuromoco-checkpoint", "w": np.zeros(3)}, path)
    return path


@pytest.mark.parametrize("kind", ["random", "truncated", "text", "numpy"])
@pytest.mark.parametrize("where", ["--pretrained", "--resume", "eval", "export"])
def test_garbage_checkpoints_are_refused_in_one_line_naming_the_file(pretrained, tmp_path, capsys, kind, where):
    bad = _garbage(kind, pretrained, tmp_path / "x.pt")
    run = ["--out", str(tmp_path / "run"), *COMMON]
    argv = {"--pretrained": ["linear", "--pretrained", str(bad), *run],
            "--resume": ["linear", "--pretrained", str(pretrained), "--resume", str(bad), *run],
            "eval": ["eval", "--checkpoint", str(bad)],
            "export": ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "exp")]}[where]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "weights_only" not in err, err
    why = ("is not a NeuroMoCo checkpoint (a torch file holding Python objects other than tensors and plain values)"
           if kind == "numpy" else "is not a readable checkpoint (truncated or not a torch file)")
    assert err.endswith(f"error: checkpoint {bad} {why}"), err
    assert not (tmp_path / "run").exists()  # refused before the run directory is touched


def test_atomic_checkpoint_leaves_no_temporary(tmp_path):
    save_checkpoint(tmp_path / "a.pt", {"kind": "classifier", "x": torch.ones(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert torch.equal(load_checkpoint(tmp_path / "a.pt")["x"], torch.ones(3))


def test_class_balanced_label_fraction_is_seeded():
    ds = SyntheticFrames(n=40, num_classes=4)
    a = D.class_balanced_subset(ds, 0.3, seed=5)
    b = D.class_balanced_subset(ds, 0.3, seed=5)
    c = D.class_balanced_subset(ds, 0.3, seed=6)
    assert a.indices == b.indices and a.indices != c.indices
    labels = D.labels_of(a)
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # 10 per class * 0.3 -> 3
    assert len(D.class_balanced_subset(ds, 0.01, seed=0)) == 4  # at least one per class


def test_no_progress_turns_every_bar_off(pretrained, tmp_path, terminal_bars, capsys):
    """``--no-progress`` on each command that draws bars (train loops, features, test passes, eval), as deploy's;
    stderr is made a terminal here, where the bars draw (elsewhere progress is lines: test_training_progress.py)."""
    seen = terminal_bars
    runs = {"pretrain": ["--dataset", "synth-cmd", "-T", "3", "--queue-size", "16"],
            "finetune": ["--pretrained", str(pretrained), "--head-warmup-epochs", "1", "--no-export"],
            "linear": ["--pretrained", str(pretrained), "--no-export"],
            "supervised": ["--dataset", "synth-cmd", "-T", "3", "--no-export"]}
    for command, extra in runs.items():
        for flag in ([], ["--no-progress"]):
            seen.clear()
            out = tmp_path / f"{command}{len(flag)}"
            assert main([command, *extra, "--epochs", "1", "--out", str(out), *COMMON, *flag]) == 0
            assert seen and all(d is bool(flag) for d in seen), (command, flag, seen)
    ckpt = str(tmp_path / "supervised0" / "last.pt")
    for flag in ([], ["--no-progress"]):
        seen.clear()
        assert main(["eval", "--checkpoint", ckpt, "--out", str(tmp_path / "ev"), *flag]) == 0
        assert seen == [bool(flag)]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    assert "--no-progress         no progress bar" in capsys.readouterr().out  # deploy's words
