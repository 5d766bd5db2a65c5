"""Training throughput of the project's cnn3-34 (Norse) against the same network built in SpikingJelly.

Both models are ``cnn3-34`` with its classifier readout: three stages of conv3x3 (no bias) - BatchNorm - LIF -
2x2 sum pooling (16-32-32 channels, 34 -> 17 -> 8 -> 4), flatten to 512, ``Linear(512, 10)`` per time step,
logits = mean over T. The project's is ``neuromoco.train.models.registry.build_classifier("cnn3-34")`` (Norse box LIF,
multi-step over T); the SpikingJelly one is built from ``spikingjelly.activation_based.layer`` modules and
``neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0, detach_reset=False,
step_mode='m', backend='torch')``, which is the same neuron: ``v += (x - v) / 2``, spike when ``v`` crosses
1, hard reset to 0 (docs/semantics.md; the project's dt/tau = 0.5). Sum pooling is SpikingJelly's
``layer.AvgPool2d(2, divisor_override=1)``. The parameter counts are asserted equal.

Surrogate gradients: the project uses Norse's SuperSpike, ``d/dx = 1 / (1 + |x|)^2`` (Norse 1.1 ignores its
``alpha``). SpikingJelly's closest built-in is ``surrogate.SoftSign(alpha=1)``, ``1 / (2 (1 + |x|)^2)``: the same
shape at half the height (``--surrogate softsign``, default). ``--surrogate superspike`` uses a SpikingJelly
``SurrogateFunctionBase`` subclass defined here with exactly Norse's gradient. The two cost the same.

Measured in one process, interleaved: after warm-up, each round times ``--steps`` training steps
(forward, cross-entropy on the mean readout, backward, AdamW step as ``train finetune`` builds it: lr 1e-3,
weight decay 1e-4 on weights only) and ``--steps`` forward passes (eval mode, no autograd) of each framework,
the order alternating between rounds; the figures are medians over rounds. Input: seeded Poisson event counts
``[T, B, 2, 34, 34]`` (rate 0.1 per pixel and step, about the embedded dataset's density), random labels.

Sanity check before timing: the SpikingJelly model gets the project model's weights; both run the same batch
in training mode and the spikes of every LIF layer and the logits are compared; the gradients are compared
too, against an exact-surrogate copy. Writes ``benchmarks/results/spikingjelly_compare.json``.

    python benchmarks/spikingjelly_compare.py [--rounds 11] [--steps 5] [--batch 32] [-T 8] [--threads N]
"""

from __future__ import annotations

import argparse
import inspect
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, machine_info, now, write_json

OUT = RESULTS / "spikingjelly_compare.json"
INSTALL_HINT = "spikingjelly is not installed: run pip install -e '.[bench]' (or make bench)"


def sj_cnn3_34(surrogate_fn, num_classes: int = 10, channels=(16, 32, 32), input_shape=(2, 34, 34)):
    """cnn3-34 + readout in SpikingJelly's multi-step layers; ``forward(x [T,B,C,H,W]) -> logits [B, classes]``."""
    import torch
    from spikingjelly.activation_based import layer, neuron
    from torch import nn

    # SpikingJelly 2.0 dropped LIFNode's ``backend`` argument (its dispatch picks the kernel); 0.0.0.0.14 has it
    backend = {"backend": "torch"} if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters else {}
    c, h, w = input_shape
    mods: list[nn.Module] = []
    for out in channels:
        mods += [layer.Conv2d(c, out, 3, padding=1, bias=False, step_mode="m"),
                 layer.BatchNorm2d(out, step_mode="m"),
                 neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                                surrogate_function=surrogate_fn, detach_reset=False, step_mode="m", **backend),
                 layer.AvgPool2d(2, divisor_override=1, step_mode="m")]
        c, h, w = out, h // 2, w // 2
    mods += [layer.Flatten(step_mode="m"), layer.Linear(c * h * w, num_classes, step_mode="m")]

    class SJClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(*mods)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).mean(0)

    return SJClassifier()


def exact_superspike():
    """A SpikingJelly surrogate with Norse's SuperSpike gradient, ``grad / (1 + |x|)^2``."""
    import torch
    from spikingjelly.activation_based import surrogate

    class _Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            if x.requires_grad:
                ctx.save_for_backward(x)
            return surrogate.heaviside(x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output / (x.abs() + 1.0).pow(2), None

    class SuperSpike(surrogate.SurrogateFunctionBase):
        def __init__(self) -> None:
            super().__init__(alpha=1.0, spiking=True)

        @staticmethod
        def spiking_function(x, alpha):
            return _Fn.apply(x, alpha)

    return SuperSpike()


def copy_weights(src, dst) -> None:
    """Copy parameters and BatchNorm buffers in module order (the two state dicts have the same layout)."""
    a, b = src.state_dict(), dst.state_dict()
    if [v.shape for v in a.values()] != [v.shape for v in b.values()]:
        raise AssertionError(f"state dicts differ: {list(a)} vs {list(b)}")
    dst.load_state_dict(dict(zip(b, (v.clone() for v in a.values()), strict=True)))


def spikes_of(model, kind, x):
    """Logits and the spike tensors ``[T, B, ...]`` of every module of type ``kind``, in order."""
    caught = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: caught.append(out.detach()))
             for m in model.modules() if isinstance(m, kind)]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, caught


def sanity_check(project, sj_factory, x, y) -> dict:
    """Same weights, same batch, training mode: spike agreement per LIF layer, logits, gradients."""
    import copy

    import torch
    from spikingjelly.activation_based import functional, neuron

    from neuromoco.train.models.neurons import LIF

    proj = copy.deepcopy(project).train()
    sj = sj_factory(exact_superspike()).train()
    copy_weights(proj, sj)
    lp, sp = spikes_of(proj, LIF, x)
    ls, ss = spikes_of(sj, neuron.LIFNode, x)
    layers = []
    for i, (a, b) in enumerate(zip(sp, ss, strict=True), 1):
        layers.append({"layer": f"lif{i}", "neurons_x_steps_x_batch": a.numel(), "spikes_project": int(a.sum()),
                       "spikes_spikingjelly": int(b.sum()), "mismatches": int((a != b).sum()),
                       "agreement": float((a == b).float().mean())})
    torch.nn.functional.cross_entropy(lp, y).backward()
    torch.nn.functional.cross_entropy(ls, y).backward()
    functional.reset_net(sj)
    lp, ls = lp.detach(), ls.detach()
    grads = []
    for (name, p), q in zip(proj.named_parameters(), sj.parameters(), strict=True):
        scale = float(p.grad.abs().max()) or 1.0
        grads.append((name, float((p.grad - q.grad).abs().max()) / scale))
    worst = max(grads, key=lambda g: g[1])
    # eval mode (BatchNorm on running statistics; SpikingJelly then takes its JIT multi-step path), as timed
    proj.eval()
    sj.eval()
    with torch.no_grad():
        ep, esp = spikes_of(proj, LIF, x)
        es, ess = spikes_of(sj, neuron.LIFNode, x)
    functional.reset_net(sj)
    return {
        "mode": "training mode (BatchNorm on batch statistics), weights copied from the project model, "
                "SpikingJelly side with the exact SuperSpike surrogate for the gradient comparison",
        "spikes_identical": all(r["mismatches"] == 0 for r in layers),
        "spike_agreement_per_layer": layers,
        "logits_max_abs_diff": float((lp - ls).abs().max()),
        "logits_max_abs": float(lp.abs().max()),
        "grad_max_abs_diff_relative_to_max_grad": worst[1],
        "grad_worst_parameter": worst[0],
        "loss_project": float(torch.nn.functional.cross_entropy(lp, y)),
        "loss_spikingjelly": float(torch.nn.functional.cross_entropy(ls, y)),
        "eval_mode_spikes_identical": all(bool((a == b).all()) for a, b in zip(esp, ess, strict=True)),
        "eval_mode_spike_agreement": float(sum(int((a == b).sum()) for a, b in zip(esp, ess, strict=True))
                                           / sum(a.numel() for a in esp)),
        "eval_mode_logits_max_abs_diff": float((ep - es).abs().max()),
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_hwm() -> bool:
    """Reset the process's peak RSS (VmHWM) so the next phase's peak can be read; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Needs SpikingJelly: pip install -e '.[bench]' (make bench does it).")
    ap.add_argument("--rounds", type=int, default=11, help="interleaved timing rounds, median reported (default 11)")
    ap.add_argument("--steps", type=int, default=5, help="training steps and forward passes per framework "
                                                         "per round (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps per framework first (default 2)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (default 32, as train finetune)")
    ap.add_argument("-T", "--time-steps", type=int, default=8, help="time steps (default 8, as the benchmarks)")
    ap.add_argument("--surrogate", choices=["softsign", "superspike"], default="softsign",
                    help="SpikingJelly surrogate for the timed runs: built-in SoftSign(alpha=1) (default) or "
                         "a subclass with exactly Norse's SuperSpike gradient")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT), help=f"JSON output (default {OUT})")
    args = ap.parse_args(argv)
    if min(args.rounds, args.steps, args.batch, args.time_steps) < 1:
        ap.error("--rounds, --steps, --batch and -T must be positive")

    try:
        with warnings.catch_warnings():  # SpikingJelly 0.0.0.0.14 decorates with torch.jit.script (deprecated)
            warnings.simplefilter("ignore", FutureWarning)
            import spikingjelly
            from spikingjelly.activation_based import functional, surrogate
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None
    from importlib.metadata import version

    import torch

    from neuromoco.train.engine.loops import build_optimizer
    from neuromoco.train.models.base import count_parameters
    from neuromoco.train.models.registry import build_classifier

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    T, B = args.time_steps, args.batch
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.poisson(torch.full((T, B, 2, 34, 34), 0.1), generator=gen)
    y = torch.randint(0, 10, (B,), generator=gen)

    project = build_classifier("cnn3-34", (2, 34, 34), 10)

    def sj_factory(fn):
        return sj_cnn3_34(fn)

    timed_surrogate = surrogate.SoftSign(alpha=1.0) if args.surrogate == "softsign" else exact_superspike()
    sj = sj_factory(timed_surrogate)
    n_project, n_sj = count_parameters(project), count_parameters(sj)
    assert n_project == n_sj, f"parameter counts differ: project {n_project}, SpikingJelly {n_sj}"
    copy_weights(project, sj)

    print(f"cnn3-34: {n_project} parameters each; T={T}, batch {B}, {torch.get_num_threads()} torch threads",
          flush=True)
    sanity = sanity_check(project, sj_factory, x, y)
    print(f"sanity: spikes identical {sanity['spikes_identical']} (eval mode {sanity['eval_mode_spikes_identical']}), "
          f"logits max |diff| {sanity['logits_max_abs_diff']:.3g}, grads max rel diff "
          f"{sanity['grad_max_abs_diff_relative_to_max_grad']:.3g}", flush=True)

    frameworks = {
        "project_norse": {"model": project, "reset": lambda: None},
        "spikingjelly": {"model": sj, "reset": lambda: functional.reset_net(sj)},
    }
    for fw in frameworks.values():
        fw["opt"] = build_optimizer(fw["model"].parameters(), "adamw", 1e-3, 1e-4)
        fw["train"], fw["forward"], fw["peak_rss_mib"] = [], [], []

    def train_steps(fw, n):
        model, opt, reset = fw["model"], fw["opt"], fw["reset"]
        model.train()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            reset()

    def forward_passes(fw, n):
        model, reset = fw["model"], fw["reset"]
        model.eval()
        with torch.no_grad():
            for _ in range(n):
                model(x)
                reset()
        model.train()

    for fw in frameworks.values():  # warm-up: allocator, JIT-scripted SpikingJelly kernels, AdamW state
        train_steps(fw, args.warmup)
        forward_passes(fw, 1)
    hwm_ok = _reset_hwm()
    names = list(frameworks)
    t_start = time.perf_counter()
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            fw = frameworks[name]
            if hwm_ok:
                _reset_hwm()
            t0 = time.perf_counter()
            train_steps(fw, args.steps)
            fw["train"].append(args.steps * B / (time.perf_counter() - t0))
            if hwm_ok:
                fw["peak_rss_mib"].append(_hwm_mib())
            t0 = time.perf_counter()
            forward_passes(fw, args.steps)
            fw["forward"].append(args.steps * B / (time.perf_counter() - t0))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} train {frameworks[n]['train'][-1]:.1f}/s fwd {frameworks[n]['forward'][-1]:.1f}/s" for n in names),
            flush=True)
    timing_s = time.perf_counter() - t_start

    results = {}
    for name, fw in frameworks.items():
        results[name] = {
            "train_samples_per_s": statistics.median(fw["train"]),
            "forward_samples_per_s": statistics.median(fw["forward"]),
            "train_samples_per_s_rounds": [round(v, 2) for v in fw["train"]],
            "forward_samples_per_s_rounds": [round(v, 2) for v in fw["forward"]],
            "peak_rss_mib_during_training": max(fw["peak_rss_mib"]) if fw["peak_rss_mib"] else None,
        }
    p, s = results["project_norse"], results["spikingjelly"]
    ratio_rounds = [a / b for a, b in zip(frameworks["project_norse"]["train"], frameworks["spikingjelly"]["train"],
                                          strict=True)]
    doc = {
        "benchmark": "spikingjelly_compare",
        "what": "cnn3-34 classifier training throughput (forward + cross-entropy on the mean readout + backward + "
                "AdamW step) and forward-only throughput (eval mode, no autograd), project (Norse) vs SpikingJelly, "
                "interleaved rounds in one process, medians",
        "command": "python benchmarks/spikingjelly_compare.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": "cnn3-34 + Linear(512, 10) readout, logits = mean over T",
        "parameters": {"project_norse": n_project, "spikingjelly": n_sj},
        "input": f"seeded Poisson event counts [T={T}, B={B}, 2, 34, 34], rate 0.1 per pixel and step",
        "time_steps": T, "batch": B, "rounds": args.rounds, "steps_per_round": args.steps, "warmup_steps": args.warmup,
        "optimizer": "AdamW lr 1e-3, weight decay 1e-4 on weights of rank >= 2 "
                     "(neuromoco.train.engine.loops.build_optimizer)",
        "neurons": {
            "project_norse": "neuromoco.train.models.neurons.LIF: Norse lif_box_feed_forward_step, "
                             "dt/tau_mem = 0.5, v_th 1, reset to 0, SuperSpike surrogate (1/(1+|x|)^2), "
                             "Python loop over T",
            "spikingjelly": "neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0, "
                            "detach_reset=False, step_mode='m', backend='torch'); training: Python loop over T "
                            "with JIT-scripted charge/reset, eval: one JIT-scripted multi-step function",
        },
        "spikingjelly_surrogate": ("surrogate.SoftSign(alpha=1.0): 1/(2(1+|x|)^2), Norse's SuperSpike shape at half "
                                   "the height" if args.surrogate == "softsign" else
                                   "SurrogateFunctionBase subclass with Norse's SuperSpike gradient 1/(1+|x|)^2"),
        "results": results,
        "ratio_project_over_spikingjelly": {
            "train": p["train_samples_per_s"] / s["train_samples_per_s"],
            "train_median_of_per_round_ratios": statistics.median(ratio_rounds),
            "forward": p["forward_samples_per_s"] / s["forward_samples_per_s"],
        },
        "sanity_check": sanity,
        "timing_seconds": round(timing_s, 1),
        "peak_rss_mib_process": round(_peak_rss_mib(), 1),
        "peak_rss_note": "both models live in one process: the per-framework figure is the process peak (VmHWM, "
                         "reset before each timed block) during that framework's training steps, baseline included",
        "machine": machine_info(torch_threads=torch.get_num_threads(),
                                torch_interop_threads=torch.get_num_interop_threads(),
                                spikingjelly=version("spikingjelly"), norse=version("norse"),
                                spikingjelly_from=str(Path(spikingjelly.__file__).parent)),
        "date": now(),
    }
    write_json(args.out, doc)
    rp = doc["ratio_project_over_spikingjelly"]
    print(f"train samples/s: project {p['train_samples_per_s']:.1f}, SpikingJelly {s['train_samples_per_s']:.1f}, "
          f"ratio {rp['train']:.3f}; forward: {p['forward_samples_per_s']:.1f} vs {s['forward_samples_per_s']:.1f}, "
          f"ratio {rp['forward']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
