"""Without Lava, building or loading the Lava target is one line saying how to install Lava.

Lava's absence is simulated by replacing the one import seam of ``compat`` (``compat._import``) for the
duration of a test, so Lava stays importable for every other test in the same process.
"""

from __future__ import annotations

import sys
from types import ModuleType

import nir
import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.targets.lava import TARGET, compat
from neuromoco.errors import UserError

PIP = "pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0"


def _absent(missing: str):
    """An import of Lava modules that fails as when ``missing`` (Lava itself, or a dependency) is not installed."""
    real = compat._import

    def imp(name: str) -> ModuleType:
        if name.split(".")[0] == "lava":
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real(name)

    return imp


def _model() -> tuple[nir.NIRGraph, ModelCard]:
    nodes = {"input": nir.Input(input_type=np.array([3])), "fc": nir.Linear(weight=np.eye(3)),
             "lif": nir.LIF(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
             "output": nir.Output(output_type=np.array([3]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    return graph, ModelCard(input_shape=[3], time_steps=4, dt=0.001)


def _assert_install_hint(err: UserError, names: str) -> None:
    msg = str(err)
    assert "\n" not in msg, msg
    assert names in msg and "`make install`" in msg and PIP in msg, msg
    assert msg.index(PIP) < msg.index("`make install`"), "the pip command comes first: a wheel user has no Makefile"


def test_building_or_loading_without_lava_says_how_to_install(monkeypatch, tmp_path):
    graph, card = _model()
    monkeypatch.setattr(compat, "_import", _absent("lava"))
    with pytest.raises(UserError) as built:
        TARGET.runner(graph, card)
    _assert_install_hint(built.value, "Lava, which is not installed (No module named 'lava')")
    path = TARGET.export(graph, card, tmp_path / "out")  # exporting a plan needs no Lava
    with pytest.raises(UserError) as loaded:
        TARGET.load(path)
    _assert_install_hint(loaded.value, "not installed")
    monkeypatch.undo()  # Lava is back for everyone else in this process
    assert compat.import_lava().__name__ == "lava.magma.core.run_configs"


def test_a_missing_runtime_dependency_is_named(monkeypatch):
    monkeypatch.setattr(compat, "_import", _absent("asteval"))
    with pytest.raises(UserError) as err:
        compat.import_lava()
    _assert_install_hint(err.value, "cannot be imported (No module named 'asteval')")


def test_settle_start_method_never_raises_without_lava(monkeypatch):
    monkeypatch.delitem(sys.modules, "lava.magma.runtime.message_infrastructure.multiprocessing", raising=False)
    monkeypatch.setattr(compat, "_import", _absent("lava"))
    compat.settle_start_method()  # no exception: the Lava target reports the problem when it is built
