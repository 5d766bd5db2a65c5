"""Fixed-point loss of the recurrent graphs, and where it comes from, one quantization source at a time.

For each recurrent graph in ``nir_models/`` (``rnn_cubalif``, ``snntorch_rsynaptic``, ``braille_cubalif``) and
each fixed-point configuration (``scale`` neuron / layer, ``weight_bits`` 8 / 16), the plan is compiled once and
run on ``--samples`` seeded Poisson samples (the card's rate, :func:`make_fixtures.sample_frames`), against the
float64 reference executor:

* ``fixed``: ``reference-fixed`` (bit-exact with ``lava-fixed``): everything quantized, integer state;
* ``float``: the float plan in float64 (must agree with the reference exactly: a check of this emulation);
* ``decay`` / ``weight`` / ``threshold``: the float plan with only that quantity replaced by what the fixed
  plan holds (12-bit ``du``/``dv``; every connection's mantissas times ``2**exp`` over its row's scale;
  ``vth`` mantissa over the scale, with the biases likewise), state kept in float;
* ``all_but_state``: those three together, state in float; ``fixed`` minus this is the integer state;
* ``state_no_floor`` / ``state_no_trunc`` / ``state_exact``: the fixed plan in integer units
  (:func:`integer_plan_run`, which with both switches on equals ``reference-fixed``: ``integer_emulation_equals_
  fixed``) with a negative weight exponent scaling exactly instead of shifting down, the 12-bit decays
  multiplying exactly instead of truncating towards zero, or both.

Configurations (:data:`CONFIGS`): ``neuron|layer / 8|16`` as the targets compile them now, and the same with
``/legacy``, as they compiled before the sign split and the exponent rules (the "before" numbers).

Per run: prediction agreement and the per-layer relative spike-count difference (``deploy.parity.compare``).
With ``--lava N`` the default configuration (the targets' defaults) also runs on ``lava-fixed`` for the first
N samples and records whether it equals ``reference-fixed`` there.

Writes ``benchmarks/results/fixed_point_recurrent.json``. Usage: ``python benchmarks/fixed_point_recurrent.py
[--samples 256] [--lava 16] [--graphs a,b] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, machine_info, now, write_json

OUT = RESULTS / "fixed_point_recurrent.json"
GRAPHS = ("rnn_cubalif", "snntorch_rsynaptic", "braille_cubalif")
#: every scale mode and weight width, as the targets compile it now (sign-split mixed-sign connections, residual
#: synapses and negative exponents only where they pay) and as it compiled before (``legacy``: one mixed-sign
#: process per connection, the smallest exponent that fits, a residual synapse at any exponent:
#: ``sign_split=False``, ``UNSHIFTED_MIN_LEVELS = inf``, ``RESIDUAL_MIN_STEP = 0``)
CONFIGS = {f"{scale}/{bits}{'/legacy' if legacy else ''}": {"scale": scale, "weight_bits": bits, "legacy": legacy}
           for legacy in (True, False) for scale in ("neuron", "layer") for bits in (8, 16)}
SOURCES = ("float", "decay", "weight", "threshold", "all_but_state")


def _fire(lay, v: np.ndarray, vth, rec_out: np.ndarray, t: int) -> None:
    """Step ``t`` of a layer: spike and reset to 0 where ``v > vth`` (spiking), else record the voltage."""
    if lay.spiking:
        s = v > vth
        v[s] = 0.0
        rec_out[t] = s
    else:
        rec_out[t] = v


def _collect(lay, rec_out: np.ndarray, outs: dict, counts: dict, spikes: dict, volt: dict | None = None) -> None:
    """A finished layer's record: its output for the layers after it, and its counts and spikes (or voltage)."""
    T, B = rec_out.shape[:2]
    outs[lay.name] = rec_out
    if lay.spiking:
        counts[lay.name] = rec_out.sum(axis=2).astype(np.int64)
        spikes[lay.name] = rec_out.astype(np.uint8).reshape(T, B, *lay.shape)
    elif volt is not None:
        volt[lay.name] = rec_out


def load(name: str):
    """``(graph, card, card_dict)`` of ``nir_models/NAME``."""
    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph

    path = ROOT / "nir_models" / f"{name}.nir"
    card = ModelCard.load(ModelCard.beside(path))
    return load_graph(path, input_shape=card.input_shape), card, json.loads(ModelCard.beside(path).read_text())


def frames_for(card_dict: dict, samples: int, seed: int = 0) -> np.ndarray:
    sys.path.insert(0, str(ROOT / "nir_models"))
    from make_fixtures import sample_frames

    return sample_frames(card_dict, samples, seed=seed)


# ------------------------------------------------------------------------- the plan in float, one source on

def effective_weights(conns, sigma: np.ndarray, input_name: str, input_scale: float) -> dict:
    """Per (source, recurrent): the real weights a fixed plan's connection pieces stand for (float64 dense)."""
    from neuromoco.deploy.targets.reference_fixed import arith

    out: dict = {}
    for c in conns:
        m = c.matrix.tocsr().copy()
        m.data = arith.synapse_weights(m.data, arith.sign_mode(m.data)).astype(np.float64) * 2.0 ** c.weight_exp
        w = np.asarray(m.todense()) / np.asarray(sigma, dtype=np.float64).reshape(-1, 1)
        if c.source == input_name:
            w = w * input_scale
        key = (c.source, bool(c.recurrent))
        out[key] = out.get(key, 0) + w
    return out


def float_plan_run(fplan, qplan, frames: np.ndarray, sources: set[str]):
    """The float plan in float64 with the quantities named in ``sources`` ("decay", "weight", "threshold")
    taken from the fixed plan ``qplan``; the step order of :mod:`reference_fixed.executor`."""
    from neuromoco.deploy.result import RunResult

    x = fplan.flat_frames(frames).astype(np.float64)
    T, B = x.shape[:2]
    outs = {fplan.input_name: x}
    qlay = {lay.name: lay for lay in qplan.layers}
    counts, spikes, volt = {}, {}, {}
    for lay in fplan.layers:
        q = qlay[lay.name]
        sig = np.asarray(q.scale, dtype=np.float64) * np.ones(lay.size)
        if "weight" in sources:
            w = effective_weights(q.conns, sig, fplan.input_name, fplan.input_scale)
        else:
            w = {}
            for c in lay.conns:
                key = (c.source, bool(c.recurrent))
                w[key] = w.get(key, 0) + np.asarray(c.matrix.todense(), dtype=np.float64)
        du, dv = lay.du.astype(np.float64), lay.dv.astype(np.float64)
        if "decay" in sources:
            du, dv = (q.du + 1) / 4096.0, q.dv / 4096.0
        vth, bias, b0, b1 = lay.vth, lay.bias_mant, lay.b0, lay.b1
        if "threshold" in sources:
            vth = q.vth / sig if lay.spiking else lay.vth
            bias = q.bias_mant * 2.0 ** q.bias_exp / (64.0 * sig)
            b0, b1 = q.b0 / sig, q.b1 / sig
        ff = np.zeros((T, B, lay.size))
        rec = []
        for (src, r), m in w.items():
            if r:
                rec.append((src, m))
            else:
                ff += outs[src] @ m.T
        u, v = np.zeros((B, lay.size)), np.broadcast_to(lay.v0, (B, lay.size)).copy()
        rec_out = np.zeros((T, B, lay.size))
        for t in range(T):
            a = ff[t] + b0
            if t > 0:
                a = a + b1
                for src, m in rec:
                    prev = rec_out[t - 1] if src == lay.name else outs[src][t - 1]
                    a = a + prev @ m.T
            u = (1 - du) * u + a
            v = (1 - dv) * v + u + bias
            _fire(lay, v, vth, rec_out, t)
        _collect(lay, rec_out, outs, counts, spikes, volt)
    ro = fplan.readout
    if ro.direct:
        lay = fplan.layer(ro.direct)
        out = outs[ro.direct] + (0 if lay.spiking else lay.v_reset.reshape(1, 1, -1))
    else:
        if "weight" in sources:
            w = effective_weights(qplan.readout.conns, np.asarray(qplan.readout.scale) * np.ones(ro.size),
                                  fplan.input_name, fplan.input_scale)
        else:
            w = {(c.source, bool(c.recurrent)): np.asarray(c.matrix.todense()) for c in ro.conns}
        out = np.zeros((T, B, ro.size))
        for (src, r), m in w.items():
            xs = outs[src]
            if r:
                xs = np.concatenate([np.zeros_like(xs[:1]), xs[:-1]])
            out += xs @ m.T
        if ro.c0 is not None:
            out = out + ro.c0.reshape(1, 1, -1)
        if ro.c1 is not None:
            out[1:] += ro.c1.reshape(1, 1, -1)
    return RunResult(output=out, spike_counts=counts, spikes=spikes)


def integer_plan_run(qplan, frames: np.ndarray, floor_shift: bool = True, trunc_decay: bool = True):
    """The fixed plan in integer units (float64), as :mod:`reference_fixed.executor` computes it when both
    switches are on (no 24-bit wrap: these graphs stay far from it); ``floor_shift=False``: a negative weight
    exponent scales exactly instead of shifting down; ``trunc_decay=False``: the 12-bit decays multiply
    exactly instead of truncating towards zero."""
    from neuromoco.deploy.result import RunResult
    from neuromoco.deploy.targets.reference_fixed import arith

    x = qplan.fixed_payload(qplan.flat_frames(frames))
    T, B = x.shape[:2]
    outs = {qplan.input_name: x}

    def conn_out(c, xs):
        m = c.matrix.tocsr().copy()
        m.data = arith.synapse_weights(m.data, arith.sign_mode(m.data)).astype(np.float64)
        acc = xs @ np.asarray(m.todense()).T
        acc = acc * 2.0 ** c.weight_exp
        return np.floor(acc) if (floor_shift and c.weight_exp < 0) else acc

    counts, spikes = {}, {}
    for lay in qplan.layers:
        uf = arith.u_factor(lay.du.astype(np.int64)) / 4096.0
        vf = arith.v_factor(lay.dv.astype(np.int64)) / 4096.0
        vth = arith.effective_threshold(lay.vth) if lay.spiking else np.inf
        bias = arith.effective_bias(lay.bias_mant, lay.bias_exp).astype(np.float64)
        ff = np.zeros((T, B, lay.size))
        rec = [c for c in lay.conns if c.recurrent]
        for c in lay.conns:
            if not c.recurrent:
                ff += conn_out(c, outs[c.source])
        u, v = np.zeros((B, lay.size)), np.broadcast_to(lay.v0, (B, lay.size)).astype(np.float64).copy()
        rec_out = np.zeros((T, B, lay.size))
        rnd = np.trunc if trunc_decay else (lambda a: a)
        for t in range(T):
            a = ff[t] + lay.b0
            if t > 0:
                a = a + lay.b1
                for c in rec:
                    a = a + conn_out(c, rec_out[t - 1] if c.source == lay.name else outs[c.source][t - 1])
            u = rnd(u * uf) + 64.0 * a
            v = rnd(v * vf) + u + bias
            _fire(lay, v, vth, rec_out, t)
        _collect(lay, rec_out, outs, counts, spikes)
    ro = qplan.readout
    if ro.direct:
        lay = qplan.layer(ro.direct)
        out = outs[ro.direct]
        if not lay.spiking:
            out = out / (64.0 * np.asarray(lay.scale)) + lay.v_reset.reshape(1, 1, -1)
    else:
        out = np.zeros((T, B, ro.size))
        for c in ro.conns:
            xs = outs[c.source]
            if c.recurrent:
                xs = np.concatenate([np.zeros_like(xs[:1]), xs[:-1]])
            out += conn_out(c, xs)
        out = out / np.asarray(ro.scale)
        if ro.c0 is not None:
            out = out + ro.c0.reshape(1, 1, -1)
        if ro.c1 is not None:
            out[1:] += ro.c1.reshape(1, 1, -1)
    return RunResult(output=out, spike_counts=counts, spikes=spikes)


# ------------------------------------------------------------------------------------------ measurement

def summary(metrics: dict) -> dict:
    """Agreement, the worst layer's relative count difference, and every layer's."""
    return {"agreement": metrics["agreement"], "max_count_rel_diff": metrics["max_count_rel_diff"],
            "rate_cosine": metrics["rate_cosine"],
            "layers": {k: round(v["rel_diff"], 5) for k, v in metrics["layers"].items()},
            "signed": {k: round((v["target_spikes"] - v["reference_spikes"]) / max(v["reference_spikes"], 1), 5)
                       for k, v in metrics["layers"].items()}}


def measure_graph(name: str, samples: int, configs: dict, sources: tuple[str, ...] = SOURCES) -> dict:
    from neuromoco.deploy.graph import spiking_nodes
    from neuromoco.deploy.loihi.compile import compile_graph
    from neuromoco.deploy.parity import compare
    from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner
    from neuromoco.deploy.targets.reference_fixed.executor import FixedPointExecutor

    graph, card, card_dict = load(name)
    frames = frames_for(card_dict, samples)
    layers = spiking_nodes(graph)
    ref = ReferenceRunner(graph, card, ReferenceOptions(dtype="float64", record_spikes=True)).run(frames)
    fplan = compile_graph(graph, card.dt, precision="float", input_shape=list(card.input_shape))
    out: dict = {"samples": samples, "time_steps": card.time_steps, "dt": card.dt,
                 "reference_spikes_per_sample": {k: float(ref.spike_counts[k].sum() / samples) for k in layers},
                 "configs": {}}
    for label, opts in configs.items():
        qplan = compile_plan(graph, card, **opts)
        fixed = FixedPointExecutor(qplan, record_spikes=True).run(frames)
        entry = {"fixed": summary(compare(ref, fixed, layers=layers))}
        emu = integer_plan_run(qplan, frames)
        entry["integer_emulation_equals_fixed"] = bool(
            all(np.array_equal(emu.spikes[k], fixed.spikes[k]) for k in layers))
        for label_i, fs, tr in (("state_no_floor", False, True), ("state_no_trunc", True, False),
                                ("state_exact", False, False)):
            entry[label_i] = summary(compare(ref, integer_plan_run(qplan, frames, fs, tr), layers=layers))
        for src in sources:
            on = {"decay", "weight", "threshold"} if src == "all_but_state" else ({src} - {"float"})
            entry[src] = summary(compare(ref, float_plan_run(fplan, qplan, frames, on), layers=layers))
        entry["plan"] = {lay.name: {k: lay.report.get(k) for k in ("du_abs_error", "dv_abs_error", "vth_rel_error",
                                                                     "vth_mantissa", "decay_notes")
                                    if k in lay.report}
                         | {"weight": {s: {k: r.get(k) for k in ("weight_exp", "rel_weight_error", "mantissa_max")}
                                       for s, r in lay.report["connections"].items()}}
                         for lay in qplan.layers}
        out["configs"][label] = entry
    return out


def compile_plan(graph, card, scale: str = "neuron", weight_bits: int = 8, legacy: bool = False):
    """The fixed-point plan the targets compile with these options (``legacy``: as they compiled before)."""
    from neuromoco.deploy.loihi import fixed_point
    from neuromoco.deploy.loihi.compile import compile_graph

    keep = fixed_point.RESIDUAL_MIN_STEP, fixed_point.UNSHIFTED_MIN_LEVELS
    if legacy:
        fixed_point.RESIDUAL_MIN_STEP, fixed_point.UNSHIFTED_MIN_LEVELS = 0, float("inf")
    try:
        return compile_graph(graph, card.dt, precision="fixed", input_shape=list(card.input_shape),
                             per_neuron_scale=scale == "neuron", weight_bits=weight_bits, sign_split=not legacy)
    finally:
        fixed_point.RESIDUAL_MIN_STEP, fixed_point.UNSHIFTED_MIN_LEVELS = keep


def lava_check(name: str, samples: int) -> dict:
    """lava-fixed against reference-fixed (default options) on the first ``samples`` samples."""
    from neuromoco.deploy.graph import spiking_nodes
    from neuromoco.deploy.parity import compare
    from neuromoco.deploy.targets import get_target
    from neuromoco.deploy.targets.reference import ReferenceOptions, ReferenceRunner

    graph, card, card_dict = load(name)
    frames = frames_for(card_dict, samples)
    layers = spiking_nodes(graph)
    ref = ReferenceRunner(graph, card, ReferenceOptions(dtype="float64", record_spikes=True)).run(frames)
    res = {}
    for target in ("lava-fixed", "reference-fixed"):
        impl, options = get_target(target)
        res[target] = impl.runner(graph, card, options.updated({"record_spikes": True})).run(frames)
    same = all(np.array_equal(res["lava-fixed"].spikes[k], res["reference-fixed"].spikes[k]) for k in layers)
    same = same and np.array_equal(res["lava-fixed"].output, res["reference-fixed"].output)
    return {"samples": samples, "lava_equals_reference_fixed": bool(same),
            "lava_fixed": summary(compare(ref, res["lava-fixed"], layers=layers))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--lava", type=int, default=16, help="samples for the lava-fixed check (0: skip)")
    ap.add_argument("--graphs", default=",".join(GRAPHS))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--print", action="store_true", help="print a table instead of only writing JSON")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    result = {"benchmark": "fixed_point_recurrent", "when": now(), "machine": machine_info(),
              "reference": "reference executor, float64", "graphs": {}}
    for name in args.graphs.split(","):
        entry = measure_graph(name, args.samples, CONFIGS)
        if args.lava:
            entry["lava_fixed_check"] = lava_check(name, args.lava)
        result["graphs"][name] = entry
        for label, e in entry["configs"].items():
            print(f"{name:<20} {label:<10} integer emulation == reference-fixed: {e['integer_emulation_equals_fixed']}")
            for src in ("fixed", *SOURCES, "state_no_floor", "state_no_trunc", "state_exact"):
                s = e[src]
                print(f"{name:<20} {label:<10} {src:<14} agree {s['agreement']:.4f}  "
                      f"worst {s['max_count_rel_diff']:.4f}"
                      f"  {s['signed']}")
    path = write_json(args.out, result)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
