"""Graph pictures: the layout (depths, columns, forward / skip / recurrent edges) and ``deploy inspect --draw``."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from neuromoco.deploy.cli import main
from neuromoco.deploy.graph import load_graph, node_io_shapes
from neuromoco.deploy.graph.draw import draw_graph, layout, node_label
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SEW = ROOT / "nir_models" / "sew_skip_cnn.nir"  # conv1 -> lif1 -> ... with shortcuts lif1 -> conv3, lif1 -> conv4


def _lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 0.004), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 0.5))


def _graph() -> nir.NIRGraph:
    """input -> fc1 -> lif1 -> fc2 -> lif2 -> output, a shortcut lif1 -> lif2 and a loop lif2 -> rec -> lif2."""
    rng = np.random.default_rng(0)
    n = 4
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([n])}),
        "fc1": nir.Affine(weight=rng.normal(size=(n, n)), bias=np.zeros(n)),
        "lif1": _lif(n),
        "fc2": nir.Linear(weight=rng.normal(size=(n, n))),
        "lif2": _lif(n),
        "rec": nir.Linear(weight=rng.normal(size=(n, n))),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output"),
              ("lif1", "lif2"), ("lif2", "rec"), ("rec", "lif2")])


def test_the_layout_layers_by_depth_and_tells_edges_apart():
    lay = layout(_graph())
    # the longest forward path from the input; the loop's edge back into lif2 does not count
    assert lay.depth == {"input": 0, "fc1": 1, "lif1": 2, "fc2": 3, "lif2": 4, "output": 5, "rec": 5}
    assert lay.edges[("lif1", "lif2")] == "skip"  # spans two rows
    assert lay.edges[("rec", "lif2")] == "recurrent"
    assert lay.edges[("lif2", "rec")] == "forward" and lay.edges[("fc2", "lif2")] == "forward"
    assert sorted(lay.column[n] for n in ("output", "rec")) == [0, 1] and lay.column["lif2"] == 0
    assert (lay.rows, lay.width) == (6, 2)


def test_a_box_says_kind_shape_and_key_parameters():
    graph = load_graph(SEW, input_shape=[2, 8, 8])
    io = node_io_shapes(graph, [2, 8, 8])
    assert node_label(graph.nodes["conv1"], "conv1", io["conv1"]) == ("conv1", "Conv2d [4,8,8]",
                                                                    "k3×3 s1,1 p1,1  2→4 ch")
    assert node_label(graph.nodes["lif1"], "lif1", io["lif1"]) == ("lif1", "LIF [4,8,8]", "τ=4 ms  θ=0.4")
    assert node_label(graph.nodes["conv3"], "conv3", io["conv3"], summed=True)[1] == "Conv2d [4,8,8]   Σ inputs"
    assert node_label(graph.nodes["fc"], "fc", io["fc"])[2] == "64→5 +bias"
    assert node_label(graph.nodes["pool"], "pool", io["pool"])[2] == "k2×2 s2,2"
    lay = layout(graph)
    assert [e for e, k in lay.edges.items() if k == "skip"] == [("lif1", "conv3"), ("lif1", "conv4")]


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_inspect_draws_the_graph(tmp_path, capsys, suffix, magic):
    out = tmp_path / f"graph{suffix}"
    assert main(["inspect", str(SEW), "--draw", str(out)]) == 0
    assert out.read_bytes()[:5].startswith(magic) and out.stat().st_size > 10_000
    assert f"drew {out}" in capsys.readouterr().out


def test_a_recurrent_graph_draws(tmp_path):
    path = draw_graph(_graph(), tmp_path / "g.png")
    assert path.stat().st_size > 5_000


def test_an_unknown_picture_suffix_is_one_line(tmp_path, capsys):
    assert main(["inspect", str(SEW), "--draw", str(tmp_path / "graph.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must be one of .svg, .png, .pdf" in err
    assert not (tmp_path / "graph.jpg").exists()
    with pytest.raises(UserError, match="cannot draw"):
        draw_graph(_graph(), tmp_path / "g.gif")
