"""GPU timing of the LIF implementations at the paper's Spikformer shape: Norse loop, fused, Triton, SpikingJelly 2.0.

Run by ``benchmarks/gpu_kernels.sh`` (which calls it once per SpikingJelly kernel choice, since SpikingJelly reads
``SJ_LIF_CUDA_IMPLEMENTATION`` at import, then ``--merge``\\ s the parts). Two measurements per row:

* ``op``: the neuron alone, forward + backward, on ``[T, B, 32, H, W]`` (the input of Spikformer's first LIF:
  T=16, batch 16, 32 channels at 128x128 by default), seeded dyadic inputs so membranes land on the threshold;
  spikes compared with Norse's loop (project rows) and the gradient's max relative difference.
* ``model``: spikformer-2-256 + readout, training steps (AdamW, cross-entropy) and forward passes on
  ``[T, B, 2, H, W]`` Poisson events; the project with ``--lif-impl`` norse / fused / triton, SpikingJelly with
  the same network (``sj_models.py``, built-in ``SoftSign`` surrogate so its CUDA kernels can serve it).

Figures: median samples/s (or ms per call) over ``--rounds``, with ``torch.cuda.synchronize`` around each timed
block; peak CUDA memory per row. ``--dry-run`` shrinks every shape (T=2, batch 2, 16x16) and runs on the CPU
(Triton through its interpreter): it checks that the script works, times nothing worth quoting.

    python benchmarks/gpu_kernels.py --rows norse,fused,triton [--device cuda] [--dry-run] --out part.json
    python benchmarks/gpu_kernels.py --merge part1.json part2.json --out benchmarks/results/gpu_kernels.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if (HERE / ".deps").is_dir():
    sys.path.insert(0, str(HERE / ".deps"))

from bench_common import machine_info, now, write_json  # noqa: E402

PROJECT_ROWS = ("norse", "fused", "triton")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, rounds: int, reps: int) -> list[float]:
    """Seconds per call of ``fn``, one figure per round (``reps`` calls each), after one warm-up call."""
    fn()
    _sync(device)
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync(device)
        out.append((time.perf_counter() - t0) / reps)
    return out


def _peak_reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def op_row(row: str, x, device, rounds: int, reps: int) -> dict:
    """The neuron alone: forward + backward of one LIF layer over ``x [T, ...]``."""
    import torch

    from neuromoco.train.models.lif_kernels import norse_loop
    from neuromoco.train.models.neurons import LIF, LIFConfig

    ref_lif = LIF(LIFConfig())
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device)
    xr = x.clone().requires_grad_(True)
    s_ref = norse_loop(xr, ref_lif._params_on(xr), ref_lif.config.dt)
    (s_ref * g).sum().backward()
    assert xr.grad is not None
    if row in PROJECT_ROWS:
        lif = LIF(LIFConfig(impl=row))

        def run(inp):
            return lif(inp)
    else:  # SpikingJelly's functional multi-step LIF, the kernel its LIFNode calls
        from sj_models import next_float32_above
        from spikingjelly.activation_based import functional, surrogate

        th = next_float32_above(1.0)

        def run(inp):
            v0 = torch.zeros_like(inp[0])
            return functional.lif_multi_step(inp, v0, 2.0, True, th, 0.0, surrogate.SoftSign(alpha=1.0), False)[0]

    xi = x.clone().requires_grad_(True)
    s = run(xi)
    (s * g).sum().backward()
    assert xi.grad is not None
    spikes_identical = bool(torch.equal(s.detach(), s_ref.detach()))
    grad_rel = float((xi.grad - xr.grad).abs().max() / xr.grad.abs().max().clamp_min(1e-30))

    def fwd_bwd():
        xi.grad = None
        (run(xi) * g).sum().backward()

    _peak_reset(device)
    fb = _timed(fwd_bwd, device, rounds, reps)
    peak = _peak_mib(device)
    with torch.no_grad():
        fw = _timed(lambda: run(x), device, rounds, reps)
    return {"forward_ms": 1e3 * statistics.median(fw), "forward_backward_ms": 1e3 * statistics.median(fb),
            "peak_cuda_mib": peak, "spikes_identical_to_norse": spikes_identical,
            "grad_max_rel_diff_vs_norse": grad_rel if row in PROJECT_ROWS else None,
            "note": None if row in PROJECT_ROWS else "SpikingJelly's SoftSign surrogate (half SuperSpike's height): "
                                                     "gradients not comparable, spikes are"}


def model_row(row: str, shape, device, rounds: int, reps: int) -> dict:
    """spikformer-2-256 + readout: training and forward samples/s."""
    import torch

    from neuromoco.train.engine.loops import build_optimizer
    from neuromoco.train.models.neurons import set_lif_impl
    from neuromoco.train.models.registry import build_classifier

    T, B, C, H, W = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full(shape, 0.1), generator=gen).to(device)
    y = torch.randint(0, 10, (B,), generator=gen).to(device)
    torch.manual_seed(0)
    model = build_classifier("spikformer-2-256", (C, H, W), 10)
    reset = None
    if row in PROJECT_ROWS:
        set_lif_impl(model, row)
    else:
        import sj_models
        from spikingjelly.activation_based import functional, surrogate

        sj = sj_models.sj_spikformer_2_256(surrogate.SoftSign(alpha=1.0), 10, input_shape=(C, H, W))
        sj_models.copy_weights(model, sj)
        model = sj

        def reset():
            functional.reset_net(sj)
    model.to(device)
    opt = build_optimizer(model.parameters(), "adamw", 1e-3, 1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if reset:
            reset()

    def forward():
        with torch.no_grad():
            model(x)
        if reset:
            reset()

    model.train()
    _peak_reset(device)
    tr = _timed(train_step, device, rounds, reps)
    peak = _peak_mib(device)
    model.eval()
    fw = _timed(forward, device, rounds, reps)
    return {"train_samples_per_s": B / statistics.median(tr), "forward_samples_per_s": B / statistics.median(fw),
            "peak_cuda_mib_training": peak}


def merge(parts: list[str], out: str) -> None:
    """One JSON from the parts the shell script wrote (rows side by side, each part's machine kept)."""
    docs = [json.loads(Path(p).read_text()) for p in parts]
    merged = {k: v for k, v in docs[0].items() if k not in ("rows", "command")}
    merged["rows"], merged["commands"] = {}, []
    for d in docs:
        merged["rows"].update(d["rows"])
        merged["commands"].append(d["command"])
    write_json(out, merged)
    print(json.dumps({k: {m: {f: (round(v, 3) if isinstance(v, float) else v) for f, v in r[m].items()}
                          for m in ("op", "model") if isinstance(r.get(m), dict)}
                      for k, r in merged["rows"].items()}, indent=1))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="norse,fused,triton",
                    help="norse, fused, triton (the project's --lif-impl) and/or sj (SpikingJelly, its kernel per "
                         "SJ_LIF_CUDA_IMPLEMENTATION); comma-separated")
    ap.add_argument("--label", default="", help="suffix for the row names (e.g. the SpikingJelly kernel)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("-T", "--time-steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128, help="input height and width (default 128)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3, help="calls per round")
    ap.add_argument("--skip-model", action="store_true", help="time the neuron op only")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes (T=2, batch 2, 16x16), 1 round, 1 rep")
    ap.add_argument("--merge", nargs="+", metavar="PART", help="merge the parts' rows into --out and stop")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return 0
    if args.dry_run:
        args.time_steps, args.batch, args.size, args.rounds, args.reps = 2, 2, 16, 1, 1
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --dry-run to check the script")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    T, B, S = args.time_steps, args.batch, args.size
    g = torch.Generator().manual_seed(0)
    x_op = (torch.randint(-8, 40, (T, B, 32, S, S), generator=g) / 16.0).to(device)
    results: dict[str, dict] = {}
    for row in rows:
        name = ("spikingjelly" if row == "sj" else f"project_{row}") + (f"_{args.label}" if args.label else "")
        entry: dict = {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                if row == "sj":
                    from importlib.metadata import version

                    import spikingjelly

                    entry["spikingjelly"] = f"{version('spikingjelly')} from {Path(spikingjelly.__file__).parent}"
                    entry["SJ_LIF_CUDA_IMPLEMENTATION"] = os.environ.get("SJ_LIF_CUDA_IMPLEMENTATION", "auto")
                entry["op"] = op_row(row, x_op, device, args.rounds, args.reps)
                if not args.skip_model:
                    entry["model"] = model_row(row, (T, B, 2, S, S), device, args.rounds, args.reps)
        except ImportError as err:
            entry["skipped"] = f"not importable: {err}"
        except (ValueError, RuntimeError) as err:  # e.g. triton without CUDA, or out of memory
            entry["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
        results[name] = entry
        print(name, json.dumps(entry), flush=True)

    extra = {"device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             "SJ_LIF_CUDA_IMPLEMENTATION": os.environ.get("SJ_LIF_CUDA_IMPLEMENTATION"),
             "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET")}
    try:
        from importlib.metadata import version

        extra["triton"] = version("triton")
        extra["spikingjelly"] = version("spikingjelly") if "spikingjelly" in sys.modules else None
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    write_json(args.out, {
        "benchmark": "gpu_kernels", "dry_run": args.dry_run,
        "command": "python benchmarks/gpu_kernels.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "op_shape": [T, B, 32, S, S], "model": "spikformer-2-256 + Linear readout", "model_input": [T, B, 2, S, S],
        "rounds": args.rounds, "reps_per_round": args.reps, "rows": results,
        "machine": machine_info(**extra), "date": now()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
