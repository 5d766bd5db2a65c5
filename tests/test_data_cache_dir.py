"""The default data folder is a per-user cache (issue 27: pip users rebuilt the embedded set in every working
directory): ``$XDG_CACHE_HOME/neuromoco/data``, else ``~/.cache/neuromoco/data``; ``NEUROMOCO_DATA`` and
``--data-root`` still win, and building a dataset says the folder it builds into. Never the real ~/.cache here."""

from __future__ import annotations

from pathlib import Path

from neuromoco.train.data.registry import default_root, resolve_root


def test_default_root_is_the_per_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("NEUROMOCO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "neuromoco" / "data"
    assert resolve_root(None) == default_root()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ("", "relative/cache"):  # the XDG rule: unset, empty or relative means ~/.cache
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert default_root() == tmp_path / "home" / ".cache" / "neuromoco" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_root() == tmp_path / "home" / ".cache" / "neuromoco" / "data"


def test_neuromoco_data_and_data_root_win(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NEUROMOCO_DATA", str(tmp_path / "env"))
    assert default_root() == tmp_path / "env" and resolve_root(None) == tmp_path / "env"
    assert resolve_root(tmp_path / "flag") == tmp_path / "flag"  # --data-root (deploy: --root)


def test_train_data_lists_and_builds_into_the_cache_and_says_where(tmp_path, monkeypatch, capsys):
    from neuromoco.train.cli import main as train_main
    from neuromoco.train.data.embedded import build_embedded

    monkeypatch.delenv("NEUROMOCO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = (tmp_path / "xdg" / "neuromoco" / "data").resolve()
    assert train_main(["data"]) == 0
    assert f"data folder: {cache}" in capsys.readouterr().out
    path = build_embedded(limit=12)  # the first 12 digits only: a quick build, into the default folder
    err = capsys.readouterr().err
    assert Path(path).resolve().is_relative_to(cache) and f"into {Path(path).resolve()}" in err, err
    assert not (Path.cwd() / "data" / "embedded" / Path(path).name).exists()
