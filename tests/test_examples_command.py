"""`deploy examples`: the shipped graphs listed one line each, copied out, and inspectable where they land."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuromoco.deploy.cli import main
from neuromoco.deploy.commands.examples import examples, folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_examples_are_the_repository_folder():
    # the editable install maps neuromoco.examples onto nir_models/ (a wheel holds a copy: test_wheel_install)
    assert folder().resolve() == (ROOT / "nir_models").resolve()
    names = [e.name for e in examples()]
    assert names == sorted(p.stem for p in (ROOT / "nir_models").glob("*.nir"))


def test_listing_has_one_line_per_graph_with_shape_nodes_and_origin(capsys):
    assert main(["examples", "sinabs_cnn", "neuromoco_embedded_cnn3"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    assert len(lines) == 2
    cnn3, sinabs = lines
    assert "input [2, 34, 34]" in cnn3 and "8 steps" in cnn3 and "13 nodes" in cnn3 and "trained on embedded" in cnn3
    assert "input [2, 16, 16]" in sinabs and "11 nodes" in sinabs and "sinabs" in sinabs


def test_copy_then_inspect(tmp_path, capsys):
    out = tmp_path / "mine"
    assert main(["examples", "snntorch_mlp", "--copy", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["snntorch_mlp.card.json", "snntorch_mlp.nir"]
    capsys.readouterr()
    assert main(["inspect", str(out / "snntorch_mlp.nir")]) == 0
    assert f"model card ({out / 'snntorch_mlp.card.json'})" in capsys.readouterr().out


def test_path_and_unknown_name(capsys):
    assert main(["examples", "--path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == folder()
    assert main(["examples", "no_such_graph"]) == 2
    err = capsys.readouterr().err
    assert "no_such_graph" in err and "sinabs_cnn" in err and "Traceback" not in err


def test_help():
    with pytest.raises(SystemExit) as done:
        main(["examples", "--help"])
    assert done.value.code == 0


def _fixtures_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "nir_models" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_shipped_card_names_its_true_model():
    """A fixture's card is its builder's (model: the fixture's name, not the tool it imitates); a trained graph's
    card names a registered architecture, not an old alias such as vgg34."""
    import json

    from neuromoco.train.models.registry import ALIASES, MODELS

    mf = _fixtures_module()
    for e in examples():
        on_disk = json.loads(e.card.read_text())
        if e.name in mf.FIXTURES:
            _graph, built = mf.FIXTURES[e.name]()
            assert on_disk == json.loads(json.dumps(built)), e.name
            assert on_disk["model"] == e.name
        else:
            assert on_disk["model"] in MODELS and on_disk["model"] not in ALIASES, (e.name, on_disk["model"])
