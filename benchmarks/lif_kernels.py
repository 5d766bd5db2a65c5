"""The multi-step LIF's implementations against Norse's step loop: forward and forward + backward time.

Shape [T, N, C, H, W] = [16, 32, 32, 32, 32] float32 by default (16.8 M neuron-steps), the issue's figure
(issue 23: the op forward + backward >= 3x Norse's loop). Rows: Norse's loop, ``fused`` (vectorised PyTorch),
``native`` (the C loops, CPU's default where a compiler builds them) and on CUDA ``triton``. Rounds are interleaved
(norse, fused, native, norse, ...) so that load from other work on the machine hits all alike; each figure is the
median over rounds. Every round also checks that each implementation's spikes equal Norse's bit for bit;
``saved_for_backward_mb`` is what each implementation keeps for its backward (storages counted once), the
memory a training step holds per LIF layer.
One intra-op thread by default: on a machine whose cores are shared, OpenMP's barrier makes two threads slower
than one (measured here: 8 ms against 0.35 ms for one 1M-element ``sub``). Writes
``benchmarks/results/lif_kernels.json``; under a minute on 2 CPU cores. Then the same for one cnn3-34 training
step (T=8, batch 32, 2x34x34), where convolutions take their share.

    python benchmarks/lif_kernels.py
    python benchmarks/lif_kernels.py --shape 16,8,64,16,16 --rounds 5 --threads 2
    python benchmarks/lif_kernels.py --device cuda --shape 16,16,32,64,64 --out /tmp/lif_gpu.json  # + Triton
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, machine_info, now, write_json


def saved_for_backward_mb(fn: Any, x: Any) -> float:
    """MB of the distinct storages that ``fn(x)`` saves for its backward (input and output included)."""
    import torch

    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.clone().requires_grad_(True))
    return round(sum(storages.values()) / 2**20, 1)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_steps(rounds: int, impls: tuple[str, ...], device: str, time_steps: int = 8,
                batch: int = 32) -> dict[str, Any]:
    """One cnn3-34 training step (forward, cross-entropy, backward, SGD) per implementation, interleaved."""
    import torch

    from neuromoco.train.models.neurons import set_lif_impl
    from neuromoco.train.models.registry import build_classifier

    torch.manual_seed(0)
    model = build_classifier("cnn3-34", [2, 34, 34], 10).to(device)
    x = (torch.rand(time_steps, batch, 2, 34, 34) < 0.2).float().to(device)
    y = torch.randint(0, 10, (batch,)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every round computes the same step
    times: dict[str, list[float]] = {i: [] for i in impls}
    for _ in range(rounds):
        for impl in impls:
            set_lif_impl(model, impl)
            _sync(device)
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _sync(device)
            times[impl].append(time.perf_counter() - t0)
    med = {i: statistics.median(v) for i, v in times.items()}
    return {"model": "cnn3-34", "input": [time_steps, batch, 2, 34, 34],
            "median_ms": {i: round(v * 1e3, 1) for i, v in med.items()},
            "speedup_over_norse": {i: round(med["norse"] / v, 2) for i, v in med.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="16,32,32,32,32", help="T,N,... of the input current (default the issue's)")
    ap.add_argument("--rounds", type=int, default=11, help="interleaved rounds per implementation (default 11)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--train-rounds", type=int, default=5, help="cnn3-34 training-step rounds (0: skip; default 5)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda (adds the Triton kernels)")
    ap.add_argument("--allocator", choices=["keep", "default"], default="keep",
                    help="keep: glibc keeps freed memory for reuse, as the train commands set it on CPU "
                         "(neuromoco.train.engine.allocator); default: leave the allocator as it is (default keep)")
    ap.add_argument("--out", default=str(RESULTS / "lif_kernels.json"))
    args = ap.parse_args(argv)

    import torch

    from neuromoco.train.models.lif_kernels import lif_multistep
    from neuromoco.train.models.neurons import LIF, LIFConfig

    torch.set_num_threads(args.threads)
    from neuromoco.train.engine.allocator import keep_freed_memory

    allocator = keep_freed_memory() if args.allocator == "keep" else "system default (--allocator default)"
    dev = args.device
    shape = [int(v) for v in args.shape.split(",")]
    lif = LIF(LIFConfig())  # the project's default neuron: dt/tau = 0.5, threshold 1, reset 0, SuperSpike
    p = lif._params_on(torch.empty((), device=dev))
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(0)) + 0.5).to(dev)
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dev)
    impls = ("norse", "fused", "triton") if dev.startswith("cuda") else ("norse", "fused", "native")
    times: dict[str, dict[str, list[float]]] = {i: {"forward": [], "forward_backward": []} for i in impls}
    identical = True
    for _ in range(args.rounds):
        spikes = {}
        for impl in impls:
            xi = x.clone().requires_grad_(True)
            _sync(dev)
            t0 = time.perf_counter()
            s = lif_multistep(xi, p, 1e-3, impl)
            _sync(dev)
            t1 = time.perf_counter()
            s.backward(g)
            _sync(dev)
            t2 = time.perf_counter()
            times[impl]["forward"].append(t1 - t0)
            times[impl]["forward_backward"].append(t2 - t0)
            spikes[impl] = s.detach()
            del s, xi
        identical &= all(torch.equal(spikes["norse"], spikes[i]) for i in impls)
    med = {i: {k: statistics.median(v) for k, v in d.items()} for i, d in times.items()}
    result: dict[str, Any] = {
        "what": "multi-step LIF over [T, N, ...]: Norse's step loop vs the project's implementations "
                "(train/models/lif_kernels)",
        "command": " ".join(["python benchmarks/lif_kernels.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": now(), "machine": machine_info(threads=args.threads, device=dev), "shape": shape,
        "dtype": "float32", "rounds": args.rounds, "spikes_identical": identical, "allocator": allocator,
        "median_ms": {i: {k: round(v * 1e3, 2) for k, v in d.items()} for i, d in med.items()},
        "min_ms": {i: {k: round(min(v) * 1e3, 2) for k, v in d.items()} for i, d in times.items()},
        "saved_for_backward_mb": {i: saved_for_backward_mb(lambda xi, i=i: lif_multistep(xi, p, 1e-3, i), x)
                                  for i in impls},
        "speedup_over_norse": {i: {k: round(med["norse"][k] / v, 2) for k, v in d.items()} for i, d in med.items()},
    }
    if dev.startswith("cuda"):
        result["machine"]["gpu"] = torch.cuda.get_device_name()
    if args.train_rounds > 0:
        result["cnn3_34_train_step"] = train_steps(args.train_rounds, impls, dev)
    path = write_json(args.out, result)
    for impl in impls:
        print(f"{impl:6s} forward {result['median_ms'][impl]['forward']:8.1f} ms   forward+backward "
              f"{result['median_ms'][impl]['forward_backward']:8.1f} ms   x{result['speedup_over_norse'][impl]}")
    print(f"saved for backward (MB): {result['saved_for_backward_mb']}; spikes identical: {identical} -> {path}")
    if "cnn3_34_train_step" in result:
        step = result["cnn3_34_train_step"]
        print(f"cnn3-34 training step {step['input']}: {step['median_ms']} ms, x{step['speedup_over_norse']}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
