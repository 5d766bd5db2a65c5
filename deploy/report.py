"""Readable reports for ``deploy parity`` and ``deploy profile``: Markdown with PNG plots beside it.

Plots use matplotlib's Agg backend (no display needed). Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.io import atomic_write, atomic_write_text


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path.name


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 1e5 or abs(x) < 1e-3:
            return f"{x:.3e}"
        return f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _cos(x: float | None) -> str:
    """A cosine with enough digits to tell 0.99999 from 1."""
    return "–" if x is None else f"{x:.6f}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# ---------------------------------------------------------------------------------------- parity plots
#: above this ratio of the largest to the smallest non-zero count, counts are drawn on a symlog axis (0 stays 0)
LOG_RATIO = 50


def count_scale(values: np.ndarray) -> str:
    """``"linear"``, or ``"symlog"`` when non-zero counts span more than :data:`LOG_RATIO`: both start at 0, so a
    silent layer sits on the axis (a log axis has no 0 and drew it as no bar at all)."""
    pos = values[values > 0]
    return "symlog" if pos.size and pos.max() / pos.min() > LOG_RATIO else "linear"


def _mark_zeros(ax: Any, x: np.ndarray, values: np.ndarray, color: str) -> None:
    """A visible "0" on the axis where a bar has no height."""
    for xi in x[values == 0]:
        ax.plot([xi], [0], marker="_", ms=14, mew=2.5, color=color, clip_on=False, zorder=3)
        ax.annotate("0", (xi, 0), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize=8,
                    color=color)


def counts_figure(target: str, layers: dict[str, dict[str, Any]]) -> Any:
    """Total spikes per layer (graph order), reference and target side by side, on an axis that starts at 0."""
    plt = _plt()
    names = list(layers)
    ref = np.array([layers[k]["reference_spikes"] for k in names], dtype=float)
    tgt = np.array([layers[k]["target_spikes"] for k in names], dtype=float)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 3.6))
    for dx, vals, label, color in ((-0.2, ref, "reference", "C0"), (0.2, tgt, target, "C1")):
        ax.bar(x + dx, vals, 0.4, label=label, color=color)
        _mark_zeros(ax, x + dx, vals, color)
    ax.set_xticks(x, names, rotation=30, ha="right")
    scale = count_scale(np.concatenate([ref, tgt]))
    if scale == "symlog":
        ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, max(float(np.concatenate([ref, tgt]).max(initial=0)), 1) * (3 if scale == "symlog" else 1.15))
    ax.set_ylabel("total spikes" + (" (linear to 1, log above)" if scale == "symlog" else ""))
    ax.set_title(f"Spikes per layer: reference vs {target}")
    ax.legend()
    return fig


def plot_layer_counts(path: Path, target: str, layers: dict[str, dict[str, Any]]) -> str:
    return _save(counts_figure(target, layers), path)


def plot_rate_scatter(path: Path, target: str, ref_rates: np.ndarray, tgt_rates: np.ndarray, basis: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(ref_rates, tgt_rates, s=9, alpha=0.5, linewidths=0)
    hi = float(max(ref_rates.max(initial=0), tgt_rates.max(initial=0), 1e-6)) * 1.05
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    unit = "spikes / step" + (" (per neuron)" if basis == "per-neuron" else " (per layer)")
    ax.set_xlabel(f"reference rate, {unit}")
    ax.set_ylabel(f"{target} rate")
    ax.set_title(f"Firing rates ({basis})")
    return _save(fig, path)


#: the most neuron rows one layer's band of the raster shows
RASTER_ROWS = 48


@dataclass
class RasterBand:
    """The rows of one layer in the raster: which neurons (flat indices, ascending) and how they were chosen."""

    name: str
    neurons: int
    rows: np.ndarray
    differing: int  # neurons whose spikes differ between the sides
    firing: int  # neurons that fire on either side

    @property
    def label(self) -> str:
        head = f"{self.name}: {self.neurons:,} neuron{'s' if self.neurons != 1 else ''}"
        if len(self.rows) == self.neurons:
            return head + (", all shown" if self.firing else ", all shown, none fires")
        if not self.firing:
            return head + f", none fires ({len(self.rows)} shown)"
        k = len(self.rows)
        if not self.differing:
            return head + f"; {k} of the {self.firing:,} that fire shown (none differs)"
        if self.differing >= k:
            return head + f"; {k} shown, all differing (of {self.differing:,} that differ)"
        return head + f"; {k} shown: the {self.differing:,} that differ, then some of the {self.firing:,} that fire"


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``idx``, evenly spread over it (all of it when ``k`` covers it)."""
    if k <= 0:
        return idx[:0]
    if len(idx) <= k:
        return idx
    return idx[np.unique(np.linspace(0, len(idx) - 1, k).round().astype(int))]


def raster_bands(ref: dict[str, np.ndarray], tgt: dict[str, np.ndarray], max_rows: int = RASTER_ROWS
                 ) -> list[RasterBand]:
    """One band per layer (``[T, *shape]`` records, graph order). A layer of at most ``max_rows`` neurons shows
    every one, however small; a larger one shows ``max_rows``: the neurons whose spikes differ first, then
    neurons that fire, each spread evenly over the layer (a silent neuron adds nothing to a raster)."""
    bands = []
    for name, r in ref.items():
        a, b = r.reshape(r.shape[0], -1) > 0, tgt[name].reshape(r.shape[0], -1) > 0
        n = a.shape[1]
        diff = np.flatnonzero((a != b).any(axis=0))
        fire = np.flatnonzero((a | b).any(axis=0))
        if n <= max_rows:
            rows = np.arange(n)
        elif fire.size == 0:
            rows = _spread(np.arange(n), min(n, 8))
        else:
            chosen = _spread(diff, max_rows)
            rest = np.setdiff1d(fire, chosen)
            rows = np.union1d(chosen, _spread(rest, max_rows - len(chosen)))
        bands.append(RasterBand(name, n, rows, int(diff.size), int(fire.size)))
    return bands


#: raster colours: no spike, spike on both sides, only in the target, only in the reference
_RASTER_COLORS = ["white", "black", "tab:red", "tab:blue"]


def plot_raster(path: Path, target: str, sample: int, ref: dict[str, np.ndarray], tgt: dict[str, np.ndarray]) -> str:
    """Raster of one sample (``[T, *shape]`` 0/1 per layer): one labelled band per layer, reference left, target
    right; a spike only the target fires is red, one only the reference fires blue (see :func:`raster_bands`)."""
    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    bands = raster_bands(ref, tgt)
    heights = [max(len(b.rows), 10) for b in bands]  # a 4-neuron layer still gets a readable band
    fig, axes = plt.subplots(len(bands), 2, sharex=True, squeeze=False,
                             figsize=(10, 1.2 + sum(0.45 + 0.05 * h for h in heights)),
                             gridspec_kw={"height_ratios": heights, "hspace": 0.45, "wspace": 0.05})
    cmap = ListedColormap(_RASTER_COLORS)
    for band, (left, right) in zip(bands, axes, strict=True):
        T = ref[band.name].shape[0]
        a = (ref[band.name].reshape(T, -1)[:, band.rows] > 0).T
        b = (tgt[band.name].reshape(T, -1)[:, band.rows] > 0).T
        code = np.where(a & b, 1, np.where(b, 2, np.where(a, 3, 0)))
        for ax, img in ((left, a.astype(int)), (right, code)):
            ax.imshow(img, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=3,
                      extent=(-0.5, T - 0.5, len(band.rows) - 0.5, -0.5))
            ticks = np.unique(np.linspace(0, len(band.rows) - 1, min(len(band.rows), 4)).round().astype(int))
            ax.set_yticks(ticks, [str(band.rows[i]) for i in ticks] if ax is left else [])
            ax.tick_params(axis="y", labelsize=7)
        left.set_title(band.label, loc="left", fontsize=8)
        if not band.firing:
            for ax in (left, right):
                ax.text(0.5, 0.5, "no spike in this sample", transform=ax.transAxes, ha="center", va="center",
                        fontsize=8, color="0.4")
        left.set_ylabel("neuron", fontsize=8)
    for ax, title in zip(axes[0], ("reference", target), strict=True):
        ax.annotate(title, (0.5, 1.0), xytext=(0, 16), xycoords="axes fraction", textcoords="offset points",
                    ha="center", va="bottom", fontsize=10, fontweight="bold")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[-1]:
        ax.set_xlabel("time step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(handles=[Patch(facecolor=c, edgecolor="0.5", label=lab) for c, lab in
                        zip(_RASTER_COLORS[1:], ("spike on both sides", "only in target", "only in reference"),
                            strict=True)],
               loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(f"Sample {sample}: spikes per layer (rows: neurons, flat index)", y=1.0)
    return _save(fig, path)


def write_parity_report(out_dir: Path, summary: dict[str, Any], extras: dict[str, dict[str, Any]]) -> Path:
    """``report.md`` (and PNGs) for a ``parity.json`` summary.

    ``extras[target]`` may hold ``rates`` ``(ref, tgt)`` arrays and ``raster`` ``(sample, ref, tgt)``.
    """
    out_dir = Path(out_dir)
    drawn = (out_dir / "graph.png").exists()  # deploy parity draws it first (neuromoco.deploy.graph.draw)
    lines = _parity_header(summary) + (["![the graph](graph.png)", ""] if drawn else []) + _parity_summary(summary)
    for name, t in summary["targets"].items():
        lines += _target_section(out_dir, name, t, extras.get(name, {}))
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _verdict(t: dict[str, Any]) -> str:
    """A comparison's verdict word (OK, FAIL, INCONCLUSIVE, ERROR); older parity.json files have only ``status``."""
    return t.get("verdict") or t["status"].upper()


def _held_to_equality(name: str, t: dict[str, Any], exact: Sequence[str]) -> bool:
    """Whether the comparison was held to equality (an exact target, or a target against its emulator)."""
    if "held_to_equality" in t:
        return bool(t["held_to_equality"])
    return name in exact or t.get("role") == "deployment exactness"


def _parity_header(summary: dict[str, Any]) -> list[str]:
    """Title, dataset and samples, how the reference runs, the tolerances and what is held to equality."""
    lines = [f"# Parity report: `{summary['model']}`", ""]
    lines += [(f"Dataset: {summary['dataset']} ({summary['split']}), {summary['samples']} samples, "
              f"{summary['time_steps']} time steps each."
               + ("" if summary.get("limit") is None else
                  f" `--limit {summary['limit']}`: the slow targets (those judged against a bit-exact emulator) ran "
                  f"on at most the first {summary['limit']} samples; the reference, the emulators and the other "
                  "targets on every sample.")), ""]
    lines += [("The reference executor runs the same samples; it runs in float64 for Lava targets (Lava's "
              "floating-point simulation computes in float64) and in float32 for the others (ONNX computes "
              "in float32). Exact targets are held to equality; the others to the tolerances below."), ""]
    tol = summary["tolerances"]
    equal = [f"{name} (against {t.get('compared_with') or 'reference'})" for name, t in summary["targets"].items()
             if t["status"] != "error" and _held_to_equality(name, t, tol["exact"])]
    lines += ["Tolerances: prediction agreement >= {}, per-layer spike-count relative difference <= {}, "
              "firing-rate cosine >= {}{}. Held to equality (exact targets, and targets against their bit-exact "
              "emulator): {}.".format(
                  tol["min_agreement"], tol["max_count_rel_diff"], tol["min_rate_cosine"],
                  "" if tol.get("max_accuracy_drop") is None else f", accuracy drop <= {tol['max_accuracy_drop']}",
                  ", ".join(equal) or "none"), ""]
    lines += ["Verdicts: OK within every limit; FAIL outside one; INCONCLUSIVE when the agreement tolerance is the "
              "only limit missed and the samples are too few to decide it (see *Sample size*; `deploy parity` exits "
              "0 for it unless `--strict`); ERROR could not build or run."
              + (f" Overall: **{summary['verdict']}**." if summary.get("verdict") else ""), ""]
    return lines


def _parity_summary(summary: dict[str, Any]) -> list[str]:
    """The one-row-per-target summary table; targets the user did not name are marked (added)."""
    rows = []
    for name, t in summary["targets"].items():
        m = t.get("metrics") or {}
        ci = m.get("agreement_ci95")
        rows.append([name + (" (added)" if t.get("added") else ""), _verdict(t),
                     t.get("compared_with") or f"reference, {t.get('reference_dtype')}",
                     t.get("role", "parity"), m.get("samples"), m.get("accuracy_reference"),
                     m.get("accuracy_target"), m.get("agreement"),
                     None if ci is None else f"{ci[0]:.4f}-{ci[1]:.4f}", m.get("max_count_rel_diff"),
                     _cos(m.get("rate_cosine")), m.get("diverging_samples")])
    lines = ["## Summary", ""]
    lines += _table(["target", "verdict", "compared with", "question", "samples", "baseline acc.", "target acc.",
                     "agreement",
                     "agreement 95% (Wilson)", "max layer count rel. diff", "rate cosine",
                     "samples with any spike mismatch"], rows)
    added = [f"- {name}: {t['added']}" for name, t in summary["targets"].items() if t.get("added")]
    notes = [f"- {name}: {t['sample_size_note']}" for name, t in summary["targets"].items()
             if t.get("sample_size_note")]
    degenerate = [f"- {name}: {d}" for name, t in summary["targets"].items()
                  for d in (t.get("metrics") or {}).get("degenerate", [])]
    return (lines + [""] + (["**Added** (not named in `--targets`):", "", *added, ""] if added else [])
            + (["**Sample size:**", "", *notes, ""] if notes else [])
            + (["**Degenerate:**", "", *degenerate, ""] if degenerate else []))


def _target_section(out_dir: Path, name: str, t: dict[str, Any], extras: dict[str, Any]) -> list[str]:
    """One target's section: verdict, per-layer table, worst samples and plots."""
    lines = [f"## {name}", ""] + ([f"Added: {t['added']}.", ""] if t.get("added") else [])
    if t["status"] == "error":
        return lines + [f"**Error**: {t['error']}", ""]
    m = t["metrics"]
    if t["status"] == "inconclusive":
        why = [*t["violations"], *([t["sample_size_note"]] if t.get("sample_size_note") else [])]
        lines += ["**Inconclusive** (too few samples to decide):", ""] + [f"- {v}" for v in why] + [""]
    elif t["violations"]:
        lines += ["**Outside tolerance:**", ""] + [f"- {v}" for v in t["violations"]] + [""]
    else:
        lines += ["Within tolerance.", ""]
    lines += [f"Firing-rate cosine basis: {m['rate_basis']}"
              + ("" if m["rate_basis"] == "per-neuron" else " (the target reports per-layer counts only)")
              + f"; largest absolute output difference: {_fmt(m['max_output_abs_diff'])}.", ""]
    lrows = [[k, v["reference_spikes"], v["target_spikes"], v["rel_diff"], _cos(v.get("rate_cosine"))]
             for k, v in m["layers"].items()]
    lines += _table(["layer", "reference spikes", "target spikes", "rel. diff", "rate cosine"], lrows) + [""]
    if m["worst_samples"]:
        lines += [f"Samples with the most spike mismatches ({m['mismatch_basis']}) and where they first diverge:", ""]
        lines += _table(["sample", "mismatches", "first step", "first layer", "mismatches at that step"],
                        [[w["sample"], w["mismatches"], w["first_step"], w["first_layer"],
                          w["mismatches_at_first_step"]] for w in m["worst_samples"]]) + [""]
    else:
        lines += ["No spike differs from the reference on any sample.", ""]
    return lines + [f"![{p}]({p})" for p in _target_plots(out_dir, name, m, extras)] + [""]


def _target_plots(out_dir: Path, name: str, m: dict[str, Any], extras: dict[str, Any]) -> list[str]:
    """Spike counts per layer, firing rates (per neuron when recorded, else per layer) and the raster if any."""
    safe = _safe(name)
    pngs = [plot_layer_counts(out_dir / f"counts_{safe}.png", name, m["layers"])]
    if extras.get("rates") is not None:
        ref_rates, tgt_rates = extras["rates"]  # (reference, target) per neuron: ParityAccumulator.rates
        pngs.append(plot_rate_scatter(out_dir / f"rates_{safe}.png", name, ref_rates, tgt_rates, m["rate_basis"]))
    else:
        layers = list(m["layers"])
        scale = 1.0 / max(m["samples"] * m["time_steps"], 1)
        r = np.array([m["layers"][k]["reference_spikes"] for k in layers], dtype=float) * scale
        g = np.array([m["layers"][k]["target_spikes"] for k in layers], dtype=float) * scale
        pngs.append(plot_rate_scatter(out_dir / f"rates_{safe}.png", name, r, g, "per-layer"))
    if extras.get("raster") is not None:
        pngs.append(plot_raster(out_dir / f"raster_{safe}.png", name, *extras["raster"]))
    return pngs


# ---------------------------------------------------------------------------------------- energy
def plot_energy(path: Path, prof: dict[str, Any], energies: dict[str, dict[str, Any]]) -> str:
    plt = _plt()
    layers = [r["layer"] for r in prof["layers"]]  # graph order; layers into one node are named conv<-source
    series = []
    for name, e in energies.items():
        series.append((f"SNN, {name}", [x["snn_pj"] for x in e["layers"]]))
        if e["ann_pj"] is not None:
            series.append((f"ANN, {name}", [x["ann_pj"] for x in e["layers"]]))
    x = np.arange(len(layers))
    w = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(layers) + 2), 4))
    for i, (label, vals) in enumerate(series):
        v = np.asarray(vals, dtype=float) * 1e-6
        xi = x - 0.4 + w * (i + 0.5)
        bars = ax.bar(xi, v, w, label=label, hatch="//" if label.startswith("ANN") else None)
        for xz in xi[v == 0]:  # a log axis has no 0: say it at the bottom instead of drawing nothing
            ax.annotate("0", (xz, 0), xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8, color=bars.patches[0].get_facecolor())
    ax.set_xticks(x, layers, rotation=30, ha="right")
    ax.set_xlabel("synaptic layer, in graph order")
    ax.set_ylabel("energy per inference (µJ, log scale)")
    ax.set_yscale("log")
    ax.set_title("Energy per layer: SNN vs the same network as an ANN")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_energy_report(out_dir: Path, data: dict[str, Any]) -> Path:
    """``energy.md`` (and ``energy.png``) for an ``energy.json`` document."""
    out_dir = Path(out_dir)
    prof, energies = data["profile"], data["energy_pj"]
    lines = _energy_totals(data) + _energy_per_layer(prof, energies)
    png = plot_energy(out_dir / "energy.png", prof, energies)
    lines += [f"![{png}]({png})", ""]
    if data.get("neurobench"):
        lines += _neurobench_section(data["neurobench"])
        png = plot_layer_metrics(out_dir / "layers.png", {data["target"]: data["neurobench"]})
        lines += [f"![{png}]({png})", ""]
    if data.get("loihi2_map"):
        lines += _loihi_section(data["loihi2_map"])
        if data["loihi2_map"].get("load"):
            png = plot_core_load(out_dir / "cores.png", data["loihi2_map"])
            lines += [f"![{png}]({png})", ""]
    lines += _energy_models(data["energy_models"])
    lines += ["## How the counts are made", "",
              "Synaptic operations: each spike times its fan-out, the number of synapses it reaches, computed per "
              "source position exactly (padding, stride, dilation and groups respected) by running each "
              "synaptic layer with unit weights. The first layer's sources are the input events. Neuron "
              "updates: every neuron of every neuron layer, every time step. ANN MACs: the same layers as a "
              "dense network, once per inference."
              + (" " + " ".join(prof["notes"]) if prof["notes"] else ""), ""]
    path = out_dir / "energy.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _energy_totals(data: dict[str, Any]) -> list[str]:
    """Title, dataset, the counts per inference and the energy per model."""
    prof, energies = data["profile"], data["energy_pj"]
    t = prof["per_inference"]
    lines = [f"# Energy profile: `{data['model']}` on `{data['target']}`", ""]
    lines += [(f"Dataset: {data['dataset']} ({data['split']}), {prof['samples']} samples of {prof['time_steps']} "
              f"time steps. Counts are per inference (one sample); input events counted as "
              f"{prof['input_basis']}."), ""]
    lines += _table(["quantity per inference", "value"], [
        ["input events", t["input_events"]], ["spikes (all spiking layers)", t["spikes"]],
        ["synaptic operations", t["synops"]], ["neuron updates (neurons x steps)", t["neuron_updates"]],
        ["neurons", t["neurons"]], ["synapses", t["synapses"]],
        ["MACs of the same network as an ANN (once)", t["ann_macs"]]]) + [""]
    lines += ["## Energy per inference", ""]
    rows = []
    for name, e in energies.items():
        rows.append([name, e["snn_pj"] * 1e-6, e["snn_synops_pj"] * 1e-6, e["snn_neuron_updates_pj"] * 1e-6,
                     None if e["ann_pj"] is None else e["ann_pj"] * 1e-6, e["ann_over_snn"]])
    return lines + _table(["model", "SNN (µJ)", "of which synops (µJ)", "of which neuron updates (µJ)", "ANN (µJ)",
                           "ANN / SNN"], rows) + [""] + _two_loihi_figures(data)


#: the energy model whose per-operation figures the Loihi 2 core map also uses (deploy/loihi2_cores.json)
LOIHI_MODEL = "loihi"


def _two_loihi_figures(data: dict[str, Any]) -> list[str]:
    """One sentence on the two Loihi energies per inference (the ``loihi`` model's and the core map's), when
    both are in the report: they count the same spikes two ways, so they differ, and the reader is told why."""
    e, m = data["energy_pj"].get(LOIHI_MODEL), data.get("loihi2_map") or {}
    load = m.get("load")
    if e is None or not load:
        return []
    t, op = data["profile"]["per_inference"], data["energy_models"][LOIHI_MODEL]["energy_pj"]
    c = load["energy_per_inference_pj"]
    return [(f"Two Loihi energies per inference, from the same spikes at the same {op['synop']} pJ per synaptic "
             f"operation and {op.get('neuron_update') or 0} pJ per neuron update: the `{LOIHI_MODEL}` model above "
             f"gives {_fmt(e['snn_pj'] * 1e-6)} µJ ({_fmt(t['synops'])} synaptic operations: an input entry of n "
             f"events counts n times, a zero weight counts as a synapse; {_fmt(t['neuron_updates'])} neuron "
             f"updates), the Loihi 2 core map below {_fmt(c['total'] * 1e-6)} µJ "
             f"({_fmt(load['synops_per_inference'])} synaptic operations: an input entry counts once, as one graded "
             f"spike, and a zero weight is no synapse; {_fmt(load['neuron_updates_per_inference'])} neuron updates, "
             f"the readout's included; plus {_fmt(c['barrier_sync'] * 1e-6)} µJ of barrier synchronisation, one per "
             "core and step)."), ""]


def _energy_per_layer(prof: dict[str, Any], energies: dict[str, dict[str, Any]]) -> list[str]:
    lrows = []
    for i, r in enumerate(prof["layers"]):
        per_model = [energies[n]["layers"][i]["snn_pj"] * 1e-6 for n in energies]
        lrows.append([r["layer"], r["source"], r["sink"], r["spikes_in_per_inference"],
                      None if r["fanout"] is None else r["fanout"]["mean"], r["synops_per_inference"],
                      r["neuron_updates_per_inference"], r["ann_macs"], *per_model])
    return ["## Per layer", ""] + _table(["layer", "source", "sink", "spikes in", "mean fan-out", "synops",
                                          "neuron updates", "ANN MACs", *[f"SNN µJ ({n})" for n in energies]],
                                         lrows) + [""]


def _energy_models(models: dict[str, dict[str, Any]]) -> list[str]:
    """Each energy model's figures, source and caveats."""
    lines = ["## Energy models and their sources", ""]
    for name, m in models.items():
        e = m["energy_pj"]
        lines += [f"### {name}: {m.get('title', '')}", "",
                  (f"Per operation: synaptic op {e['synop']} pJ, neuron update {e.get('neuron_update') or 0} pJ, "
                  f"ANN MAC {'not modelled' if e.get('ann_mac') is None else str(e['ann_mac']) + ' pJ'}."), "",
                  f"Source: {m['source']}", ""]
        if m.get("caveats"):
            lines += ["Caveats:", ""] + [f"- {c}" for c in m["caveats"]] + [""]
    return lines


# ---------------------------------------------------------------------------------------- NeuroBench, Loihi 2
def _neurobench_section(nb: dict[str, Any]) -> list[str]:
    """NeuroBench's metrics (names and units as NeuroBench reports them) and their per-layer parts."""
    so, fp = nb["synaptic_operations"], nb["footprint_bytes"]
    lines = ["## NeuroBench metrics", "",
             f"Definitions and names of {nb['source']}; per sample (one inference), "
             f"precision {nb['precision']['name']}.",
             ""]
    lines += _table(["metric", "value"], [
        ["footprint (bytes)", nb["footprint"]],
        ["  of which weights / biases / neuron constants / neuron state",
         f"{fp['weights']:,} / {fp['biases']:,} / {fp['neuron_constants']:,} / {fp['neuron_state']:,}"],
        ["connection_sparsity", nb["connection_sparsity"]], ["activation_sparsity", nb["activation_sparsity"]],
        ["synaptic_operations: Dense", so["Dense"]], ["synaptic_operations: Effective_MACs", so["Effective_MACs"]],
        ["synaptic_operations: Effective_ACs", so["Effective_ACs"]],
        ["membrane_updates (neurons x steps: an upper bound of NeuroBench's)", nb["membrane_updates"]]]) + [""]
    rows = [[k, v] for k, v in nb["activation_sparsity_by_layer"].items()]
    lines += _table(["spiking layer", "activation sparsity"], rows) + [""]
    rows = [[k, v["Dense"], v["Effective_MACs"], v["Effective_ACs"]]
            for k, v in nb["synaptic_operations_by_layer"].items()]
    lines += _table(["weighted node", "Dense", "Effective_MACs", "Effective_ACs"], rows) + [""]
    return lines + [f"Note: {n}" for n in nb.get("notes", [])] + ([""] if nb.get("notes") else [])


def _loihi_section(m: dict[str, Any]) -> list[str]:
    """The core-mapping estimate: fit, cores per layer, the most loaded core, time and energy, the limits' sources."""
    lines = ["## Loihi 2 core mapping (an estimate from a model)", ""]
    if not m.get("available", True):
        return lines + [f"Not available: {m['reason']}", ""]
    fit = "fits on one chip" if m["fits"] else "**does not fit on one chip**: " + "; ".join(m["problems"])
    lines += [(f"{m['cores_needed']} cores ({m['chips_needed']} chip(s)); {fit}. This is a model of the mapping "
               "(greedy, one layer per core), not Intel's compiler; limits and costs marked 'assumed' are not "
               "published Loihi 2 figures."), ""]
    ex = m.get("expanded")
    if ex:
        ex_fit = "fits on one chip" if ex["fits"] else "does not fit on one chip"
        lines += [(f"Convolution kernels share their weights (a tile stores its channels' kernel once): "
                   f"{_fmt(m['synaptic_memory_bytes'])} B of synaptic memory. Without weight sharing (every "
                   f"synapse stored): {ex['cores_needed']} cores, {ex_fit}, {_fmt(ex['synaptic_memory_bytes'])} B."),
                  ""]
    lines += _table(["layer", "neurons", "synapses", "weights", "cores", "cores, expanded", "memory (B)",
                     "memory expanded (B)", "sources"],
                    [[r["layer"], r["neurons"], r["synapses"], r.get("parameters", r["synapses"]), r["cores"],
                      r.get("cores_expanded", r["cores"]), r.get("synaptic_memory_bytes", ""),
                      r.get("synaptic_memory_bytes_expanded", ""), ", ".join(r["sources"])] for r in m["layers"]])
    lines += [""]
    load = m.get("load")
    if load:
        c, t, e = load["most_loaded_core"], load["time_per_step_s"], load["energy_per_inference_pj"]
        rows = [
            ["most loaded core",
             f"core {c['core']} ({c['layer']}, {c['neurons']:,} neurons, {c['synapses']:,} synapses)"],
            ["its synaptic ops per step: mean / max",
             f"{_fmt(c['synops_per_step_mean'])} / {_fmt(c['synops_per_step_max'])}"],
            ["time per step, most loaded core bound (µs): mean / max",
             f"{_fmt(t['mean'] * 1e6)} / {_fmt(t['max'] * 1e6)}"],
            ["time per step if the load were perfectly balanced (µs)", t["if_perfectly_balanced"] * 1e6],
            ["time per inference (µs)", load["time_per_inference_s"] * 1e6],
            ["energy per inference (µJ): synops + neuron updates + barrier sync (not the `loihi` model's figure: "
             "see Energy per inference)", e["total"] * 1e-6]]
        ex_load = (ex or {}).get("load")
        if ex_load:
            rows += [["without weight sharing: time per step (µs), mean / max",
                      f"{_fmt(ex_load['time_per_step_s']['mean'] * 1e6)} / "
                      f"{_fmt(ex_load['time_per_step_s']['max'] * 1e6)}"],
                     ["without weight sharing: energy per inference (µJ)",
                      ex_load["energy_per_inference_pj"]["total"] * 1e-6]]
        lines += _table(["per time step / per inference", "value"], rows) + [""]
    lines += ["Limits and costs:", ""]
    lines += _table(["figure", "value", "status", "source"],
                    [[k, v["value"], v["status"], v["source"]]
                     for part in ("limits", "costs") for k, v in m[part].items()])
    return lines + [""] + [f"- {x}" for x in m["model"]] + [""]


def plot_layer_metrics(path: Path, by_target: dict[str, dict[str, Any]]) -> str:
    """Per-layer activation sparsity and synaptic operations (Effective_ACs + Effective_MACs), one bar per target."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    targets = list(by_target)
    w = 0.8 / max(len(targets), 1)
    for ax, key in zip(axes, ("activation_sparsity_by_layer", "synaptic_operations_by_layer"), strict=True):
        names = list(next(iter(by_target.values()))[key])
        x = np.arange(len(names))
        for i, t in enumerate(targets):
            d = by_target[t][key]
            vals = [d.get(n, 0.0) if key.startswith("activation") else
                    d.get(n, {}).get("Effective_ACs", 0.0) + d.get(n, {}).get("Effective_MACs", 0.0) for n in names]
            ax.bar(x - 0.4 + w * (i + 0.5), vals, w, label=t)
        ax.set_xticks(x, names, rotation=30, ha="right")
    axes[0].set_ylabel("activation sparsity")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("Activation sparsity per spiking layer")
    axes[1].set_ylabel("effective synaptic ops per sample")
    axes[1].set_title("Synaptic operations per weighted node")
    axes[1].legend(fontsize=8)
    fig.subplots_adjust(wspace=0.35)
    return _save(fig, path)


def plot_core_load(path: Path, m: dict[str, Any]) -> str:
    """Loihi 2 estimate: mean (bar) and max (dot) synaptic ops per step of every core, and their histogram."""
    plt = _plt()
    cores = m["cores"]
    mean = np.array([c["synops_per_step_mean"] for c in cores])
    peak = np.array([c["synops_per_step_max"] for c in cores])
    layers = list(dict.fromkeys(c["layer"] for c in cores))
    colors = {name: f"C{i % 10}" for i, name in enumerate(layers)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(cores))
    axes[0].bar(x, mean, color=[colors[c["layer"]] for c in cores])
    axes[0].plot(x, peak, "k.", ms=3, label="max over steps")
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[name], label=name) for name in layers]
    axes[0].set_xlabel("core")
    axes[0].set_ylabel("synaptic ops per time step")
    axes[0].set_title("Load per core (mean; dots: max)")
    axes[0].legend(handles=[*handles, *axes[0].get_legend_handles_labels()[0]], fontsize=7)
    axes[1].hist(mean, bins=min(30, max(5, len(cores))), color="0.4", edgecolor="white")  # bins told apart
    axes[1].set_xlabel("mean synaptic ops per time step")
    axes[1].set_ylabel("cores")
    axes[1].set_title(f"Core-load histogram ({len(cores)} cores)")
    from matplotlib.ticker import MaxNLocator

    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # core numbers
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))  # core counts
    fig.subplots_adjust(wspace=0.3)
    return _save(fig, path)
