"""Build the NIR fixtures in this folder, reproducibly: ``python nir_models/make_fixtures.py``.

Each graph is built with NIR's own API in the form another tool writes it, with its model card
(``X.card.json``: input shape, time steps, dt). Weights come from a fixed seed and are scaled so that every
spiking layer fires on Poisson event-count inputs at the rate the card states.

* ``snntorch_mlp``        snnTorch ``Leaky`` export: Affine -> LIF (per-neuron arrays, tau = dt/(1-beta),
                          r = tau/dt, v_leak = 0) -> Affine -> LIF, dt = 1e-4.
* ``snntorch_rsynaptic``  snnTorch ``RSynaptic`` export: the recurrent layer is a nested NIRGraph
                          (input -> CubaLIF <-> Linear w_rec -> output), w_in = tau_syn/dt.
* ``rnn_cubalif``         the same recurrence written flat: Affine -> CubaLIF -> Affine (recurrent) -> CubaLIF.
* ``sinabs_cnn``          Sinabs export (nodes named by position): Conv2d -> IF (r, v_threshold and v_reset
                          arrays of the layer shape) -> SumPool2d -> ... -> Flatten written in PyTorch's
                          batched convention (start_dim=1 with a 4-d input_type of zeros) -> Affine -> IF.
* ``rockpool_mlp``        Rockpool ``LinearTorch``/``LIFTorch`` export: Linear -> CubaLIF -> Linear -> CubaLIF
                          (r = tau_mem exp(-dt/tau_mem)/dt).
* ``neuromoco_tiny_cnn``  this project's own exporter (neuromoco.train.export) on a small conv-BN-LIF network with
                          average and sum pooling (random weights, BatchNorm folded).
* ``sew_skip_cnn``        SEW-style residual graph written with NIR's API: each ADD of spike tensors is two
                          edges into the next Conv2d (skips around one and around two neuron layers).
* ``braille_cubalif``     the NIR paper's Braille graph as snnTorch writes it (dt 1e-4, tau_syn 2.2e-4, tau_mem 1e-3,
                          w_in = tau_syn/dt = 2.2, r = tau_mem/dt): Affine 12 -> CubaLIF(38) with a recurrent Affine
                          38x38 -> Affine -> CubaLIF(7) readout.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import nir
import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 1234


def _card(model: str, input_shape: list[int], time_steps: int, dt: float, writer: str, rate: float,
          note: str) -> dict:
    """A fixture's model card: ``model`` is the fixture's own name (its architecture), ``writer`` the tool whose
    NIR export it imitates (``extra.written_like``)."""
    return {
        "input_shape": input_shape, "time_steps": time_steps, "dt": dt,
        "dataset": {"name": "synthetic", "split": "test",
                    "preprocessing": {"kind": "poisson event counts", "rate": rate, "seed": 0}},
        "class_names": [], "accuracy": {}, "model": model, "version": "fixture",
        "extra": {"written_like": writer, "note": note},
    }


def _w(rng: np.random.Generator, out: int, inp: int, gain: float) -> np.ndarray:
    return (rng.normal(0.0, 1.0, size=(out, inp)) * gain / np.sqrt(inp)).astype(np.float32)


def snntorch_mlp() -> tuple[nir.NIRGraph, dict]:
    rng = np.random.default_rng(SEED)
    dt, n_in, n_h, n_out = 1e-4, 16, 24, 5

    def leaky(n: int, beta: float, thr: float) -> nir.LIF:
        beta_a = np.full(n, beta, dtype=np.float32)
        tau = dt / (1 - beta_a)
        return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros_like(beta_a), v_threshold=np.full(n, thr, np.float32))

    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc1": nir.Affine(weight=_w(rng, n_h, n_in, 1.5), bias=np.full(n_h, 0.05, np.float32)),
        "lif1": leaky(n_h, 0.9, 1.0),
        "fc2": nir.Affine(weight=_w(rng, n_out, n_h, 2.5), bias=np.zeros(n_out, np.float32)),
        "lif2": leaky(n_out, 0.8, 1.0),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), _card(
        "snntorch_mlp", [n_in], 20, dt, "snntorch", 0.5,
        "Leaky(beta) as LIF(tau=dt/(1-beta), r=tau/dt): v = beta v + I")


def _cuba_snntorch(n: int, alpha: float, beta: float, thr: float, dt: float) -> nir.CubaLIF:
    a, b = np.full(n, alpha), np.full(n, beta)
    tau_syn, tau_mem = dt / (1 - a), dt / (1 - b)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(n),
                       v_threshold=np.full(n, thr), w_in=tau_syn / dt)


def snntorch_rsynaptic() -> tuple[nir.NIRGraph, dict]:
    rng = np.random.default_rng(SEED + 1)
    dt, n_in, n_h, n_out = 1e-4, 12, 16, 4
    sub = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n_h])),
               "lif": _cuba_snntorch(n_h, 0.7, 0.8, 1.0, dt),
               "w_rec": nir.Linear(weight=_w(rng, n_h, n_h, 1.0)),
               "output": nir.Output(output_type=np.array([n_h]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc1": nir.Affine(weight=_w(rng, n_h, n_in, 0.8), bias=np.zeros(n_h, np.float32)),
        "rsyn": sub,
        "fc2": nir.Affine(weight=_w(rng, n_out, n_h, 2.0), bias=np.zeros(n_out, np.float32)),
        "lif2": _cuba_snntorch(n_out, 0.5, 0.8, 1.0, dt),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc1"), ("fc1", "rsyn"), ("rsyn", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), _card(
        "snntorch_rsynaptic", [n_in], 25, dt, "snntorch", 0.4,
        "RSynaptic as a nested NIRGraph; its recurrence takes s[t-1]")


def rnn_cubalif() -> tuple[nir.NIRGraph, dict]:
    rng = np.random.default_rng(SEED + 2)
    dt, n_in, n_h, n_out = 1e-3, 10, 20, 3
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "w_in": nir.Affine(weight=_w(rng, n_h, n_in, 6.0), bias=np.zeros(n_h, np.float32)),
        "rlif": nir.CubaLIF(tau_syn=np.full(n_h, 4e-3), tau_mem=np.full(n_h, 8e-3), r=np.ones(n_h),
                            v_leak=np.zeros(n_h), v_threshold=np.full(n_h, 0.3), v_reset=np.zeros(n_h)),
        "w_rec": nir.Affine(weight=_w(rng, n_h, n_h, 2.0), bias=np.zeros(n_h, np.float32)),
        "w_out": nir.Affine(weight=_w(rng, n_out, n_h, 1.0), bias=np.zeros(n_out, np.float32)),
        "li": nir.LI(tau=np.full(n_out, 5e-3), r=np.ones(n_out), v_leak=np.zeros(n_out)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "w_in"), ("w_in", "rlif"), ("rlif", "w_rec"), ("w_rec", "rlif"), ("rlif", "w_out"),
             ("w_out", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), _card(
        "rnn_cubalif", [n_in], 30, dt, "nir", 0.5,
        "flat recurrent CubaLIF (recurrent Affine), leaky-integrator readout")


def sinabs_cnn() -> tuple[nir.NIRGraph, dict]:
    rng = np.random.default_rng(SEED + 3)

    def conv(c_out: int, c_in: int, gain: float, hw: int) -> nir.Conv2d:
        w = (rng.normal(0, 1, size=(c_out, c_in, 3, 3)) * gain / np.sqrt(c_in * 9)).astype(np.float32)
        return nir.Conv2d(input_shape=(hw, hw), weight=w, stride=np.array([1, 1]), padding=np.array([1, 1]),
                          dilation=np.array([1, 1]), groups=1, bias=np.zeros(c_out, np.float32))

    def iaf(shape: tuple[int, ...], thr: float) -> nir.IF:
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, thr, np.float32),
                      v_reset=np.zeros(shape, np.float32))

    def pool() -> nir.SumPool2d:
        return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))

    nodes = {
        "input": nir.Input(input_type=np.array([2, 16, 16])),
        "0": conv(4, 2, 3.0, 16), "1": iaf((4, 16, 16), 1.0), "2": pool(),
        "3": conv(8, 4, 2.0, 8), "4": iaf((8, 8, 8), 1.0), "5": pool(),
        "6": nir.Flatten(input_type={"input": np.array([0, 0, 0, 0])}, start_dim=1, end_dim=-1),
        "7": nir.Affine(weight=_w(rng, 6, 128, 2.0), bias=np.zeros(6, np.float32)), "8": iaf((6,), 1.0),
        "output": nir.Output(output_type=np.array([6])),
    }
    names = list(nodes)
    edges = list(itertools.pairwise(names))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), _card(
        "sinabs_cnn", [2, 16, 16], 12, 1e-3, "sinabs", 0.3,
        "IAF as IF with v_reset arrays; Flatten dims counted with the batch")


def rockpool_mlp() -> tuple[nir.NIRGraph, dict]:
    rng = np.random.default_rng(SEED + 4)
    dt, n_in, n_h, n_out = 1e-3, 8, 16, 4

    def lif(n: int, tau_mem: float, tau_syn: float, thr: float) -> nir.CubaLIF:
        tm, ts = np.full(n, tau_mem, np.float32), np.full(n, tau_syn, np.float32)
        return nir.CubaLIF(tau_syn=ts, tau_mem=tm, r=(tm * np.exp(-dt / tm) / dt).astype(np.float32),
                           v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, thr, np.float32))

    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "0_LinearTorch": nir.Linear(weight=_w(rng, n_h, n_in, 1.0)),
        "1_LIFTorch": lif(n_h, 20e-3, 10e-3, 1.0),
        "2_LinearTorch": nir.Linear(weight=_w(rng, n_out, n_h, 2.0)),
        "3_LIFTorch": lif(n_out, 20e-3, 10e-3, 1.0),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)), type_check=False), _card(
        "rockpool_mlp", [n_in], 40, dt, "rockpool", 0.5,
        "LinearTorch / LIFTorch (CubaLIF, r = tau_mem exp(-dt/tau_mem)/dt)")


def neuromoco_tiny_cnn() -> tuple[nir.NIRGraph, dict]:
    import torch
    from torch import nn

    from neuromoco.train.export import to_nir
    from neuromoco.train.models.layers import SumPool2d, TimeDistributed
    from neuromoco.train.models.neurons import LIF, LIFConfig

    torch.manual_seed(SEED)
    cfg = LIFConfig(tau_mem=2e-3, dt=1e-3, v_threshold=0.5)
    bn1, bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
    for bn in (bn1, bn2):  # non-trivial evaluation statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.8, 1.5)
        bn.bias.data.uniform_(0.0, 0.3)
    modules = [TimeDistributed(nn.Conv2d(2, 8, 3, padding=1, bias=False)), TimeDistributed(bn1), LIF(cfg),
               TimeDistributed(nn.AvgPool2d(2)), TimeDistributed(nn.Conv2d(8, 8, 3, padding=1)),
               TimeDistributed(bn2), LIF(cfg), TimeDistributed(SumPool2d(2)), TimeDistributed(nn.Flatten()),
               TimeDistributed(nn.Linear(8 * 4 * 4, 10)), LIF(cfg)]
    with torch.no_grad():
        modules[0].module.weight.mul_(3.0)
        modules[9].module.weight.mul_(2.0)
    for m in modules:
        m.eval()
    graph = to_nir(modules, [2, 16, 16], cfg.dt)
    card = _card("neuromoco_tiny_cnn", [2, 16, 16], 10, cfg.dt, "neuromoco", 0.4,
                 "neuromoco.train.export on conv-BN-LIF with avg/sum pooling")
    card["class_names"] = [str(i) for i in range(10)]
    return graph, card


def sew_skip_cnn() -> tuple[nir.NIRGraph, dict]:
    """SEW-style residual graph as another tool writes it: every ADD is two edges into the next conv.

    ``conv3`` reads ``lif1 + lif2`` (a skip around one neuron layer), ``conv4`` reads ``lif1 + lif3`` (a skip
    around two), so paths into one layer differ in length by one and two connections.
    """
    rng = np.random.default_rng(SEED + 5)
    hw, c = 8, 4

    def conv(c_out: int, c_in: int, gain: float) -> nir.Conv2d:
        w = (rng.normal(0, 1, size=(c_out, c_in, 3, 3)) * gain / np.sqrt(c_in * 9)).astype(np.float32)
        return nir.Conv2d(input_shape=(hw, hw), weight=w, stride=np.array([1, 1]), padding=np.array([1, 1]),
                          dilation=np.array([1, 1]), groups=1, bias=np.full(c_out, 0.02, np.float32))

    def lif(shape: tuple[int, ...]) -> nir.LIF:
        return nir.LIF(tau=np.full(shape, 4e-3, np.float32), r=np.ones(shape, np.float32),
                       v_leak=np.zeros(shape, np.float32), v_threshold=np.full(shape, 0.4, np.float32))

    nodes = {
        "input": nir.Input(input_type=np.array([2, hw, hw])),
        "conv1": conv(c, 2, 3.0), "lif1": lif((c, hw, hw)),
        "conv2": conv(c, c, 3.0), "lif2": lif((c, hw, hw)),
        "conv3": conv(c, c, 2.0), "lif3": lif((c, hw, hw)),
        "conv4": conv(c, c, 2.0), "lif4": lif((c, hw, hw)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([c, hw // 2, hw // 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=_w(rng, 5, c * (hw // 2) ** 2, 1.5), bias=np.zeros(5, np.float32)),
        "lif_out": lif((5,)),
        "output": nir.Output(output_type=np.array([5])),
    }
    chain = list(nodes)
    edges = list(itertools.pairwise(chain)) + [("lif1", "conv3"), ("lif1", "conv4")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), _card(
        "sew_skip_cnn", [2, hw, hw], 12, 1e-3, "nir", 0.3,
        "SEW residual ADDs written as two edges into one conv: skips around one and two neuron layers")


def braille_cubalif() -> tuple[nir.NIRGraph, dict]:
    """The NIR paper's Braille graph (snnTorch ``RSynaptic`` + ``Synaptic``, reset to zero), random weights.

    snnTorch's ``alpha = 1 - dt/tau_syn`` and ``beta = 1 - dt/tau_mem`` become CubaLIF(tau_syn, tau_mem,
    r = tau_mem/dt, w_in = tau_syn/dt): with dt 1e-4, tau_syn 2.2e-4 (alpha 0.545), tau_mem 1e-3 (beta 0.9),
    w_in = 2.2 and r = 10, so ``syn = alpha syn + I ; mem = beta mem + syn`` as in snnTorch.
    """
    rng = np.random.default_rng(SEED + 6)
    dt, n_in, n_h, n_out = 1e-4, 12, 38, 7
    w_in, w_rec, w_out = _w(rng, n_h, n_in, 0.3), _w(rng, n_h, n_h, 0.3), _w(rng, n_out, n_h, 0.8)
    w_out = (w_out - w_out.mean(axis=1, keepdims=True) + 0.1).astype(np.float32)  # rows of one mean: near-tied

    def cuba(n: int) -> nir.CubaLIF:
        tau_syn, tau_mem = np.full(n, 2.2e-4, np.float32), np.full(n, 1e-3, np.float32)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / np.float32(dt),
                           v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32),
                           v_reset=np.zeros(n, np.float32), w_in=tau_syn / np.float32(dt))

    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc1": nir.Affine(weight=w_in, bias=np.zeros(n_h, np.float32)),
        "lif1": cuba(n_h),
        "lif1_rec": nir.Affine(weight=w_rec, bias=np.zeros(n_h, np.float32)),
        "fc2": nir.Affine(weight=w_out, bias=np.zeros(n_out, np.float32)),
        "lif2": cuba(n_out),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "lif1_rec"), ("lif1_rec", "lif1"), ("lif1", "fc2"),
             ("fc2", "lif2"), ("lif2", "output")]
    card = _card("braille_cubalif", [n_in], 100, dt, "snntorch", 0.3,
                 "NIR paper Braille graph: CubaLIF(38) with recurrent Affine, w_in = tau_syn/dt = 2.2, dt 1e-4")
    card["class_names"] = ["space", "A", "E", "I", "O", "U", "Y"]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), card


FIXTURES: dict[str, Callable[[], tuple[nir.NIRGraph, dict]]] = {
    "snntorch_mlp": snntorch_mlp,
    "snntorch_rsynaptic": snntorch_rsynaptic,
    "rnn_cubalif": rnn_cubalif,
    "sinabs_cnn": sinabs_cnn,
    "rockpool_mlp": rockpool_mlp,
    "neuromoco_tiny_cnn": neuromoco_tiny_cnn,
    "sew_skip_cnn": sew_skip_cnn,
    "braille_cubalif": braille_cubalif,
}


def sample_frames(card: dict, batch: int, seed: int = 0) -> np.ndarray:
    """Poisson event-count frames ``[T, B, *input_shape]`` as the card's synthetic dataset describes.

    A card that names a real dataset (a trained model's) gets that dataset's test frames instead.
    """
    preprocessing = (card.get("dataset") or {}).get("preprocessing") or {}
    if "rate" not in preprocessing:
        sys.path.insert(0, str(HERE.parent))
        from neuromoco.deploy.card import ModelCard
        from neuromoco.deploy.datasets import load_frames

        frames, _ = load_frames(ModelCard(**{k: v for k, v in card.items() if k != "extra"}), split="test",
                                limit=batch)
        return np.ascontiguousarray(np.swapaxes(frames, 0, 1))
    rate = preprocessing["rate"]
    rng = np.random.default_rng(seed)
    return rng.poisson(rate, size=(card["time_steps"], batch, *card["input_shape"])).astype(np.float32)


def write_all(out_dir: Path = HERE) -> list[Path]:
    sys.path.insert(0, str(HERE.parent))
    from neuromoco.deploy.card import ModelCard
    from neuromoco.io import atomic_write

    paths = []
    for name, build in FIXTURES.items():
        graph, card = build()
        path = atomic_write(out_dir / f"{name}.nir", lambda tmp, g=graph: nir.write(tmp, g))
        ModelCard(**card).save(out_dir / f"{name}.card.json")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all():
        print(p.relative_to(HERE.parent))
