"""The distribution installs one import namespace, ``neuromoco``, with every package of the tree in it."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[list[str], dict[str, str]]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return list(cfg["packages"]), dict(cfg["package-dir"])


def _on_disk(package_dir: dict[str, str]) -> set[str]:
    found = set()
    for name, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    return found


def test_every_package_folder_is_declared_and_nothing_else():
    packages, package_dir = _declared()
    assert sorted(packages) == sorted(_on_disk(package_dir))


def test_one_top_level_name():
    packages, package_dir = _declared()
    assert {p.split(".")[0] for p in packages} == {"neuromoco"}
    assert package_dir["neuromoco.train"] == "train" and package_dir["neuromoco.deploy"] == "deploy"


def test_dataset_plugin_and_scripts_point_into_the_namespace():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = [*project["scripts"].values(), *project["entry-points"]["neuromoco.datasets"].values()]
    assert targets and all(t.startswith("neuromoco.") for t in targets)
