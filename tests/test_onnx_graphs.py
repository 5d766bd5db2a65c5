"""Test graphs for the ONNX target (imported by the other ``test_onnx_*`` files) and sanity checks on them.

Each factory returns ``(graph, dt, frames [T, B, C, H, W])`` with random weights scaled so that every
spiking layer fires at a moderate rate on sparse event-count frames, like real DVS inputs.
"""

from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest

DT = 1e-3


def lif(shape, tau=2e-3, v_th=1.0, v_leak=0.0, v_reset=0.0):
    return nir.LIF(tau=np.full(shape, tau), r=np.ones(shape), v_leak=np.full(shape, v_leak),
                   v_threshold=np.full(shape, v_th), v_reset=np.full(shape, v_reset))


def events(rng, T, B, shape, p=0.1):
    """Sparse event counts (0, 1, 2) per pixel, like framed DVS events."""
    x = (rng.random((T, B, *shape)) < p) * rng.integers(1, 3, (T, B, *shape))
    return x.astype(np.float32)


def _w(rng, shape, gain):
    fan_in = int(np.prod(shape[1:]))
    return (rng.normal(0.0, gain / np.sqrt(fan_in), shape)).astype(np.float32)


def convnet(seed=0, T=12, B=6, size=34):
    """The 34x34 deployable style: conv-LIF-sumpool, conv-LIF-avgpool, flatten, affine-LIF, affine-LI."""
    rng = np.random.default_rng(seed)
    s2, s4 = size // 2, size // 4
    nodes = {
        "input": nir.Input({"input": np.array([2, size, size])}),
        "conv1": nir.Conv2d((size, size), _w(rng, (8, 2, 3, 3), 3.0), 1, 1, 1, 1, rng.normal(0, .1, 8)),
        "lif1": lif((8, size, size)),
        "pool1": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "conv2": nir.Conv2d((s2, s2), _w(rng, (16, 8, 3, 3), 4.0), 1, 1, 1, 1, np.zeros(16)),
        "lif2": lif((16, s2, s2), tau=4e-3, v_leak=0.1),
        "pool2": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "flat": nir.Flatten({"input": np.array([16, s4, s4])}, 0),
        "fc1": nir.Affine(_w(rng, (32, 16 * s4 * s4), 6.0), rng.normal(0, .1, 32)),
        "lif3": lif(32, v_th=0.5),
        "fc2": nir.Affine(_w(rng, (10, 32), 3.0), np.zeros(10)),
        "li": nir.LI(tau=np.full(10, 5e-3), r=np.ones(10), v_leak=np.zeros(10)),
        "output": nir.Output({"output": np.array([10])}),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes, [(a, b) for a, b in itertools.pairwise(names)], type_check=False)
    return g, DT, events(rng, T, B, (2, size, size))


def mlp(seed=1, T=20, B=8):
    """An MLP on flat input with LIF layers (non-unit r, leak) and a spiking readout."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input({"input": np.array([64])}),
        "fc1": nir.Affine(_w(rng, (48, 64), 4.0), rng.normal(0, .2, 48)),
        "lif1": nir.LIF(tau=rng.uniform(2e-3, 8e-3, 48), r=rng.uniform(0.5, 2.0, 48), v_leak=np.zeros(48),
                        v_threshold=np.full(48, 0.8), v_reset=np.zeros(48)),
        "fc2": nir.Linear(_w(rng, (10, 48), 5.0)),
        "lif2": lif(10, tau=3e-3, v_th=0.4),
        "output": nir.Output({"output": np.array([10])}),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes, [(a, b) for a, b in itertools.pairwise(names)], type_check=False)
    return g, DT, events(rng, T, B, (64,), p=0.2)


def if_net(seed=2, T=16, B=6):
    """Sinabs/snnTorch style: IF with v_reset arrays, SumPool2d, Flatten with start_dim, IF readout."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input({"input": np.array([2, 16, 16])}),
        "conv": nir.Conv2d((16, 16), _w(rng, (4, 2, 3, 3), 1.5), 1, 0, 1, 1, np.zeros(4)),
        "if1": nir.IF(r=np.ones((4, 14, 14)), v_threshold=np.ones((4, 14, 14)), v_reset=np.zeros((4, 14, 14))),
        "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "flat": nir.Flatten({"input": np.array([4, 7, 7])}, 0),
        "fc": nir.Linear(_w(rng, (10, 196), 2.0)),
        "if2": nir.IF(r=np.full(10, 0.5), v_threshold=np.full(10, 0.5), v_reset=np.full(10, -0.1)),
        "output": nir.Output({"output": np.array([10])}),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes, [(a, b) for a, b in itertools.pairwise(names)], type_check=False)
    return g, DT, events(rng, T, B, (2, 16, 16), p=0.15)


def cuba_rnn(seed=3, T=25, B=5):
    """CubaLIF with a recurrent Affine (snnTorch RSynaptic style) and a CubaLI readout."""
    rng = np.random.default_rng(seed)
    n = 24
    nodes = {
        "input": nir.Input({"input": np.array([32])}),
        "w_in": nir.Affine(_w(rng, (n, 32), 6.0), np.zeros(n)),
        "cuba": nir.CubaLIF(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 2e-3), r=np.ones(n), v_leak=np.zeros(n),
                            v_threshold=np.full(n, 0.5), v_reset=np.zeros(n), w_in=np.full(n, 1.5)),
        "w_rec": nir.Affine(_w(rng, (n, n), 2.0), rng.normal(0, .05, n)),
        "w_out": nir.Linear(_w(rng, (5, n), 3.0)),
        "readout": nir.CubaLI(tau_syn=np.full(5, 3e-3), tau_mem=np.full(5, 6e-3), r=np.ones(5),
                              v_leak=np.zeros(5), w_in=np.ones(5)),
        "output": nir.Output({"output": np.array([5])}),
    }
    edges = [("input", "w_in"), ("w_in", "cuba"), ("cuba", "w_rec"), ("w_rec", "cuba"), ("cuba", "w_out"),
             ("w_out", "readout"), ("readout", "output")]
    g = nir.NIRGraph(nodes, edges, type_check=False)
    return g, DT, events(rng, T, B, (32,), p=0.3)


def misc_ops(seed=4, T=10, B=4):
    """Conv2d with groups, dilation, stride and 'same' padding; Conv1d; Scale; Threshold; a skip edge."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input({"input": np.array([4, 12, 12])}),
        "dw": nir.Conv2d((12, 12), _w(rng, (8, 2, 3, 3), 2.0), 1, "same", 2, 2, rng.normal(0, .1, 8)),
        "lif1": lif((8, 12, 12)),
        "down": nir.Conv2d((12, 12), _w(rng, (8, 8, 3, 3), 3.0), 2, (1, 0), 1, 1, np.zeros(8)),
        "scale": nir.Scale(rng.uniform(0.5, 1.5, (8, 6, 5)).astype(np.float32)),
        "th": nir.Threshold(np.full((8, 6, 5), 0.3)),
        "flat": nir.Flatten({"input": np.array([8, 6, 5])}, 1),  # -> [8, 30]
        "c1d": nir.Conv1d(30, _w(rng, (6, 8, 3), 2.0), 1, 1, 1, 1, np.zeros(6)),
        "lif2": lif((6, 30), v_th=0.6),
        "skip": nir.Conv1d(30, _w(rng, (6, 8, 1), 1.0), 1, 0, 1, 1, np.zeros(6)),
        "flat2": nir.Flatten({"input": np.array([6, 30])}, 0),
        "fc": nir.Affine(_w(rng, (3, 180), 2.0), np.zeros(3)),
        "output": nir.Output({"output": np.array([3])}),
    }
    edges = [("input", "dw"), ("dw", "lif1"), ("lif1", "down"), ("down", "scale"), ("scale", "th"),
             ("th", "flat"), ("flat", "c1d"), ("c1d", "lif2"), ("flat", "skip"), ("skip", "lif2"),
             ("lif2", "flat2"), ("flat2", "fc"), ("fc", "output")]
    g = nir.NIRGraph(nodes, edges, type_check=False)
    return g, DT, events(rng, T, B, (4, 12, 12), p=0.2)


GRAPHS = {"convnet": convnet, "mlp": mlp, "if_net": if_net, "cuba_rnn": cuba_rnn, "misc_ops": misc_ops}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graphs_are_valid_and_active(name):
    """Every test graph passes the checker and every spiking layer fires, but not saturated."""
    from neuromoco.deploy.graph import check_graph
    from neuromoco.deploy.reference_executor import ReferenceExecutor

    g, dt, frames = GRAPHS[name]()
    check_graph(g)
    res = ReferenceExecutor(g, dt).run(frames)
    assert res.spike_counts
    shapes = check_graph(g)
    for node, counts in res.spike_counts.items():
        rate = counts.sum() / (counts.shape[0] * counts.shape[1] * np.prod(shapes[node]))
        assert 0.0 < rate < 0.7, (node, rate)


# ------------------------------------------------------------------------------------------ digits task

def digit_frames(T=10, size=34, seed=0, rate=0.35):
    """scikit-learn's 8x8 handwritten digits as event-count frames ``[N, T, 2, size, size]`` and labels.

    Real image content, made event-like: each digit is enlarged 4x onto a ``size`` x ``size`` sensor and
    every pixel emits Bernoulli events at a rate set by its intensity (ON channel) or by its intensity
    one pixel to the right (OFF channel, an edge-like second polarity).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    img = np.kron(digits.images / 16.0, np.ones((4, 4)))  # [N, 32, 32]
    pad = (size - 32) // 2
    img = np.pad(img, ((0, 0), (pad, size - 32 - pad), (pad, size - 32 - pad)))
    shifted = np.roll(img, 1, axis=2)
    p = np.stack([img, shifted], axis=1)[:, None] * rate  # [N, 1, 2, H, W]
    rng = np.random.default_rng(seed)
    frames = (rng.random((len(img), T, 2, size, size)) < p).astype(np.float32)
    return frames, digits.target.astype(np.int64)


def digits_convnet(T=10, seed=0, n_fit=800, n_total=1200):
    """The 34x34 conv net with random conv layers and a readout fitted by ridge regression on its spikes.

    Returns ``(graph, dt, frames [N, T, ...], labels, n_fit)``: the first ``n_fit`` samples fitted the
    readout, the rest are held out. The classifier is real (far above chance), so prediction agreement
    between targets is a meaningful measure.
    """
    import torch

    from neuromoco.deploy.reference_executor import ReferenceExecutor

    g, dt, _ = convnet(seed=seed)
    del g.nodes["li"]
    g.edges = [e for e in g.edges if "li" not in e] + [("fc2", "output")]
    frames, labels = digit_frames(T=T, seed=seed)
    frames, labels = frames[:n_total], labels[:n_total]
    ex = ReferenceExecutor(g, dt)
    feats = []
    for s in range(0, len(frames), 128):
        tr = ex.trace(np.swapaxes(frames[s:s + 128], 0, 1))
        feats.append(tr["lif3"].sum(0).to(torch.float64).numpy())
    feats = np.concatenate(feats)
    x = np.concatenate([feats[:n_fit], np.full((n_fit, 1), float(T))], axis=1)
    y = np.eye(10)[labels[:n_fit]]
    sol = np.linalg.solve(x.T @ x + 1.0 * np.eye(x.shape[1]), x.T @ y)  # ridge
    g.nodes["fc2"] = nir.Affine(sol[:-1].T.astype(np.float32), sol[-1].astype(np.float32))
    return g, dt, frames, labels, n_fit


def trained_digits_mlp(T=10, hidden=64, epochs=10, seed=0):
    """A small SNN trained here in seconds: 8x8 digits as events -> Affine -> LIF -> Affine readout.

    Trained with BPTT and a fast-sigmoid surrogate gradient on the first 1000 samples, in the reference
    executor's exact arithmetic (Norse's LIF order, k = dt * float32(1/tau)). A trained network has the
    output margins that make prediction agreement between float and int8 meaningful, which random
    weights lack. Returns ``(graph, dt, frames [N, T, 64], labels, n_train)``.
    """
    import torch
    from sklearn.datasets import load_digits

    from neuromoco.deploy.semantics import euler_gain

    digits = load_digits()
    rng = np.random.default_rng(seed)
    p = (digits.data / 16.0)[:, None, :] * 0.5
    frames = (rng.random((len(p), T, 64)) < p).astype(np.float32)
    labels = digits.target.astype(np.int64)
    n_train = 1000
    torch.manual_seed(seed)
    fc1, fc2 = torch.nn.Linear(64, hidden), torch.nn.Linear(hidden, 10)
    k = float(euler_gain(DT, np.array(2e-3), np.float32))

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x > 0).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g / (1 + 10 * x.abs()) ** 2

    def forward(x):  # x [T, B, 64]
        cur = fc1(x)
        v = torch.zeros_like(cur[0])
        out = []
        for t in range(x.shape[0]):
            v = v + k * (cur[t] - v)
            s = Spike.apply(v - 1.0)
            v = v * (1 - s)
            out.append(fc2(s))
        return torch.stack(out).sum(0)

    opt = torch.optim.Adam([*fc1.parameters(), *fc2.parameters()], lr=5e-3)
    xs, ys = torch.tensor(frames[:n_train]).transpose(0, 1), torch.tensor(labels[:n_train])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and deterministic
    try:
        for _ in range(epochs):
            perm = torch.randperm(n_train)
            for s in range(0, n_train, 100):
                idx = perm[s:s + 100]
                loss = torch.nn.functional.cross_entropy(forward(xs[:, idx]), ys[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)

    def det(t: torch.Tensor) -> np.ndarray:
        return t.detach().numpy().astype(np.float32)

    nodes = {
        "input": nir.Input({"input": np.array([64])}),
        "fc1": nir.Affine(det(fc1.weight), det(fc1.bias)),
        "lif": lif(hidden),
        "fc2": nir.Affine(det(fc2.weight), det(fc2.bias)),
        "output": nir.Output({"output": np.array([10])}),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes, [(a, b) for a, b in itertools.pairwise(names)], type_check=False)
    return g, DT, frames, labels, n_train
