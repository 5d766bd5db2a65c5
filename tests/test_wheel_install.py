"""The built wheel, installed into a fresh virtual environment, works from outside the repository.

The wheel is built from the working tree and installed with ``--no-deps`` into a new venv. Its
dependencies come from the project's own ``.venv`` (torch, norse, and Lava installed the documented way,
``pip install --no-deps --ignore-requires-python lava-nc lava-dl``) through a folder of links that
leaves out the project itself, so nothing of the repository is importable there: the wheel alone must
carry every module, the package data (the example graphs of ``nir_models/`` among them: a pip user's first
``deploy inspect`` runs on one), the console scripts and the dataset plugin. A second environment lacks Lava,
as a user's might.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _link_dependencies(dest: Path, *, lava: bool) -> Path:
    """``dest`` holding a link to every entry of this environment's site-packages but the project's own."""
    dest.mkdir()
    for entry in _site_packages().iterdir():
        name = entry.name.lower()
        if name.startswith(("neuromoco", "__editable__", "_neuromoco")) or name.endswith(".pth"):
            continue
        if not lava and name.startswith("lava"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def _fresh_env(where: Path, wheel: Path, deps: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(where)
    py = where / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_dependencies.pth").write_text(f"{deps}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    return where / "bin"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the source folders (a stale build/ in the checkout cannot leak in)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "neuromoco", "train", "deploy", "nir_models"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True, timeout=300, cwd=out)
    (path,) = out.glob("neuromoco-*.whl")
    return path


def _run(bin_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(argv), check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _frames(path: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(path, frames=rng.poisson(0.3, (6, 12, 2, 16, 16)).astype("float32"), labels=np.zeros(6, "int64"))
    return path


def test_wheel_has_one_top_level_name(wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = z.read(next(n for n in names if n.endswith("top_level.txt"))).decode().split() \
            if any(n.endswith("top_level.txt") for n in names) else None
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"neuromoco"}
    assert top in (None, ["neuromoco"])
    assert "neuromoco/deploy/energy_models.json" in names
    assert "neuromoco/train/models/lif_kernels/native_kernels.c" in names  # the native LIF, built at first use
    shipped = {p.name for p in (ROOT / "nir_models").glob("*.nir")} | {
        p.name for p in (ROOT / "nir_models").glob("*.card.json")}
    assert len(shipped) >= 20 and {f"neuromoco/examples/{n}" for n in shipped} <= set(names)


def test_installed_wheel_runs_outside_the_repository(wheel, tmp_path):
    bin_dir = _fresh_env(tmp_path / "env", wheel, _link_dependencies(tmp_path / "deps", lava=True))
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("raise SystemExit('the user\\'s own train.py was imported')\n")
    frames = _frames(work / "frames.npz")

    r = _run(bin_dir, "deploy", "--help", cwd=work)
    assert r.returncode == 0 and "parity" in r.stdout and "examples" in r.stdout, r.stderr
    # the quickstart of a pip user: list the shipped graphs, copy one out, inspect it
    r = _run(bin_dir, "deploy", "examples", cwd=work)
    assert r.returncode == 0 and "sinabs_cnn" in r.stdout and "neuromoco_embedded_cnn3" in r.stdout, r.stderr
    assert "site-packages" in r.stdout and str(ROOT) not in r.stdout, r.stdout
    r = _run(bin_dir, "deploy", "examples", "sinabs_cnn", "--copy", "ex", cwd=work)
    assert r.returncode == 0, r.stderr
    r = _run(bin_dir, "deploy", "inspect", "ex/sinabs_cnn.nir", cwd=work)
    assert r.returncode == 0 and "1542 spiking neurons" in r.stdout and "model card (ex/sinabs_cnn.card.json)" in \
        r.stdout, r.stdout + r.stderr
    for suffix in (".nir", ".card.json"):
        (work / f"model{suffix}").write_bytes((work / "ex" / f"sinabs_cnn{suffix}").read_bytes())
    r = _run(bin_dir, "train", "models", cwd=work)
    assert r.returncode == 0 and "deployable" in r.stdout.lower(), r.stderr
    for target in ("reference", "lava-float"):
        r = _run(bin_dir, "deploy", "run", "model.nir", "--target", target, "--dataset", str(frames),
                 "--no-progress", "--out", f"out-{target}", cwd=work)
        assert r.returncode == 0, r.stderr
        assert (work / f"out-{target}" / "summary.json").exists()
    r = _run(bin_dir, "python", "-c", "import neuromoco.deploy, neuromoco.train; print(neuromoco.deploy.__file__)",
             cwd=work)
    assert r.returncode == 0 and str(ROOT) not in r.stdout and "site-packages" in r.stdout, r.stdout + r.stderr
    # the user's train.py in the working directory is theirs; no installed `train` or `deploy` module exists
    (work / "train.py").unlink()
    r = _run(bin_dir, "python", "-c", "import train", cwd=work)
    assert r.returncode != 0 and "No module named 'train'" in r.stderr
    r = _run(bin_dir, "python", "-c", "import deploy", cwd=work)
    assert r.returncode != 0 and "No module named 'deploy'" in r.stderr


def test_without_lava_a_lava_target_says_how_to_install_it(wheel, tmp_path):
    bin_dir = _fresh_env(tmp_path / "env", wheel, _link_dependencies(tmp_path / "deps", lava=False))
    work = tmp_path / "work"
    work.mkdir()
    frames = _frames(work / "frames.npz")
    model = ROOT / "nir_models" / "sinabs_cnn.nir"
    r = _run(bin_dir, "deploy", "run", str(model), "--target", "lava-fixed", "--dataset", str(frames),
             "--no-progress", "--out", "out", cwd=work)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "lava-nc" in lines[0] and "pip install" in lines[0]
    r = _run(bin_dir, "deploy", "run", str(model), "--target", "reference", "--dataset", str(frames),
             "--no-progress", "--out", "out-ref", cwd=work)
    assert r.returncode == 0, r.stderr
