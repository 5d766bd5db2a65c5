"""Training and forward throughput of the project's models against the same networks built in SpikingJelly.

Models (registry names; ``--models``): ``cnn3-34``, ``sew-resnet8-34`` and ``spikformer-2-256``, each with its
classifier readout (``Linear`` per step, logits = mean over T), all at a CPU-sized input ``[T, B, 2, 34, 34]``
(Spikformer's patch splitting takes 34x34 down to 3x3 tokens). The SpikingJelly networks (``sj_models.py``)
mirror the project's layer for layer with ``spikingjelly.activation_based`` multi-step layers and
``neuron.LIFNode`` (tau 2, hard reset to 0: the project's LIF); parameter counts are asserted equal.

Rows per model: the project with ``--lif-impl native`` (the CPU default where a C compiler builds the library),
``fused`` (vectorised PyTorch) and ``norse`` (Norse's step in a Python loop, the definition; eager only, as a
reference), and SpikingJelly; every project row pools with the project's ``SumPool2d`` (the native 2x2 loop;
under ``native`` a LIF and the pooling after it run as one op). ``--modes eager,compile`` times the project
(traced as the fused custom op) and SpikingJelly also under ``torch.compile`` (inductor; compile time reported,
not timed; about half an hour for the three models on 2 CPU cores, so not the default). Measured in one process,
interleaved: after warm-up each round times ``--steps`` training steps (forward, cross-entropy on the mean
readout, backward, AdamW as ``train finetune`` builds it) and ``--steps`` forward passes (eval mode, no
autograd) of every row, the order reversed every other round; medians over rounds of wall-clock samples/s,
and of CPU-time samples/s (``time.process_time``: with one thread, less sensitive to other jobs on the machine).
Peak memory: the process's VmHWM reset before each row's training block; the JSON gives the peak and its rise
over the RSS before the block, per sample. ``--allocator keep`` (default) sets glibc to keep freed memory for
reuse, as the train commands do on CPU (:mod:`neuromoco.train.engine.allocator`), for the whole process:
SpikingJelly's rows get it too.

Surrogate gradients: the project uses Norse's SuperSpike, ``1 / (1 + |x|)^2``. SpikingJelly's closest built-in
is ``surrogate.SoftSign(alpha=1)``, half that height at the same cost (``--surrogate softsign``, default);
``--surrogate superspike`` times a subclass with exactly Norse's gradient. Sanity check before timing, per
model: SpikingJelly gets the project's weights, both run the same batch in training mode (exact surrogate), and
the spikes of every LIF layer, the logits and the gradients are compared, then eval mode; under ``compile`` the
compiled project model's spikes are compared with its eager ones.

SpikingJelly 2.0.0 is not a dependency: ``make bench`` downloads its wheel and loguru's (``pip download
--no-deps``) and installs both with ``--no-deps --target benchmarks/.deps`` (git-ignored), which this script
puts on ``sys.path``; torch is never touched. Other imports it needs (numpy, tqdm, h5py) are in the venv.

    python benchmarks/spikingjelly_compare.py [--models cnn3-34,...] [--modes eager,compile] [--rounds 5]
        [--steps 3] [--batch 32] [-T 8] [--threads 1] [--readme]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEPS = HERE / ".deps"  # SpikingJelly 2.0.0 + loguru, installed there with --no-deps by `make bench`
if DEPS.is_dir():
    sys.path.insert(0, str(DEPS))

import sj_models  # noqa: E402
from bench_common import RESULTS, machine_info, now, write_json  # noqa: E402

OUT = RESULTS / "spikingjelly_compare.json"
INSTALL_HINT = ("spikingjelly is not importable: `make bench` installs SpikingJelly 2.0.0 into benchmarks/.deps "
                "(pip download spikingjelly==2.0.0 'loguru>=0.7,<1' --no-deps, then pip install --no-deps "
                "--target benchmarks/.deps)")
MODELS = ("cnn3-34", "sew-resnet8-34", "spikformer-2-256")
README = HERE / "README.md"
TABLE_BEGIN, TABLE_END = "<!-- spikingjelly_compare:begin -->", "<!-- spikingjelly_compare:end -->"


def sj_cnn3_34(surrogate_fn, num_classes: int = 10, channels=(16, 32, 32), input_shape=(2, 34, 34)):
    """cnn3-34 + readout in SpikingJelly's multi-step layers (kept here for callers; see sj_models)."""
    return sj_models.sj_cnn3_34(surrogate_fn, num_classes, channels, input_shape)


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


copy_weights = sj_models.copy_weights


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
    """Same weights, same batch, training mode: spike agreement per LIF layer, logits, gradients; eval mode."""
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
    # relative to the model's largest gradient: a conv bias before BatchNorm has an exactly-zero gradient in
    # theory, so its own scale is rounding noise (Spikformer's Conv1d biases)
    pairs = list(zip(proj.named_parameters(), sj.parameters(), strict=True))
    scale = max(float(p.grad.abs().max()) for (_, p), _ in pairs) or 1.0
    grads = [(name, float((p.grad - q.grad).abs().max()) / scale) for (name, p), q in pairs]
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
        "grad_max_abs_diff_relative_to_max_grad": worst[1],  # the largest over all parameters
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
    return _status_mib("VmHWM:")


def _rss_mib() -> float | None:
    return _status_mib("VmRSS:")


def _status_mib(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _row(model, opt, reset, label: str) -> dict:
    return {"model": model, "opt": opt, "reset": reset, "label": label, "train": [], "forward": [],
            "train_cpu": [], "forward_cpu": [], "peak_rss_mib": [], "rss_rise_mib": []}


def bench_model(name: str, args, torch, functional, surrogate) -> dict:
    """Sanity check, then interleaved timing of every row of one model; the model's JSON entry."""
    import copy

    from neuromoco.train.engine.loops import build_optimizer
    from neuromoco.train.models.base import count_parameters
    from neuromoco.train.models.neurons import set_lif_impl
    from neuromoco.train.models.registry import build_classifier

    T = args.time_steps
    B = args.batch or (16 if name.startswith("spikformer") else 32)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.poisson(torch.full((T, B, 2, 34, 34), 0.1), generator=gen)
    y = torch.randint(0, 10, (B,), generator=gen)
    project = build_classifier(name, (2, 34, 34), 10)
    set_lif_impl(project, "native")

    def sj_factory(fn):
        return sj_models.BUILDERS[name](fn, 10, input_shape=(2, 34, 34))

    timed_surrogate = surrogate.SoftSign(alpha=1.0) if args.surrogate == "softsign" else exact_superspike()
    sj = sj_factory(timed_surrogate)
    n_project, n_sj = count_parameters(project), count_parameters(sj)
    assert n_project == n_sj, f"{name}: parameter counts differ: project {n_project}, SpikingJelly {n_sj}"
    copy_weights(project, sj)
    print(f"{name}: {n_project} parameters each; T={T}, batch {B}", flush=True)
    sanity = sanity_check(project, sj_factory, x, y)
    print(f"  sanity: spikes identical {sanity['spikes_identical']} (eval mode {sanity['eval_mode_spikes_identical']})"
          f", logits max |diff| {sanity['logits_max_abs_diff']:.3g}, grads max rel diff "
          f"{sanity['grad_max_abs_diff_relative_to_max_grad']:.3g}", flush=True)

    def opt_of(m):
        return build_optimizer(m.parameters(), "adamw", 1e-3, 1e-4)

    rows: dict[str, dict] = {}
    compile_info: dict[str, dict] = {}
    if "eager" in args.modes:
        rows["project_native"] = _row(project, opt_of(project), lambda: None, "project, --lif-impl native, eager")
        fused = copy.deepcopy(project)
        set_lif_impl(fused, "fused")
        rows["project_fused"] = _row(fused, opt_of(fused), lambda: None, "project, --lif-impl fused, eager")
        norse = copy.deepcopy(project)
        set_lif_impl(norse, "norse")
        rows["project_norse"] = _row(norse, opt_of(norse), lambda: None, "project, --lif-impl norse, eager")
        rows["spikingjelly"] = _row(sj, opt_of(sj), lambda: functional.reset_net(sj), "SpikingJelly, eager")
    if "compile" in args.modes:
        pc_eager = copy.deepcopy(project)
        sc_eager = sj_factory(timed_surrogate)
        copy_weights(project, sc_eager)
        for key, eager, reset_of, label in (
                ("project_fused_compile", pc_eager, lambda m: (lambda: None), "project, fused, torch.compile"),
                ("spikingjelly_compile", sc_eager, lambda m: (lambda: functional.reset_net(m)),
                 "SpikingJelly, torch.compile")):
            ref = copy.deepcopy(eager).train()
            compiled = torch.compile(eager)
            t0 = time.perf_counter()
            out = compiled(x)
            torch.nn.functional.cross_entropy(out, y).backward()
            reset_of(eager)()
            with torch.no_grad():
                eager.eval()
                compiled(x)
                reset_of(eager)()
                eager.train()
            first_s = time.perf_counter() - t0
            ref_out = ref(x)
            reset_of(ref)()
            eager.zero_grad(set_to_none=True)
            compile_info[key] = {"first_train_and_eval_call_s_incl_compile": round(first_s, 1),
                                 "logits_max_abs_diff_vs_eager": float((out.detach() - ref_out.detach()).abs().max())}
            print(f"  {key}: compiled in {first_s:.0f} s, logits vs eager max |diff| "
                  f"{compile_info[key]['logits_max_abs_diff_vs_eager']:.3g}", flush=True)
            rows[key] = _row(compiled, opt_of(eager), reset_of(eager), label)

    def train_steps(row, n):
        model, opt, reset = row["model"], row["opt"], row["reset"]
        model.train()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            reset()

    def forward_passes(row, n):
        model, reset = row["model"], row["reset"]
        model.eval()
        with torch.no_grad():
            for _ in range(n):
                model(x)
                reset()
        model.train()

    for row in rows.values():  # warm-up: allocator, JIT-scripted SpikingJelly kernels, AdamW state
        train_steps(row, args.warmup)
        forward_passes(row, 1)
    hwm_ok = _reset_hwm()
    names = list(rows)
    t_start = time.perf_counter()
    for r in range(args.rounds):
        for key in (names if r % 2 == 0 else names[::-1]):
            row = rows[key]
            before = _rss_mib()
            if hwm_ok:
                _reset_hwm()
            t0, c0 = time.perf_counter(), time.process_time()
            train_steps(row, args.steps)
            row["train"].append(args.steps * B / (time.perf_counter() - t0))
            row["train_cpu"].append(args.steps * B / (time.process_time() - c0))
            peak = _hwm_mib() if hwm_ok else None
            if peak is not None and before is not None:
                row["peak_rss_mib"].append(peak)
                row["rss_rise_mib"].append(peak - before)
            t0, c0 = time.perf_counter(), time.process_time()
            forward_passes(row, args.steps)
            row["forward"].append(args.steps * B / (time.perf_counter() - t0))
            row["forward_cpu"].append(args.steps * B / (time.process_time() - c0))
        print(f"  round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} train {rows[k]['train'][-1]:.1f}/s fwd {rows[k]['forward'][-1]:.1f}/s" for k in names), flush=True)

    results = {}
    for key, row in rows.items():
        results[key] = {
            "what": row["label"],
            "train_samples_per_s": statistics.median(row["train"]),
            "forward_samples_per_s": statistics.median(row["forward"]),
            "train_samples_per_cpu_s": statistics.median(row["train_cpu"]),
            "forward_samples_per_cpu_s": statistics.median(row["forward_cpu"]),
            "train_samples_per_s_rounds": [round(v, 2) for v in row["train"]],
            "forward_samples_per_s_rounds": [round(v, 2) for v in row["forward"]],
            "peak_rss_mib_during_training": max(row["peak_rss_mib"]) if row["peak_rss_mib"] else None,
            "peak_rss_rise_mib_per_sample": (round(statistics.median(row["rss_rise_mib"]) / B, 3)
                                             if row["rss_rise_mib"] else None),
        }
    ratios = {}
    for proj_key, sj_key in (("project_native", "spikingjelly"), ("project_fused", "spikingjelly"),
                             ("project_norse", "spikingjelly"),
                             ("project_fused_compile", "spikingjelly_compile"),
                             ("project_fused_compile", "spikingjelly")):
        if proj_key in rows and sj_key in rows:
            per_round = [a / b for a, b in zip(rows[proj_key]["train"], rows[sj_key]["train"], strict=True)]
            ratios[f"{proj_key}/{sj_key}"] = {
                "train": results[proj_key]["train_samples_per_s"] / results[sj_key]["train_samples_per_s"],
                "train_median_of_per_round_ratios": statistics.median(per_round),
                "train_cpu_time": results[proj_key]["train_samples_per_cpu_s"]
                / results[sj_key]["train_samples_per_cpu_s"],
                "forward": results[proj_key]["forward_samples_per_s"] / results[sj_key]["forward_samples_per_s"],
            }
    return {"parameters": n_project, "time_steps": T, "batch": B,
            "input": f"seeded Poisson event counts [T={T}, B={B}, 2, 34, 34], rate 0.1 per pixel and step",
            "results": results, "ratios": ratios, "compile": compile_info, "sanity_check": sanity,
            "timing_seconds": round(time.perf_counter() - t_start, 1)}


def _f(v: float | None, nd: int = 0) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def markdown_table(doc: dict) -> str:
    """The results as a markdown table (one line per model and row)."""
    lines = ["| model | row | train samples/s | x SJ | forward samples/s | x SJ | train samples/CPU-s | "
             "peak RSS MiB (rise per sample) | spikes identical to SJ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in doc["models"].items():
        res, s = m["results"], m["sanity_check"]
        same = s["spikes_identical"] and s["eval_mode_spikes_identical"]
        for key, r in res.items():
            sj = res.get("spikingjelly_compile" if key.endswith("_compile") else "spikingjelly")
            tr = "" if sj is None or key.startswith("spikingjelly") else \
                f"{r['train_samples_per_s'] / sj['train_samples_per_s']:.2f}"
            fw = "" if sj is None or key.startswith("spikingjelly") else \
                f"{r['forward_samples_per_s'] / sj['forward_samples_per_s']:.2f}"
            lines.append(f"| {name} (T={m['time_steps']}, B={m['batch']}) | {r['what']} | "
                         f"{_f(r['train_samples_per_s'])} | {tr} | {_f(r['forward_samples_per_s'])} | {fw} | "
                         f"{_f(r['train_samples_per_cpu_s'])} | {_f(r['peak_rss_mib_during_training'])} "
                         f"({_f(r['peak_rss_rise_mib_per_sample'], 2)}) | "
                         f"{same if key == 'project_native' else ''} |")
    return "\n".join(lines)


def write_readme_table(doc: dict, path: Path = README) -> bool:
    """Replace the table between the markers in benchmarks/README.md; False when the markers are missing."""
    text = path.read_text()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        return False
    m = doc["machine"]
    body = (f"{TABLE_BEGIN}\n`{doc['command']}`, {doc['date']}, SpikingJelly {m.get('spikingjelly')}, torch "
            f"{m.get('torch')}, {m.get('torch_threads')} thread(s), {m.get('cpu')} ({m.get('cores')} cores), load "
            f"average {m.get('load_average_1_5_15min')} at the end:\n\n{markdown_table(doc)}\n{TABLE_END}")
    head, rest = text.split(TABLE_BEGIN, 1)
    path.write_text(head + body + rest.split(TABLE_END, 1)[1])
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Needs SpikingJelly in benchmarks/.deps (make bench puts 2.0.0 there).")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    ap.add_argument("--modes", default="eager", help="eager, compile or eager,compile (default eager: compiling "
                                                     "all six models takes about half an hour on 2 CPU cores)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds, median reported (default 5)")
    ap.add_argument("--steps", type=int, default=3, help="training steps and forward passes per row per round "
                                                         "(default 3)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps per row first (default 2)")
    ap.add_argument("--batch", type=int, default=0, help="batch size (default 0: 32, Spikformer 16)")
    ap.add_argument("-T", "--time-steps", type=int, default=8, help="time steps (default 8, as the benchmarks)")
    ap.add_argument("--surrogate", choices=["softsign", "superspike"], default="softsign",
                    help="SpikingJelly surrogate for the timed runs: built-in SoftSign(alpha=1) (default) or "
                         "a subclass with exactly Norse's SuperSpike gradient")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: the machine is "
                                                           "shared; 0: torch's default)")
    ap.add_argument("--allocator", choices=["keep", "default"], default="keep",
                    help="keep: glibc keeps freed memory for reuse, as the train commands set it on CPU "
                         "(neuromoco.train.engine.allocator; the whole process, SpikingJelly too); default: leave "
                         "the allocator as it is (default keep)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT), help=f"JSON output (default {OUT})")
    ap.add_argument("--readme", action="store_true", help="write the table into benchmarks/README.md too")
    args = ap.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in args.models if m not in MODELS]:
        ap.error(f"unknown model(s) {unknown}: choose from {', '.join(MODELS)}")
    if not args.modes or any(m not in ("eager", "compile") for m in args.modes):
        ap.error("--modes takes eager, compile or eager,compile")
    if min(args.rounds, args.steps, args.time_steps) < 1 or args.batch < 0:
        ap.error("--rounds, --steps and -T must be positive")

    try:
        with warnings.catch_warnings():  # SpikingJelly decorates with torch.jit.script (deprecated)
            warnings.simplefilter("ignore", FutureWarning)
            import spikingjelly
            from spikingjelly.activation_based import functional, surrogate
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None
    from importlib.metadata import PackageNotFoundError, version

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from neuromoco.train.engine.allocator import keep_freed_memory

    allocator = keep_freed_memory() if args.allocator == "keep" else "system default (--allocator default)"
    print(f"allocator: {allocator}", flush=True)
    print(f"SpikingJelly from {Path(spikingjelly.__file__).parent}; {torch.get_num_threads()} torch thread(s)",
          flush=True)
    t_start = time.perf_counter()
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for name in args.models:
            models[name] = bench_model(name, args, torch, functional, surrogate)
    try:
        sj_version = version("spikingjelly")
    except PackageNotFoundError:
        sj_version = "?"
    doc: dict = {
        "benchmark": "spikingjelly_compare",
        "what": "training throughput (forward + cross-entropy on the mean readout + backward + AdamW step) and "
                "forward-only throughput (eval mode, no autograd), project vs SpikingJelly, interleaved rounds in "
                "one process, medians; eager and torch.compile",
        "command": "python benchmarks/spikingjelly_compare.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "rounds": args.rounds, "steps_per_round": args.steps, "warmup_steps": args.warmup,
        "optimizer": "AdamW lr 1e-3, weight decay 1e-4 on weights of rank >= 2 "
                     "(neuromoco.train.engine.loops.build_optimizer)",
        "neurons": {
            "project_native": "neuromoco.train.models.neurons.LIF with --lif-impl native (CPU auto): the C loops "
                              "of lif_kernels/native_kernels.c, one pass over memory per direction, the backward "
                              "recomputing the membranes from the saved input; exact to Norse's step",
            "project_fused": "neuromoco.train.models.neurons.LIF with --lif-impl fused: one autograd op over "
                             "[T, N, ...] (lif_kernels/fused.py), exact to Norse's lif_box_feed_forward_step; under "
                             "torch.compile the same code as torch.library custom ops (lif_kernels/fused_op.py)",
            "project_norse": "the same LIF with --lif-impl norse: Norse's step in a Python loop over T",
            "spikingjelly": "neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=next float32 above the project's, "
                            "v_reset=0.0, detach_reset=False, step_mode='m') (sj_models.py)",
        },
        "spikingjelly_surrogate": ("surrogate.SoftSign(alpha=1.0): 1/(2(1+|x|)^2), Norse's SuperSpike shape at half "
                                   "the height" if args.surrogate == "softsign" else
                                   "SurrogateFunctionBase subclass with Norse's SuperSpike gradient 1/(1+|x|)^2"),
        "spikingjelly_install": "wheel from PyPI with --no-deps (plus loguru) into benchmarks/.deps, put on sys.path "
                                "by this script (make bench); torch untouched",
        "allocator": allocator,
        "models": models,
        "timing_seconds": round(time.perf_counter() - t_start, 1),
        "peak_rss_mib_process": round(_peak_rss_mib(), 1),
        "peak_rss_note": "all rows live in one process: peak_rss_mib_during_training is the process peak (VmHWM, "
                         "reset before each row's timed training block), baseline included; "
                         "peak_rss_rise_mib_per_sample is that peak minus the RSS just before the block, per sample",
        "machine": machine_info(torch_threads=torch.get_num_threads(),
                                torch_interop_threads=torch.get_num_interop_threads(),
                                spikingjelly=sj_version, norse=version("norse"),
                                spikingjelly_from=str(Path(spikingjelly.__file__).parent)),
        "date": now(),
    }
    if "cnn3-34" in models and "project_native" in models["cnn3-34"]["results"]:
        # the keys benchmarks/summarize.py reads (cnn3-34, eager): "project" is the project's CPU default (native)
        c = models["cnn3-34"]
        doc.update({"time_steps": c["time_steps"], "batch": c["batch"], "sanity_check": c["sanity_check"],
                    "results": {"project": c["results"]["project_native"],
                                "spikingjelly": c["results"]["spikingjelly"]},
                    "ratio_project_over_spikingjelly": c["ratios"]["project_native/spikingjelly"]})
    write_json(args.out, doc)
    print(markdown_table(doc))
    if args.readme:
        print("README table " + ("updated" if write_readme_table(doc) else "not written: markers missing"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
