"""Executors check T (issue 27): frames ``[N, T, ...]`` (a frames .npz's layout) handed to a runner that takes
``[T, B, ...]`` are refused in one line naming both shapes, wherever the model card's T is known; another T
alone still runs (a graph may run for more or fewer steps than it was trained with)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.graph import load_graph
from neuromoco.deploy.graph.shapes import check_time_axis
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.deploy.targets import get_target
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "nir_models" / "sinabs_cnn.nir"  # input [2, 16, 16], T = 12 in its card


@pytest.fixture(scope="module")
def graph_and_card():
    card = ModelCard.load(ModelCard.beside(MODEL))
    assert card.time_steps == 12 and card.input_shape == [2, 16, 16]
    return load_graph(MODEL, input_shape=card.input_shape), card


def _frames(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).poisson(0.3, shape).astype(np.float32)


def _assert_transposed_message(err: pytest.ExceptionInfo) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert "[5, 12, 2, 16, 16]" in msg and "[12, 5, 2, 16, 16]" in msg, msg  # what came, what was expected
    assert "[T, B, *input_shape]" in msg and "swapaxes(0, 1)" in msg, msg


def test_the_check_refuses_only_a_swapped_time_axis():
    with pytest.raises(UserError) as err:
        check_time_axis((5, 12, 2, 16, 16), 12)
    _assert_transposed_message(err)
    for shape in ((12, 5, 2, 16, 16), (12, 12, 2, 16, 16), (7, 5, 2, 16, 16), (5,)):
        check_time_axis(shape, 12)  # right, ambiguous, another T, too short to say: all pass
    check_time_axis((5, 12, 2, 16, 16), None)  # T unknown: nothing to check


def test_reference_executor_refuses_npz_layout_when_it_knows_t(graph_and_card):
    graph, card = graph_and_card
    ex = ReferenceExecutor(graph, card.dt, input_shape=card.input_shape, time_steps=card.time_steps)
    with pytest.raises(UserError) as err:
        ex.run(_frames(5, 12, 2, 16, 16))
    _assert_transposed_message(err)
    assert ex.run(_frames(12, 5, 2, 16, 16)).output.shape[:2] == (12, 5)
    assert ex.run(_frames(4, 5, 2, 16, 16)).output.shape[:2] == (4, 5)  # another T: still runs
    unknown = ReferenceExecutor(graph, card.dt, input_shape=card.input_shape)  # no T given: as before
    assert unknown.run(_frames(5, 12, 2, 16, 16)).output.shape[:2] == (5, 12)


@pytest.mark.parametrize("name", ["reference", "reference-fixed", "onnx"])
def test_runners_built_from_a_card_refuse_npz_layout(graph_and_card, name):
    graph, card = graph_and_card
    target, options = get_target(name)
    runner = target.runner(graph, card, options)
    with pytest.raises(UserError) as err:
        runner.run(_frames(5, 12, 2, 16, 16))
    _assert_transposed_message(err)
    assert runner.run(_frames(12, 5, 2, 16, 16)).output.shape[:2] == (12, 5)


def test_runner_opened_from_an_export_folder_takes_t_from_its_card(graph_and_card, tmp_path):
    graph, card = graph_and_card
    target, options = get_target("reference-fixed")
    out = tmp_path / "export"
    target.export(graph, card, out, options)
    card.save(out / "model_card.json")  # as `deploy export` leaves it
    with pytest.raises(UserError) as err:
        target.load(out, options).run(_frames(5, 12, 2, 16, 16))
    _assert_transposed_message(err)
    (out / "model_card.json").unlink()
    assert target.load(out, options).run(_frames(5, 12, 2, 16, 16)).output.shape[:2] == (5, 12)  # no card, no T


def test_lava_runner_built_from_a_card_refuses_npz_layout(graph_and_card):
    graph, card = graph_and_card
    target, options = get_target("lava-float")
    runner = target.runner(graph, card, options)  # through a temporary export folder, the card beside
    with pytest.raises(UserError) as err:
        runner.run(_frames(5, 12, 2, 16, 16))  # refused before Lava starts
    _assert_transposed_message(err)
