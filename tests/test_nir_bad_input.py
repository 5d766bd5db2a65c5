"""Bad NIR input is one clear line naming what is wrong: from the API (UserError) and from `deploy inspect`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from neuromoco.deploy.graph import check_graph, load_graph, node_shapes
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _good() -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([8])),
               "fc1": nir.Affine(weight=rng.normal(size=(6, 8)).astype(np.float32), bias=np.zeros(6, np.float32)),
               "lif1": nir.LIF(tau=np.full(6, 2e-3), r=np.ones(6), v_leak=np.zeros(6), v_threshold=np.ones(6)),
               "fc2": nir.Affine(weight=rng.normal(size=(3, 6)).astype(np.float32), bias=np.zeros(3, np.float32)),
               "lif2": nir.LIF(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        type_check=False)


def _write(graph: nir.NIRGraph, path: Path) -> Path:
    nir.write(str(path), graph)
    return path


def _truncated(tmp: Path) -> Path:
    good = _write(_good(), tmp / "good.nir")
    bad = tmp / "truncated.nir"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def _garbage(tmp: Path) -> Path:
    bad = tmp / "garbage.nir"
    bad.write_bytes(b"this is not an HDF5 file\n" * 10)
    return bad


def _unknown_type(tmp: Path) -> Path:
    path = _write(_good(), tmp / "unknown.nir")
    with h5py.File(path, "r+") as f:
        del f["node/nodes/lif1/type"]
        f["node/nodes/lif1"].create_dataset("type", data="Izhikevich", dtype=h5py.string_dtype())
    return path


def _mismatch(tmp: Path) -> Path:
    g = _good()
    g.nodes["fc2"] = nir.Affine(weight=np.ones((3, 5), np.float32), bias=np.zeros(3, np.float32))
    return _write(g, tmp / "mismatch.nir")


def _nan(tmp: Path) -> Path:
    g = _good()
    g.nodes["fc1"].weight[2, 3] = np.nan
    return _write(g, tmp / "nan.nir")


CASES = {
    "truncated": (_truncated, ["truncated or corrupt"]),
    "garbage": (_garbage, ["truncated or corrupt"]),
    "unknown": (_unknown_type, ["'lif1'", "unknown type 'Izhikevich'"]),
    "mismatch": (_mismatch, ["lif1 -> fc2", "[6]", "[5]"]),
    "nan": (_nan, ["'fc1'", "weight", "NaN", "(2, 3)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_load_graph_raises_one_line(tmp_path, case):
    make, words = CASES[case]
    path = make(tmp_path)
    with pytest.raises(UserError) as info:
        load_graph(path)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_cli_exit_2_without_traceback(tmp_path, case):
    make, words = CASES[case]
    path = make(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "neuromoco.deploy.cli", "inspect", str(path)], check=False,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warnings.warn" not in ln]
    assert len(lines) == 1 and lines[0].startswith("deploy inspect: error:"), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_inspect_cli_on_good_graph(tmp_path):
    path = _write(_good(), tmp_path / "good.nir")
    proc = subprocess.run([sys.executable, "-m", "neuromoco.deploy.cli", "inspect", str(path), "--json"], check=False,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    info = json.loads(proc.stdout)
    assert [n["name"] for n in info["nodes"]] == ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    assert info["nodes"][2]["output_shape"] == [6] and info["spiking_neurons"] == 9
    text = subprocess.run([sys.executable, "-m", "neuromoco.deploy.cli", "inspect", str(path)], check=False,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert text.returncode == 0 and "lif1" in text.stdout and "fc1 -> lif1" in text.stdout


def test_missing_file():
    with pytest.raises(UserError, match="not found"):
        load_graph("/nonexistent/model.nir")


@pytest.mark.parametrize("node,kind", [(nir.Delay(delay=np.ones(6)), "Delay"), (nir.I(r=np.ones(6)), "I")])
def test_unsupported_nir_node_named(node, kind):
    g = _good()
    g.nodes["lif1"] = node
    with pytest.raises(UserError, match=f"node 'lif1' has unsupported type {kind} "):
        check_graph(g)


def test_infinite_and_bad_time_constant():
    g = _good()
    g.nodes["lif2"].v_threshold[1] = np.inf
    with pytest.raises(UserError, match=r"'lif2'.*v_threshold.*infinite"):
        check_graph(g)
    g = _good()
    g.nodes["lif1"].tau[0] = 0.0
    with pytest.raises(UserError, match=r"'lif1'.*tau must be > 0"):
        check_graph(g)


def test_shape_mismatch_names_both_nodes_and_shapes():
    g = _good()
    g.nodes["lif2"] = nir.LIF(tau=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4))
    with pytest.raises(UserError) as info:
        node_shapes(g)
    assert str(info.value) == ("shape mismatch on edge fc2 -> lif2: fc2 gives [3], lif2 (LIF) expects [4] "
                               "(from its tau)")


def test_conv_and_flatten_mismatches():
    conv = nir.Conv2d(input_shape=(8, 8), weight=np.ones((4, 3, 3, 3), np.float32), stride=1, padding=1,
                      dilation=1, groups=1, bias=np.zeros(4, np.float32))
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2, 8, 8])), "conv": conv, "output": nir.Output(None)},
                     edges=[("input", "conv"), ("conv", "output")], type_check=False)
    with pytest.raises(UserError, match=r"input -> conv: input gives \[2, 8, 8\], conv \(Conv2d\) expects \[3"):
        check_graph(g)
    flat = nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0)
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2, 8, 8])), "flat": flat, "output": nir.Output(None)},
                     edges=[("input", "flat"), ("flat", "output")], type_check=False)
    with pytest.raises(UserError,
                       match=r"input -> flat: input gives \[2, 8, 8\], flat \(Flatten\) expects \[2, 4, 4\]"):
        check_graph(g)


def test_structure_errors():
    g = _good()
    g.nodes["orphan"] = nir.Affine(weight=np.ones((3, 3)), bias=np.zeros(3))
    with pytest.raises(UserError, match="orphan.*cannot be reached"):
        check_graph(g)
    g = _good()
    g.edges.append(("fc1", "ghost"))
    with pytest.raises(UserError, match="'ghost', which is not in the graph"):
        check_graph(g)
    g = _good()
    del g.nodes["output"]
    g.edges = [e for e in g.edges if e[1] != "output"]
    with pytest.raises(UserError, match="exactly one Output node, it has 0"):
        check_graph(g)


def test_card_input_shape_disagreeing_with_graph():
    with pytest.raises(UserError, match=r"Input node 'input' has shape \[8\], the model card says \[3, 4\]"):
        check_graph(_good(), input_shape=[3, 4])
    check_graph(_good(), input_shape=[2, 4])  # same size, another layout: accepted (frames are reshaped)


def test_dt_required_for_leaky_neurons():
    with pytest.raises(UserError, match="'lif1' \\(LIF\\) needs dt"):
        ReferenceExecutor(_good(), None)


def test_frames_of_wrong_size():
    with pytest.raises(UserError, match=r"frames of shape \[7\] per step do not fit the graph's input \[8\]"):
        ReferenceExecutor(_good(), 1e-3).run(np.zeros((3, 2, 7), np.float32))
