"""Bad frames are a one-line error: non-finite values name the file and the first bad sample, and a shape
mismatch names where the expected shape came from (the graph, the model card or the frames)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _frames(path: Path, shape=(6, 12, 2, 16, 16), bad: tuple[int, int] | None = None, value=np.nan) -> Path:
    frames = np.random.default_rng(0).poisson(0.3, shape).astype("float32")
    if bad is not None:
        frames[bad[0], bad[1], 0, 0, 0] = value
        frames[bad[0] + 1:, 0, 0, 0, 0] = value
    np.savez(path, frames=frames, labels=np.zeros(shape[0], "int64"))
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    for suffix in (".nir", ".card.json"):
        shutil.copy(ROOT / "nir_models" / f"sinabs_cnn{suffix}", tmp_path / f"m{suffix}")
    return tmp_path / "m.nir"


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_non_finite_frames_name_the_file_and_first_sample(model, tmp_path, capsys, value, word):
    bad = _frames(tmp_path / "bad.npz", bad=(2, 5), value=value)
    assert main(["run", str(model), "--target", "reference", "--dataset", str(bad), "--no-progress",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(bad) in err and word in err and "first in sample 2 (time step 5)" in err and "4 of 6 samples" in err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_non_finite_calibration_frames_are_refused(model, tmp_path, capsys):
    good = _frames(tmp_path / "good.npz")
    bad = _frames(tmp_path / "calib.npz", bad=(0, 0))
    assert main(["export", str(model), "--target", "onnx", "--int8", "--dataset", str(good), "--calibration",
                 str(bad), "--out", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "NaN" in err and "first in sample 0 (time step 0)" in err


def test_shape_mismatch_without_a_card_names_the_frames(tmp_path, capsys):
    shutil.copy(ROOT / "nir_models" / "sinabs_cnn.nir", tmp_path / "m.nir")  # no card beside it
    small = _frames(tmp_path / "small.npz", shape=(4, 12, 2, 8, 8))
    assert main(["run", str(tmp_path / "m.nir"), "--target", "reference", "--dataset", str(small), "--dt", "0.001",
                 "--no-progress", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"the frames file {small} (no model card) says [2, 8, 8]" in err and "model card says" not in err
    assert "has shape [2, 16, 16]" in err


def test_shape_mismatch_with_a_card_names_the_card(model, tmp_path, capsys):
    small = _frames(tmp_path / "small.npz", shape=(4, 12, 2, 8, 8))
    assert main(["run", str(model), "--target", "reference", "--dataset", str(small), "--no-progress",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"the frames of {small} are [T, *input_shape] = [12, 2, 8, 8]" in err
    assert f"the model card {model.with_suffix('.card.json')} expects [12, 2, 16, 16]" in err


def test_a_card_with_the_input_axes_swapped_is_refused(model, capsys):
    """Same element count, other layout: the card's [16, 16, 2] for the graph's [2, 16, 16] is not read as it."""
    import json

    card_path = model.with_suffix(".card.json")
    card = json.loads(card_path.read_text())
    card["input_shape"] = [16, 16, 2]
    card_path.write_text(json.dumps(card))
    assert main(["inspect", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[2, 16, 16]" in err and "[16, 16, 2]" in err and "another order" in err


@pytest.mark.parametrize("target", ["reference", "reference-fixed", "onnx"])
def test_transposed_frames_are_refused_and_flat_ones_accepted(model, target):
    """Frames [T, B, 16, 16, 2] for an input [2, 16, 16] are refused naming both shapes (every executor); the
    same frames flattened to [T, B, 512] run and equal the shaped ones."""
    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph
    from neuromoco.deploy.targets import get_target
    from neuromoco.errors import UserError

    card = ModelCard.load(model.with_suffix(".card.json"))
    graph = load_graph(model, input_shape=card.input_shape)
    t, options = get_target(target)
    runner = t.runner(graph, card, options)
    frames = np.random.default_rng(1).poisson(0.3, (4, 3, 2, 16, 16)).astype("float32")
    with pytest.raises(UserError, match=r"\[16, 16, 2\] per step do not fit .*\[2, 16, 16\].*another order"):
        runner.run(np.ascontiguousarray(frames.transpose(0, 1, 3, 4, 2)))
    shaped, flat = runner.run(frames), runner.run(frames.reshape(4, 3, -1))
    assert np.array_equal(shaped.output, flat.output)
