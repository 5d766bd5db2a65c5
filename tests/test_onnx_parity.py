"""fp32 ONNX reproduces the reference executor's spikes exactly, at every layer, step and neuron."""

from __future__ import annotations

import numpy as np
import pytest
from test_onnx_graphs import GRAPHS, convnet

from neuromoco.deploy.card import ModelCard
from neuromoco.deploy.reference_executor import ReferenceExecutor
from neuromoco.deploy.targets.onnx import TARGET


def card_for(frames: np.ndarray, dt: float) -> ModelCard:
    return ModelCard(input_shape=list(frames.shape[2:]), time_steps=int(frames.shape[0]), dt=dt)


@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("seed", [10, 11])
def test_fp32_spikes_identical_to_reference(name, seed):
    g, dt, frames = GRAPHS[name](seed=seed, B=16)
    ref = ReferenceExecutor(g, dt, record_spikes=True).run(frames)
    res = TARGET.runner(g, card_for(frames, dt), record_spikes=True, batch_size=16).run(frames)
    assert set(res.spike_counts) == set(ref.spike_counts) and set(res.spikes) == set(ref.spikes)
    for layer in ref.spikes:
        np.testing.assert_array_equal(res.spikes[layer], ref.spikes[layer], err_msg=layer)
        np.testing.assert_array_equal(res.spike_counts[layer], ref.spike_counts[layer], err_msg=layer)
        assert ref.spike_counts[layer].sum() > 0
    # outputs: spikes identical, voltages (LI readouts) and readout currents within float32 rounding
    np.testing.assert_allclose(res.output, ref.output, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(res.predictions, ref.predictions)


def test_batching_and_progress_do_not_change_results():
    g, dt, frames = convnet(B=10)
    card = card_for(frames, dt)
    whole = TARGET.runner(g, card, batch_size=64).run(frames)
    parts = TARGET.runner(g, card, batch_size=3, progress=True).run(frames)
    np.testing.assert_array_equal(whole.output, parts.output)
    for layer in whole.spike_counts:
        np.testing.assert_array_equal(whole.spike_counts[layer], parts.spike_counts[layer])


def test_load_from_folder_and_frames_reshaped(tmp_path):
    """``load`` takes the export folder too, and flat frames are reshaped to the graph's input."""
    g, dt, frames = convnet(B=3, T=4)
    card = card_for(frames, dt)
    TARGET.export(g, card, tmp_path)
    runner = TARGET.load(tmp_path)
    a = runner.run(frames)
    b = runner.run(frames.reshape(4, 3, -1))
    np.testing.assert_array_equal(a.output, b.output)
    assert a.output.dtype == np.float64 and a.spike_counts["lif1"].dtype == np.int64


@pytest.mark.parametrize("name", ["convnet", "cuba_rnn"])
def test_whole_sequence_graph_matches_step_graph(name, tmp_path):
    """The optional one-graph form (a Scan over time) gives the step graph's results exactly, fp32 and int8."""
    import onnx

    g, dt, frames = GRAPHS[name](B=6)
    card = card_for(frames, dt)
    ref = ReferenceExecutor(g, dt, record_spikes=True).run(frames)
    path = TARGET.export(g, card, tmp_path / "fp32", sequence=True, record_spikes=True)
    assert path.name == "model.seq.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert [n.op_type for n in model.graph.node].count("Scan") == 1
    seq = TARGET.load(path, record_spikes=True).run(frames)
    for layer in ref.spikes:
        np.testing.assert_array_equal(seq.spikes[layer], ref.spikes[layer])
    calib = np.swapaxes(frames, 0, 1)
    q_step = TARGET.runner(g, card, quantize="int8", calibration=calib).run(frames)
    q_seq = TARGET.runner(g, card, quantize="int8", calibration=calib, sequence=True).run(frames)
    np.testing.assert_array_equal(q_seq.output, q_step.output)
    for layer in q_step.spike_counts:
        np.testing.assert_array_equal(q_seq.spike_counts[layer], q_step.spike_counts[layer])
