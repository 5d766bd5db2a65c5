"""Compare targets with the reference on the same samples: the job behind ``deploy parity`` and :func:`parity`.

Every named target runs the same samples as the reference executor; each comparison gets metrics (accuracy,
prediction agreement, per-layer spike counts, firing-rate cosine, first divergence) and a verdict: OK, FAIL, or
INCONCLUSIVE when its only broken limit is the agreement tolerance and its samples are too few to decide it. A slow
target with a bit-exact emulator is judged against the emulator on a subset (deployment exactness) and, for a
quantized one, the emulator against the float reference on every sample (quantization loss). A recorded run of
that emulator named among the targets (``trace:FILE``, recorded with the same plan options) stands in for it: the
emulator does not run, the trace is the slow target's baseline and takes the emulator's quantization-loss entry.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuromoco.deploy.api.model import Model, as_model
from neuromoco.deploy.parity import ParityAccumulator, Tolerances, check, parse_names, sample_size_note, verdict
from neuromoco.deploy.targets import REFERENCE, TARGETS, parity_defaults, spec
from neuromoco.errors import UserError

#: the formats ``--trace`` writes (the suffix of each trace file)
TRACE_FORMATS = ("nir", "npz")


@dataclass(frozen=True)
class ParitySettings:
    """How a parity job samples and runs (the ``deploy parity`` flags of the same names)."""

    limit: int | None = None  # slow targets (with a bit-exact emulator) run at most this many samples
    exactness_samples: int = 64  # samples on which a slow target must equal its emulator (0: vs the reference)
    reference_dtype: str = "auto"  # auto: float64 against Lava, float32 otherwise
    device: str = "cpu"  # device of the reference executor
    worst: int = 5  # most-diverging samples to locate
    batch_size: int = 32  # samples per runner call
    strict: bool = False  # INCONCLUSIVE counts as failing
    progress: bool = False  # a progress bar on stderr
    trace: str | None = None  # "nir" or "npz": write each compared run as a trace in trace_dir, batch by batch
    trace_dir: str | None = None  # the traces' folder (``deploy parity``: OUT/traces)
    trace_voltages: bool = False  # the traces hold membrane voltages too, where a target has record_voltages

    def __post_init__(self) -> None:
        if self.trace not in (None, *TRACE_FORMATS):
            raise UserError(f"trace={self.trace!r}: choose {' or '.join(TRACE_FORMATS)}")
        if self.trace and not self.trace_dir:
            raise UserError("trace= needs trace_dir=, the folder the traces are written to")
        if self.trace_voltages and not self.trace:
            raise UserError("voltages are recorded into traces: --trace-voltages (trace_voltages=) needs --trace "
                            "(trace=)")


@dataclass(frozen=True)
class Comparison:
    """One entry of the report: ``target``'s results against ``baseline``'s on the first ``limit`` samples."""

    target: str
    baseline: str  # "reference:<dtype>" or another target's name
    role: str  # "parity", "deployment exactness" or "quantization loss"
    limit: int | None = None  # None: every sample
    added: str | None = None  # why it is compared when the user did not name it; None when named

    @property
    def exact(self) -> bool:
        return self.role == "deployment exactness"


def emulated_targets() -> list[str]:
    """The named targets judged on a subset against a bit-exact emulator (the slow ones: simulators)."""
    return [n for n, s in TARGETS.items() if s.emulator]


def reference_dtype(target: str, choice: str) -> str:
    """The reference's dtype for a target: its spec's (float64 against Lava, whose float simulation is float64)."""
    if choice != "auto":
        return choice
    return spec(target).reference_dtype


def emulator_of(target: str) -> str | None:
    """The baseline a slow target with a bit-exact emulator is judged against (``reference:<dtype>`` or a name)."""
    s = spec(target)
    if s.emulator == REFERENCE:
        return f"{REFERENCE}:{s.reference_dtype}"
    return s.emulator


def plan_comparisons(names: list[str], settings: ParitySettings, added: str | None = None,
                     stand_ins: Mapping[str, str] | None = None) -> dict[str, Comparison]:
    """The report's entries for the named targets, split in two for fixed-point targets with an emulator.

    A target with an emulator (a slow one) runs on at most ``limit`` samples (and ``exactness_samples`` when
    judged against the emulator); everything else runs the whole split. ``added``: why ``names`` are compared
    when the user did not name them (the default targets); an emulator brought in by its target says so.
    ``stand_ins``: per emulator, the named trace used in its place (:func:`stand_ins`).
    """
    stand_ins = stand_ins or {}
    out: dict[str, Comparison] = {}
    for name in names:
        emulator = emulator_of(name)
        if emulator and settings.exactness_samples > 0:
            subset = min(settings.exactness_samples, settings.limit or settings.exactness_samples)
            run = stand_ins.get(emulator, emulator)  # the emulator's run: its own, or a trace of it
            out[name] = Comparison(name, run, "deployment exactness", subset, added)
            if not emulator.startswith("reference:"):
                why = added if run in names else f"the bit-exact emulator of {name}, its quantization check"
                dtype = reference_dtype(emulator, settings.reference_dtype)
                out[run] = Comparison(run, f"reference:{dtype}", "quantization loss", None,
                                      out[run].added if run in out else why)
        elif name not in out:
            out[name] = Comparison(name, f"reference:{reference_dtype(name, settings.reference_dtype)}", "parity",
                                   settings.limit if emulator else None, added)
    return out


def stand_ins(names: Sequence[str], values: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """The named recorded runs that stand in for an emulator: ``{emulator: trace name}``, and per trace of an
    emulator that cannot, why (its notes).

    A slow target's emulator that the user did not name runs only as that target's baseline (and its quantization
    check); a trace of the emulator recorded with the options the emulator would run with now (``values``), on
    every key both the slow target and the emulator declare but ``record_*`` (the plan's options), is that run,
    so it is used instead. One recorded with other options is compared on its own and the emulator runs.
    """
    from neuromoco.deploy.targets import options_class, with_options

    found: dict[str, str] = {}
    notes: dict[str, str] = {}
    for trace in names:
        recorded = spec(trace).recorded
        if recorded is None:
            continue
        producer, options = recorded
        for slow in names:
            if emulator_of(slow) != producer or producer in names or producer in found:
                continue
            now = with_options(producer, options_class(producer).parse(TARGETS[producer].preset, target=producer),
                               dict(values.get(producer, {}))).as_dict()
            shared = sorted(k for k in set(options_class(slow).fields()) & set(now) if not k.startswith("record_"))
            differ = [f"{k}={options.get(k)!r} (now {now[k]!r})" for k in shared if options.get(k) != now[k]]
            if differ:
                notes[trace] = (f"not used as {slow}'s emulator {producer}: recorded with {', '.join(differ)}; "
                                f"{producer} runs instead")
            else:
                found[producer] = trace
    return found, notes


@dataclass
class Selection:
    """What a parity job compares, checked before any work: targets, their option values, the tolerances."""

    names: list[str]
    values: dict[str, dict[str, Any]]
    tolerances: Tolerances
    added: str | None = None

    @staticmethod
    def involved(names: Sequence[str]) -> list[str]:
        """``names`` checked (known, at least one), then the emulators they bring in: every target that runs."""
        if not names:
            raise UserError("--targets names no target")
        unknown = [n for n in names if n not in TARGETS]
        if unknown:
            raise UserError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
        emulators = [emulator_of(n) for n in names]
        return list(dict.fromkeys([*names, *(e for e in emulators if e and not e.startswith("reference:"))]))

    @classmethod
    def make(cls, names: Sequence[str], values: Mapping[str, Mapping[str, Any]], tolerances: Tolerances,
             exactness_samples: int = 64, added: str | None = None) -> Selection:
        """Check the names and every target's options (emulators brought in included; spike records on)."""
        from neuromoco.deploy.targets import options_class, with_options

        names = list(names)
        every = cls.involved(names)
        if exactness_samples < 0:
            raise UserError("--exactness-samples must be >= 0")
        full = {n: {**values.get(n, {}), "record_spikes": "true"} for n in every}
        for n in every:
            try:
                opts_cls = options_class(n)
            except ImportError:  # a target that cannot even be imported is reported when it is built
                continue
            with_options(n, opts_cls.parse(TARGETS[n].preset, target=n), full[n])
        return cls(names, full, tolerances, added)

    def run(self, model: Model, frames: Any, labels: Any, settings: ParitySettings, context: Any,
            echo: Callable[[str], None] | None = None, *, dataset: str = "", split: str = "") -> ParityReport:
        """Build every runner, run the samples through them, judge each comparison (``dataset`` and ``split``
        name the samples in the report and the traces)."""
        from neuromoco.deploy.api.options import with_card_options
        from neuromoco.deploy.graph import spiking_nodes

        graph = model.require_graph("parity")
        values = with_card_options(model.card, self.values, echo)
        emulated, notes = stand_ins(self.names, values)
        comparisons = plan_comparisons(self.names, settings, self.added, emulated)
        layers = spiking_nodes(graph)
        entries, runners, options = _build(comparisons, values, model, context, settings.device,
                                           record_voltages=settings.trace_voltages)
        for name, note in notes.items():
            entries[name]["note"] = note
        traces = _TraceFiles(settings, model, options, dataset, split) if settings.trace else None
        try:
            accs, seconds = _compare(comparisons, runners, entries, frames, labels, layers, settings, traces)
        except BaseException:
            if traces is not None:
                traces.abort()
            raise
        extras = _judge(comparisons, accs, seconds, entries, self.tolerances)
        statuses = [e["status"] for e in entries.values()]
        overall = ("FAIL" if "fail" in statuses or "error" in statuses
                   else "INCONCLUSIVE" if "inconclusive" in statuses else "OK")
        data = {
            "model": str(model.path), "dataset": dataset, "split": split, "samples": len(frames),
            "limit": settings.limit, "time_steps": int(model.card.time_steps), "layers": layers,
            "tolerances": self.tolerances.as_dict(), "targets": entries, "verdict": overall,
            "strict": bool(settings.strict),
            "passed": overall == "OK" or (overall == "INCONCLUSIVE" and not settings.strict),
        }
        if traces is not None:
            data["traces"] = written = traces.close()
            for name, c in comparisons.items():
                if c.target in written:
                    entries[name]["trace"] = written[c.target]
        return ParityReport(data, extras)


@dataclass
class ParityReport:
    """The outcome of a parity job: ``data`` is the content of ``parity.json``; ``extras`` the per-target plot
    data (firing rates, a raster) that ``report.md``'s pictures need."""

    data: dict[str, Any]
    extras: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        """Whether no target failed (an INCONCLUSIVE one passes unless the job was strict)."""
        return bool(self.data["passed"])

    @property
    def verdict(self) -> str:
        """The overall verdict: OK, INCONCLUSIVE or FAIL."""
        return str(self.data["verdict"])

    @property
    def verdicts(self) -> dict[str, str]:
        """Each comparison's verdict by target: OK, FAIL, INCONCLUSIVE or ERROR."""
        return {name: e["verdict"] for name, e in self.data["targets"].items()}

    def by_status(self, status: str) -> list[str]:
        """The targets whose entry has ``status`` (``ok``, ``fail``, ``inconclusive``, ``error``)."""
        return [n for n, e in self.data["targets"].items() if e["status"] == status]

    def table(self) -> str:
        """One line per comparison (and its violations, notes), the text ``deploy parity`` prints."""
        return "\n".join(_entry_lines(self.data["targets"]))

    def to_json(self) -> str:
        """The ``parity.json`` text."""
        from neuromoco.io import _json_default

        return json.dumps(self.data, indent=2, sort_keys=False, default=_json_default) + "\n"

    def write(self, out_dir: str | Path) -> Path:
        """Write ``parity.json``, ``report.md`` and its pictures to ``out_dir``; returns ``report.md``'s path."""
        from neuromoco.deploy.report import write_parity_report
        from neuromoco.io import atomic_write_json

        out = Path(out_dir)
        atomic_write_json(out / "parity.json", self.data)
        return write_parity_report(out, self.data, self.extras)

    def plot(self, target: str | None = None) -> Any:
        """A matplotlib figure of spikes per layer, reference against ``target`` (default: the first judged)."""
        from neuromoco.deploy.report import counts_figure

        judged = {n: e for n, e in self.data["targets"].items() if "metrics" in e}
        if not judged:
            raise UserError("no target was judged (every one failed to build or run): nothing to plot")
        name = target or next(iter(judged))
        if name not in judged:
            raise UserError(f"no judged comparison for {name!r}; judged: {', '.join(judged)}")
        return counts_figure(name, judged[name]["metrics"]["layers"])

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v}" for n, v in self.verdicts.items())
        return f"ParityReport({self.verdict}, {self.data['samples']} samples: {shown})"


def parity(model: Model | str | Path, frames: Any = None, targets: Sequence[str] | str | None = None, *,
           labels: Any = None, options: Mapping[str, Any] | None = None, split: str = "test", root: str | None = None,
           limit: int | None = None, exactness_samples: int = 64, reference_dtype: str = "auto",
           device: str = "cpu", worst: int = 5, batch_size: int = 32, strict: bool = False,
           calibration: Any = None, progress: bool = False, exact_targets: Sequence[str] | None = None,
           trace: str | None = None, trace_dir: str | Path | None = None, trace_voltages: bool = False,
           **tolerances: Any) -> ParityReport:
    """Compare ``targets`` with the reference executor on ``frames`` and judge each against tolerances.

    ``targets``: names (a list or comma-separated; default the registry's parity defaults, labelled ``added``).
    ``frames``: an array ``[N, T, *input_shape]``, a frames ``.npz`` or a dataset name (default: the card's);
    the reference, the emulators and the targets without one run every sample, a slow target at most ``limit``
    (and ``exactness_samples`` against its bit-exact emulator). ``options``: per target, its typed options or a
    dict (``{"onnx": {"quantize": "int8"}}``). ``tolerances``: ``min_agreement``, ``max_count_rel_diff``,
    ``min_rate_cosine``, ``max_accuracy_drop`` (unknown names are an error); ``exact_targets`` are held to
    equality. ``trace`` (``"nir"`` or ``"npz"``): each run (every target, emulator and reference dtype) is also
    written as a trace in ``trace_dir``, batch by batch (``report.data["traces"]``: the files), with membrane
    voltages where a target has ``record_voltages`` if ``trace_voltages``. Same job as ``deploy parity``;
    ``report.write(dir)`` writes its files.
    """
    from neuromoco.deploy.api.context import run_context
    from neuromoco.deploy.api.options import option_values
    from neuromoco.deploy.api.samples import frames_label, resolve_samples

    added = None if targets is not None else "the default targets"
    names = parse_names(targets if targets is not None else ",".join(parity_defaults()))
    known = {f for f in Tolerances.__dataclass_fields__ if f != "exact"}
    unknown = sorted(set(tolerances) - known)
    if unknown:
        raise UserError(f"unknown tolerance(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    tol = Tolerances(**tolerances) if exact_targets is None else Tolerances(**tolerances, exact=tuple(exact_targets))
    given = dict(options or {})
    stray = [n for n in given if n not in Selection.involved(names)]
    if stray:
        raise UserError(f"options for {', '.join(stray)}, which this parity job does not run ({', '.join(names)})")
    values = {n: option_values(n, v) for n, v in given.items()}
    selection = Selection.make(names, values, tol, exactness_samples, added)
    settings = ParitySettings(limit, exactness_samples, reference_dtype, device, worst, batch_size, strict, progress,
                              trace, None if trace_dir is None else str(trace_dir), trace_voltages)
    model = as_model(model)  # after the names and options are checked: a typo fails before any work
    data, labs = resolve_samples(model.card, frames, labels, split=split, root=root)
    return selection.run(model, data, labs, settings, run_context(frames, root, calibration, progress),
                         dataset=frames_label(model.card, frames), split=split)


# ------------------------------------------------------------------------------------------ the steps

def _build(comparisons: dict[str, Comparison], values: dict[str, dict[str, Any]], model: Model, context: Any,
           device: str, record_voltages: bool = False
           ) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, dict[str, Any]]]:
    """One entry per comparison, one runner per target or reference dtype they need, and each runner's options.

    A target that cannot build makes an ``error`` entry of every comparison that needs it. ``record_voltages``:
    the runners whose target declares that option record voltages too (unless its values say otherwise).
    """
    from neuromoco.deploy.api.execution import build_runner
    from neuromoco.deploy.api.options import declared, target_options

    entries: dict[str, dict[str, Any]] = {}
    runners: dict[str, Any] = {}
    options_of: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for name, c in comparisons.items():
        for who in (c.target, c.baseline):
            if who in runners or who in failures:
                continue
            try:
                target_name, given = ((REFERENCE, {"dtype": who.split(":", 1)[1], "device": device,
                                                   "record_spikes": "true"}) if who.startswith("reference:")
                                      else (who, values.get(who, {"record_spikes": "true"})))
                if record_voltages and "record_voltages" in declared(target_name):
                    given = {"record_voltages": "true", **given}
                target, options = target_options(target_name, given)
                runners[who] = build_runner(target, options, context, model)
                options_of[who] = options.as_dict()
            except Exception as err:  # noqa: BLE001 - a target that cannot build is reported, not a traceback
                failures[who] = f"could not build: {describe_error(err)}"
        entry: dict[str, Any] = {
            "status": "ok", "verdict": "OK", "role": c.role, "added": c.added,
            "compared_with": _baseline_label(c.baseline),
            "reference_dtype": c.baseline.split(":", 1)[1] if c.baseline.startswith("reference:") else None,
            "sample_limit": c.limit, "options": options_of.get(c.target), "violations": []}
        broken = [failures[w] for w in (c.target, c.baseline) if w in failures]
        if broken:
            entry.update(status="error", verdict="ERROR", error=broken[0] if c.target in failures else
                         f"its baseline {c.baseline} {failures[c.baseline]}")
        entries[name] = entry
    return entries, runners, options_of


class _TraceFiles:
    """Each run of a parity job as a trace, ``trace_dir/<run>.<format>``, appended batch by batch (only the batch
    at hand is in memory) and completed at :meth:`close`; a run that fails leaves no file."""

    def __init__(self, settings: ParitySettings, model: Model, options: dict[str, dict[str, Any]], dataset: str,
                 split: str) -> None:
        from neuromoco.deploy.graph import structure

        assert settings.trace and settings.trace_dir
        self.folder, self.format = Path(settings.trace_dir), settings.trace
        self.options = options
        self.about: dict[str, Any] = dict(model=str(model.path), dataset=dataset, split=split, dt=model.card.dt,
                                          output_node=structure(model.require_graph("parity")).output)
        self.writers: dict[str, Any] = {}

    def path(self, who: str) -> Path:
        """The file of run ``who`` (a target's name, or ``reference:<dtype>``), in characters any file system takes."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", who).strip("-.")[-100:]
        return self.folder / f"{stem}.{self.format}"

    def add(self, who: str, result: Any, labels: Any, keys: list[str]) -> None:
        from neuromoco.deploy.traces import TraceInfo, TraceWriter

        if who not in self.writers:
            target = REFERENCE if who.startswith("reference:") else who
            info = TraceInfo(target=target, options=self.options.get(who, {}), **self.about)
            self.writers[who] = TraceWriter(self.path(who), info)
        self.writers[who].append(result, labels, keys)

    def drop(self, who: str) -> None:
        if who in self.writers:
            self.writers.pop(who).abort()

    def abort(self) -> None:
        """Drop every trace (the job did not finish)."""
        for who in list(self.writers):
            self.drop(who)

    def close(self) -> dict[str, str]:
        """Complete every trace; the files by run."""
        written: dict[str, str] = {}
        try:
            for who, w in list(self.writers.items()):
                written[who] = str(w.close())
                del self.writers[who]
        finally:
            self.abort()
        return written


def _baseline_label(baseline: str) -> str:
    """How an entry names its baseline: ``reference, float64``, a target, or ``reference-fixed (trace:FILE)`` for a
    recorded run standing in for its producer."""
    if baseline.startswith("reference:"):
        return baseline.replace("reference:", "reference, ")
    recorded = spec(baseline).recorded
    return f"{recorded[0]} ({baseline})" if recorded else baseline


def describe_error(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _compare(comparisons: dict[str, Comparison], runners: dict[str, Any], entries: dict[str, dict[str, Any]],
             frames: Any, labels: Any, layers: list[str], settings: ParitySettings,
             traces: _TraceFiles | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """Every batch through the runners its comparisons still need, accumulated (and appended to each run's trace);
    a failing runner is dropped (and its trace)."""
    from neuromoco.deploy.api.samples import batches, progress_bar
    from neuromoco.deploy.traces import sample_key

    live = {n: c for n, c in comparisons.items() if entries[n]["status"] == "ok"}
    accs = {n: ParityAccumulator(layers, settings.worst) for n in live}
    seconds = {n: 0.0 for n in live}
    seen = 0
    bar = progress_bar(len(frames), "parity", settings.progress,
                       [w for c in comparisons.values() for w in (c.target, c.baseline)])
    for fr, lab in batches(frames, labels, settings.batch_size):
        size = fr.shape[1]
        wanted = {n: c for n, c in live.items() if c.limit is None or seen < c.limit}
        keep = {n: (c.limit - seen if c.limit is not None else size) for n, c in wanted.items()}
        results: dict[str, Any] = {}
        times: dict[str, float] = {}
        keys = [sample_key(fr[:, b]) for b in range(size)] if traces is not None else []
        for who in dict.fromkeys([w for c in wanted.values() for w in (c.baseline, c.target)]):
            if who not in runners:
                continue
            n_take = max(keep[n] for n, c in wanted.items() if who in (c.baseline, c.target))
            try:
                t0 = time.perf_counter()
                results[who] = runners[who].run(fr[:, :n_take] if n_take < fr.shape[1] else fr)
                times[who] = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001 - a failing target is reported, not a traceback
                del runners[who]
                if traces is not None:
                    traces.drop(who)
                for n, c in list(live.items()):
                    if who in (c.target, c.baseline):
                        entries[n].update(status="error", verdict="ERROR",
                                          error=f"{who} failed while running: {describe_error(err)}")
                        del live[n]
                continue
            if traces is not None:
                take = min(n_take, size)
                traces.add(who, results[who], None if lab is None else lab[:take], keys[:take])
        for n, c in wanted.items():
            if n not in live or c.target not in results or c.baseline not in results:
                continue
            k = min(keep[n], size)
            accs[n].update(results[c.baseline].head(k), results[c.target].head(k), None if lab is None else lab[:k])
            seconds[n] += times.get(c.target, 0.0)
        seen += size
        if bar is not None:
            bar.update(size)
    if bar is not None:
        bar.close()
    return accs, seconds


def _judge(comparisons: dict[str, Comparison], accs: dict[str, Any], seconds: dict[str, float],
           entries: dict[str, dict[str, Any]], tol: Tolerances) -> dict[str, dict[str, Any]]:
    """Metrics and tolerance verdicts into each entry; the per-target plot data for the report."""
    extras: dict[str, dict[str, Any]] = {}
    for name, acc in accs.items():
        if entries[name]["status"] == "error" or acc.n == 0:
            continue
        metrics = acc.result()
        metrics["target_seconds"] = seconds[name]
        limits = tol.equality() if comparisons[name].exact else tol.for_target(name)
        status = verdict(metrics, limits)
        entries[name].update(metrics=metrics, tolerances=limits.as_dict(), violations=check(metrics, limits),
                             sample_size_note=sample_size_note(metrics, limits), status=status,
                             verdict=status.upper(), held_to_equality=limits.min_agreement >= 1.0)
        extras[name] = {"rates": acc.rates(),
                        "raster": None if acc.raster.index < 0 else (acc.raster.index, acc.raster.reference,
                                                                      acc.raster.target)}
    return extras


def _entry_lines(entries: dict[str, dict[str, Any]]) -> list[str]:
    """The printed summary of each entry: verdict, samples, accuracy, agreement, counts, cosine; violations."""
    out: list[str] = []
    for name, e in entries.items():
        added = f"(added: {e['added']}) " if e.get("added") else ""
        if e["status"] == "error":
            out.append(f"{name}: ERROR {added}{e['error']}")
            out += [f"  note: {e['note']}"] if e.get("note") else []
            continue
        m = e["metrics"]
        role = (f"[{m['samples']} samples] " if e["role"] == "parity"
                else f"[{e['role']} vs {e['compared_with']}, {m['samples']} samples] ")
        acc_text = (f"accuracy {m['accuracy_target']:.4f} (reference {m['accuracy_reference']:.4f}), "
                    if "accuracy_target" in m else "")
        lo, hi = m["agreement_ci95"]
        out.append(f"{name}: {e['verdict']} {added}{role}{acc_text}agreement {m['agreement']:.4f} "
                   f"(95% {lo:.4f}-{hi:.4f}), max layer count diff {m['max_count_rel_diff']:.4f}, "
                   f"rate cosine {m['rate_cosine']:.6f}")
        what = "too few samples to decide" if e["status"] == "inconclusive" else "outside tolerance"
        out += [f"  {what}: {v}" for v in e["violations"]]
        if e.get("sample_size_note"):
            out.append(f"  note: {e['sample_size_note']}")
        if e.get("note"):
            out.append(f"  note: {e['note']}")
        out += [f"  DEGENERATE: {d}" for d in m.get("degenerate", [])]
    return out
