"""Cross-check of `deploy profile`'s NeuroBench metrics against the `neurobench` package itself.

    python benchmarks/neurobench_check.py [--out FILE]

(needs neurobench and snntorch: `make install` puts them in .venv; `make neurobench` runs this)

One small network is built twice from the same weights: as an snnTorch network that NeuroBench's
``Benchmark`` runs (Conv2d -> Leaky -> AvgPool2d -> Flatten -> Linear -> Leaky) and as the equivalent NIR graph.
The snnTorch run's spikes (recorded per layer with forward hooks) are handed to our counter as a
``RunResult`` with the same inputs and the same batches, so both sides count the same activity. Two input
sets: binary events (the first layer's operations are ACs) and event counts with some 2s (MACs). Every
metric is written with both values; default output: benchmarks/results/neurobench_check.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import nir
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

C_IN, H, C1, N_OUT, T, SAMPLES, BATCH = 2, 6, 3, 4, 5, 12, 4


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Conv 3x3 (2 -> 3) and Linear (27 -> 4) weights with about a third of them zero, non-zero biases."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.6, (C1, C_IN, 3, 3)) * (rng.random((C1, C_IN, 3, 3)) > 0.3)
    w2 = rng.normal(0, 0.8, (N_OUT, C1 * 9)) * (rng.random((N_OUT, C1 * 9)) > 0.35)
    return {"w1": w1.astype(np.float32), "b1": np.full(C1, 0.2, np.float32),
            "w2": w2.astype(np.float32), "b2": np.full(N_OUT, 0.1, np.float32)}


def nir_graph(p: dict[str, np.ndarray]) -> nir.NIRGraph:
    def lif(shape: tuple[int, ...]) -> nir.LIF:
        return nir.LIF(tau=np.full(shape, 0.01), r=np.ones(shape), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape))

    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([C_IN, H, H])}),
        "conv": nir.Conv2d(input_shape=(H, H), weight=p["w1"], stride=1, padding=1, dilation=1, groups=1,
                           bias=p["b1"]),
        "lif1": lif((C1, H, H)),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([C1, 3, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=p["w2"], bias=p["b2"]),
        "lif2": lif((N_OUT,)),
        "output": nir.Output(output_type={"output": np.array([N_OUT])}),
    }, edges=[("input", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "flat"), ("flat", "fc"),
              ("fc", "lif2"), ("lif2", "output")])


def snntorch_net(p: dict[str, np.ndarray]) -> Any:
    import snntorch as snn
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(C_IN, C1, 3, padding=1)
            self.lif1 = snn.Leaky(beta=0.9)
            self.pool = nn.AvgPool2d(2)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(C1 * 9, N_OUT)
            self.lif2 = snn.Leaky(beta=0.9)
            with torch.no_grad():
                for mod, w, b in ((self.conv, "w1", "b1"), (self.fc, "w2", "b2")):
                    mod.weight.copy_(torch.as_tensor(p[w]))
                    mod.bias.copy_(torch.as_tensor(p[b]))

        def reset(self) -> None:
            self.lif1.reset_mem()
            self.lif2.reset_mem()

        def forward(self, x: Any) -> tuple[Any, Any]:
            s1, _ = self.lif1(self.conv(x))
            return self.lif2(self.fc(self.flat(self.pool(s1))))

    return Net()


def frames_for(kind: str, seed: int = 1) -> np.ndarray:
    """``[N, T, C, H, W]`` float32: binary events, or event counts with some 2s (graded for NeuroBench)."""
    rng = np.random.default_rng(seed)
    f = (rng.random((SAMPLES, T, C_IN, H, H)) < 0.25).astype(np.float32)
    if kind == "counts":
        f += (rng.random(f.shape) < 0.05).astype(np.float32) * f
    return f


def run_neurobench(net: Any, frames: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """NeuroBench's results on ``frames``, and each Leaky layer's spikes ``[T, N, *shape]`` from the same run."""
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ActivationSparsityByLayer,
        MembraneUpdates,
        SynapticOperations,
    )
    from neurobench.models import SNNTorchModel
    from torch.utils.data import DataLoader, TensorDataset

    recorded: dict[str, list] = {"lif1": [], "lif2": []}
    for name in recorded:
        getattr(net, name).register_forward_hook(lambda m, i, o, n=name: recorded[n].append(o[0].detach().clone()))
    data = TensorDataset(torch.as_tensor(frames), torch.zeros(len(frames), dtype=torch.long))
    loader = DataLoader(data, batch_size=BATCH, shuffle=False)
    bench = Benchmark(SNNTorchModel(net), loader, [], [],
                      [[Footprint, ConnectionSparsity],
                       [ActivationSparsity, ActivationSparsityByLayer, MembraneUpdates, SynapticOperations]])
    results = bench.run(quiet=True)
    spikes = {}
    for name, steps in recorded.items():  # calls in order: batch 0 steps 0..T-1, batch 1 ...
        per_batch = [torch.stack(steps[i:i + T]) for i in range(0, len(steps), T)]  # [T, B, ...]
        spikes[name] = torch.cat(per_batch, dim=1).numpy().astype(np.uint8)
    return results, spikes


def run_ours(graph: nir.NIRGraph, frames: np.ndarray, spikes: dict[str, np.ndarray]) -> dict[str, Any]:
    from neuromoco.deploy.metrics.neurobench import NeuroBenchCounter, neurobench_metrics
    from neuromoco.deploy.result import RunResult

    counter = NeuroBenchCounter(graph, [C_IN, H, H])
    for i in range(0, len(frames), BATCH):
        fr = np.ascontiguousarray(np.swapaxes(frames[i:i + BATCH], 0, 1))  # [T, B, ...]
        s = {k: v[:, i:i + BATCH] for k, v in spikes.items()}
        res = RunResult(output=np.zeros((T, fr.shape[1], N_OUT)),
                        spike_counts={k: v.reshape(T, v.shape[1], -1).sum(-1) for k, v in s.items()}, spikes=s)
        counter.update(res, fr)
    return neurobench_metrics(graph, counter, "reference")


def snntorch_buffer_bytes(net: Any) -> int:
    """Bytes of the snnTorch neurons' buffers (beta, threshold, graded_spikes_factor, reset_mechanism_val)."""
    return int(sum(b.numel() * b.element_size() for n, b in net.named_buffers()
                   if n.startswith("lif") and not n.endswith(".mem")))  # mem: state, empty when NeuroBench counts


def compare(kind: str) -> dict[str, Any]:
    """Both sides' values of every metric on one input set; ``equal`` per metric."""
    p = weights()
    net = snntorch_net(p)
    frames = frames_for(kind)
    nb, spikes = run_neurobench(net, frames)
    ours = run_ours(nir_graph(p), frames, spikes)
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str, mine: float, theirs: float, tol: float = 1e-9) -> None:
        rows[name] = {"ours": mine, "neurobench": theirs, "equal": abs(mine - theirs) <= tol * max(1.0, abs(theirs))}

    for key in ("Effective_MACs", "Effective_ACs", "Dense"):
        row(f"synaptic_operations.{key}", ours["synaptic_operations"][key], float(nb["SynapticOperations"][key]))
    row("activation_sparsity", ours["activation_sparsity"], float(nb["ActivationSparsity"]))
    for layer, v in nb["ActivationSparsityByLayer"].items():
        row(f"activation_sparsity_by_layer.{layer}", ours["activation_sparsity_by_layer"][layer], float(v))
    row("membrane_updates", ours["membrane_updates"], float(nb["MembraneUpdates"]))
    row("connection_sparsity", ours["connection_sparsity"], float(nb["ConnectionSparsity"]))
    # NeuroBench's footprint is the snnTorch module's parameters and buffers: the weights and biases (ours:
    # weights + biases) plus snnTorch's own neuron buffers, whose layout is snnTorch's, not the network's
    fp = ours["footprint_bytes"]
    row("footprint (weights + biases + snnTorch neuron buffers)",
        fp["weights"] + fp["biases"] + snntorch_buffer_bytes(net), float(nb["Footprint"]))
    return {"inputs": kind, "samples": SAMPLES, "time_steps": T, "batch_size": BATCH, "metrics": rows,
            "our_footprint_bytes": fp, "snntorch_neuron_buffer_bytes": snntorch_buffer_bytes(net),
            "neurobench_raw": {k: v for k, v in nb.items()}}


def main(argv: list[str] | None = None) -> int:
    from bench_common import RESULTS, machine_info, now, write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(RESULTS / "neurobench_check.json"))
    args = ap.parse_args(argv)
    import neurobench

    runs = [compare("binary"), compare("counts")]
    ok = all(r["equal"] for run in runs for r in run["metrics"].values())
    write_json(args.out, {"benchmark": "NeuroBench metrics: ours vs the neurobench package",
                          "neurobench_version": getattr(neurobench, "__version__", "2.3.0"),
                          "machine": machine_info(), "date": now(), "all_equal": ok, "runs": runs})
    for run in runs:
        print(f"inputs: {run['inputs']}")
        for name, r in run["metrics"].items():
            print(f"  {name:58s} ours {r['ours']:<14.10g} neurobench {r['neurobench']:<14.10g} "
                  f"{'equal' if r['equal'] else 'DIFFERENT'}")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
