"""Parity of a target against the reference executor: the figures ``deploy parity`` reports and checks.

Everything here works on :class:`neuromoco.deploy.result.RunResult` pairs over the same samples, batch by batch, so
the per-neuron spike records of a large run never have to be held in memory at once:

* **accuracy** of each side against the labels and **prediction agreement** (fraction of samples whose
  predicted class is the same);
* **per-layer total spike counts** (summed over time steps and samples) and their **relative difference**
  ``|target - reference| / max(reference, 1)``;
* **cosine similarity of per-neuron firing rates** (spikes per neuron per step, over all samples), the
  measure the NIR paper used across platforms, per layer and over all layers' neurons concatenated. It
  needs per-neuron records (``RunResult.spikes``); when either side has only per-layer counts, the cosine is
  taken over the per-layer rate vector instead and ``rate_basis`` says ``"per-layer"``;
* **first divergence**: for the samples with the most mismatching spikes, the first time step at which any
  layer differs and the earliest layer (in graph order) that differs at that step.

:class:`Tolerances` holds the limits; :func:`check` lists the ones a target breaks and :func:`verdict` says what
that means: ``ok``, ``fail``, or ``inconclusive`` when the one limit broken is the agreement tolerance, the samples
are too few for that tolerance (:func:`samples_for_agreement`) and the agreement's 95 % interval still reaches it:
such a run can show neither that the target meets the tolerance nor that it misses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neuromoco.deploy.result import RunResult
from neuromoco.deploy.targets import exact_targets


@dataclass
class Tolerances:
    """Limits a target must stay within. ``exact`` targets are held to equality instead (see :meth:`for_target`).

    ``exact`` defaults to the targets whose :class:`~neuromoco.deploy.targets.TargetSpec` says ``exact``.
    """

    min_agreement: float = 0.99  # prediction agreement with the reference
    max_count_rel_diff: float = 0.02  # per layer, |target - ref| / max(ref, 1) of total spike counts
    min_rate_cosine: float = 0.99  # cosine of per-neuron firing rates, all layers together
    max_accuracy_drop: float | None = None  # reference accuracy minus target accuracy (None: not checked)
    exact: tuple[str, ...] = field(default_factory=exact_targets)

    def for_target(self, name: str) -> Tolerances:
        """The limits for ``name``: equality for an exact target, these limits otherwise."""
        return self.equality() if name in self.exact else self

    def equality(self) -> Tolerances:
        """The limits of a comparison that must be exact (an exact target; a target against its emulator)."""
        return Tolerances(min_agreement=1.0, max_count_rel_diff=0.0, min_rate_cosine=1.0 - 1e-9,
                          max_accuracy_drop=0.0, exact=self.exact)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exact"] = list(self.exact)
        return d


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors; 1.0 when both are all zero, 0.0 when only one is."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cosine of vectors of different sizes {a.size} and {b.size}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


def relative_difference(target: float, reference: float) -> float:
    """``|target - reference| / max(|reference|, 1)``: 0 for equal counts, never a division by zero."""
    return float(abs(target - reference) / max(abs(reference), 1.0))


@dataclass
class _Worst:
    """The sample with the most spike mismatches seen so far, with its records on both sides (for the raster)."""

    index: int = -1
    mismatches: int = -1
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    target: dict[str, np.ndarray] = field(default_factory=dict)


class ParityAccumulator:
    """Collects the parity figures of one target over consecutive batches.

    ``layers``: the spiking nodes in graph (topological) order; it decides which layer is "first" to
    diverge at a time step. Defaults to the reference's ``spike_counts`` order on the first batch.
    ``worst_k``: how many of the most-diverging samples get a first-divergence entry.
    """

    def __init__(self, layers: Sequence[str] | None = None, worst_k: int = 5) -> None:
        self.layers = list(layers) if layers is not None else None
        self.worst_k = worst_k
        self.n = 0
        self.steps = 0
        self.ref_pred: list[np.ndarray] = []
        self.tgt_pred: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.ref_counts: dict[str, int] = {}
        self.tgt_counts: dict[str, int] = {}
        self.ref_neuron: dict[str, np.ndarray] = {}  # per-neuron spike totals
        self.tgt_neuron: dict[str, np.ndarray] = {}
        self.per_neuron = True  # both sides recorded every layer's spikes so far
        self.max_output_diff = 0.0
        # per sample: [T, L] mismatch counts (spikes if recorded, else |count difference|), kept compactly
        self.sample_mismatch: list[np.ndarray] = []
        self.mismatch_basis = "spikes"
        self.raster = _Worst()
        #: per side, the first sample's output and whether every sample so far gave exactly it (a constant or
        #: silent output layer: its predictions say nothing, whatever the agreement)
        self.first_output: dict[str, np.ndarray] = {}
        self.constant_output: dict[str, bool] = {"reference": True, "target": True}

    # ------------------------------------------------------------------ accumulation
    def update(self, ref: RunResult, tgt: RunResult, labels: np.ndarray | None = None) -> None:
        """Add one batch (the same samples on both sides)."""
        if ref.output.shape[:2] != tgt.output.shape[:2]:
            raise ValueError(f"reference output {ref.output.shape} and target output {tgt.output.shape} "
                             "cover different time steps or samples")
        T, B = ref.output.shape[:2]
        if self.layers is None:
            self.layers = list(ref.spike_counts)
        missing = [k for k in self.layers if k not in tgt.spike_counts]
        if missing:
            raise ValueError(f"target reports no spike counts for layer(s) {', '.join(missing)}")
        self.steps = T
        for side, res in (("reference", ref), ("target", tgt)):
            self._track_constant(side, np.asarray(res.output))
        self.ref_pred.append(ref.predictions)
        self.tgt_pred.append(tgt.predictions)
        if labels is not None:
            self.labels.append(np.asarray(labels).ravel()[:B])
        if ref.output.shape == tgt.output.shape and ref.output.size:
            self.max_output_diff = max(self.max_output_diff,
                                       float(np.max(np.abs(ref.output.astype(np.float64) - tgt.output))))
        else:
            self.max_output_diff = float("inf")
        have_spikes = all(k in ref.spikes and k in tgt.spikes for k in self.layers)
        self.per_neuron = self.per_neuron and have_spikes
        if not have_spikes:
            self.mismatch_basis = "per-layer counts"
        mism = np.zeros((B, T, len(self.layers)), dtype=np.int64)
        for j, k in enumerate(self.layers):
            mism[:, :, j] = self._add_layer(k, ref, tgt, have_spikes, T, B).T
        self.sample_mismatch.extend(mism)
        if have_spikes:
            self._keep_worst(mism, ref, tgt)
        self.n += B

    def _track_constant(self, side: str, output: np.ndarray) -> None:
        """Whether ``side``'s outputs ``[T, B, ...]`` are still the same for every sample."""
        if not output.size or not self.constant_output[side]:
            return
        first = self.first_output.setdefault(side, output[:, 0].copy())
        self.constant_output[side] = bool(np.all(output == first[:, None]))

    def degenerate(self) -> list[str]:
        """One sentence per side whose output was the same for every sample (more than one compared)."""
        if self.n < 2:
            return []
        out = []
        for side in ("reference", "target"):
            if self.constant_output[side] and side in self.first_output:
                what = ("zero (a silent output layer)" if not np.any(self.first_output[side])
                        else "the same")
                out.append(f"the {side}'s output is {what} for every one of the {self.n} samples: it predicts one "
                           "class whatever the input, so agreement says nothing about the deployment")
        return out

    def _add_layer(self, k: str, ref: RunResult, tgt: RunResult, have_spikes: bool, T: int, B: int) -> np.ndarray:
        """Add layer ``k``'s totals; return its mismatches ``[T, B]`` (spikes if recorded, else |count diff|)."""
        rc = np.asarray(ref.spike_counts[k], dtype=np.int64)
        tc = np.asarray(tgt.spike_counts[k], dtype=np.int64)
        self.ref_counts[k] = self.ref_counts.get(k, 0) + int(rc.sum())
        self.tgt_counts[k] = self.tgt_counts.get(k, 0) + int(tc.sum())
        if not have_spikes:
            return np.abs(rc - tc)
        rs, ts = ref.spikes[k], tgt.spikes[k]
        if rs.shape != ts.shape:
            raise ValueError(f"layer {k}: reference spikes {rs.shape} vs target spikes {ts.shape}")
        self.ref_neuron[k] = self.ref_neuron.get(k, 0) + rs.sum(axis=(0, 1), dtype=np.int64)
        self.tgt_neuron[k] = self.tgt_neuron.get(k, 0) + ts.sum(axis=(0, 1), dtype=np.int64)
        return (rs != ts).reshape(T, B, -1).sum(axis=-1)

    def _keep_worst(self, mism: np.ndarray, ref: RunResult, tgt: RunResult) -> None:
        """Keep the records of this batch's most-diverging sample if it beats the one kept (for the raster)."""
        totals = mism.sum(axis=(1, 2))
        b = int(totals.argmax())
        layers = self.layers or []
        if totals[b] > self.raster.mismatches:
            self.raster = _Worst(self.n + b, int(totals[b]),
                                 {k: np.array(ref.spikes[k][:, b]) for k in layers},
                                 {k: np.array(tgt.spikes[k][:, b]) for k in layers})

    # ------------------------------------------------------------------ results
    def result(self) -> dict[str, Any]:
        """The figures as a JSON-able dict (see module docstring)."""
        if self.n == 0:
            raise ValueError("no samples compared")
        layers = self.layers or []
        ref_pred, tgt_pred = np.concatenate(self.ref_pred), np.concatenate(self.tgt_pred)
        out: dict[str, Any] = {"samples": self.n, "time_steps": self.steps}
        if self.labels:
            labels = np.concatenate(self.labels)
            out["accuracy_reference"] = float(np.mean(ref_pred == labels))
            out["accuracy_target"] = float(np.mean(tgt_pred == labels))
        agree = int(np.sum(ref_pred == tgt_pred))
        out["agreement"] = agree / self.n
        out["agreement_ci95"] = list(wilson_interval(agree, self.n))
        out["max_output_abs_diff"] = self.max_output_diff
        per_layer = {}
        for k in layers:
            r, t = self.ref_counts.get(k, 0), self.tgt_counts.get(k, 0)
            entry = {"reference_spikes": r, "target_spikes": t, "rel_diff": relative_difference(t, r)}
            if self.per_neuron:
                entry["rate_cosine"] = cosine(self.ref_neuron[k], self.tgt_neuron[k])
                entry["neurons"] = int(np.size(self.ref_neuron[k]))
            per_layer[k] = entry
        out["layers"] = per_layer
        out["max_count_rel_diff"] = max((e["rel_diff"] for e in per_layer.values()), default=0.0)
        scale = 1.0 / max(self.n * self.steps, 1)
        if self.per_neuron and layers:
            out["rate_basis"] = "per-neuron"
            ref_rates = np.concatenate([self.ref_neuron[k].ravel() for k in layers]) * scale
            tgt_rates = np.concatenate([self.tgt_neuron[k].ravel() for k in layers]) * scale
        else:
            out["rate_basis"] = "per-layer"
            ref_rates = np.array([self.ref_counts.get(k, 0) for k in layers], dtype=np.float64) * scale
            tgt_rates = np.array([self.tgt_counts.get(k, 0) for k in layers], dtype=np.float64) * scale
        out["rate_cosine"] = cosine(ref_rates, tgt_rates)
        mism = np.stack(self.sample_mismatch) if self.sample_mismatch else np.zeros((0, 0, 0))
        out["mismatch_basis"] = self.mismatch_basis
        out["mismatched_spikes"] = int(mism.sum())
        out["diverging_samples"] = int((mism.sum(axis=(1, 2)) > 0).sum()) if mism.size else 0
        out["worst_samples"] = first_divergences(mism, layers, self.worst_k)
        out["degenerate"] = self.degenerate()
        return out

    def rates(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-neuron firing rates (spikes per step per sample) of all layers, reference and target."""
        if not (self.per_neuron and self.layers):
            return None
        scale = 1.0 / max(self.n * self.steps, 1)
        return (np.concatenate([self.ref_neuron[k].ravel() for k in self.layers]) * scale,
                np.concatenate([self.tgt_neuron[k].ravel() for k in self.layers]) * scale)


def first_divergences(mismatch: np.ndarray, layers: Sequence[str], k: int) -> list[dict[str, Any]]:
    """For the ``k`` samples with most mismatches (``mismatch[N, T, L]``), where their spikes first differ.

    Samples without any mismatch are left out. The first step is the earliest ``t`` with a mismatch in any
    layer; the layer is the earliest in ``layers`` order that mismatches at that step.
    """
    if mismatch.size == 0:
        return []
    totals = mismatch.sum(axis=(1, 2))
    order = np.argsort(-totals, kind="stable")[:k]
    rows = []
    for i in order:
        if totals[i] == 0:
            break
        per_step = mismatch[i].sum(axis=1)
        t = int(np.flatnonzero(per_step)[0])
        j = int(np.flatnonzero(mismatch[i, t])[0])
        rows.append({"sample": int(i), "mismatches": int(totals[i]), "first_step": t, "first_layer": layers[j],
                     "mismatches_at_first_step": int(per_step[t])})
    return rows


def compare(reference: RunResult, target: RunResult, labels: np.ndarray | None = None,
            layers: Sequence[str] | None = None, worst_k: int = 5) -> dict[str, Any]:
    """All parity figures of ``target`` against ``reference`` over one set of samples."""
    acc = ParityAccumulator(layers, worst_k)
    acc.update(reference, target, labels)
    return acc.result()


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (95 % for the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n successes, which is
    where parity results live (agreement 1.0 on a few hundred samples).
    """
    if n <= 0:
        return 0.0, 1.0
    if successes in (0, n):  # closed forms (the general one rounds 1.0 to 0.9999999999999999)
        edge = z * z / (n + z * z)
        return (0.0, edge) if successes == 0 else (1.0 - edge, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def samples_for_agreement(min_agreement: float, z: float = 1.959964) -> int:
    """The fewest samples for which full agreement puts the Wilson interval's lower end at ``min_agreement``.

    Below it, even a target that agrees on every sample cannot show, at 95 %, that it meets the tolerance:
    n / (n + z^2) >= a  <=>  n >= a z^2 / (1 - a).
    """
    if min_agreement >= 1.0:
        return 0  # an exact target: equality is checked, not estimated
    return int(np.ceil(min_agreement * z * z / (1.0 - min_agreement)))


def sample_size_note(metrics: dict[str, Any], tol: Tolerances) -> str | None:
    """A sentence when ``metrics`` rest on too few samples for ``tol.min_agreement`` to mean anything."""
    need = samples_for_agreement(tol.min_agreement)
    n = metrics["samples"]
    if not need or n >= need:
        return None
    lo, hi = metrics.get("agreement_ci95") or wilson_interval(round(metrics["agreement"] * n), n)
    return (f"{n} samples are too few for the agreement tolerance {tol.min_agreement:g}: the 95 % interval of "
            f"the agreement is [{lo:.4f}, {hi:.4f}], and even full agreement needs {need} samples to put its "
            f"lower end at the tolerance (one flip is {1 / n:.2%} here)")


def violations(metrics: dict[str, Any], tol: Tolerances) -> list[tuple[str, str]]:
    """The tolerances ``metrics`` (from :func:`compare`) break as ``(gate, line)``: the gate is ``agreement``,
    ``spike_count``, ``rate_cosine`` or ``accuracy``, the line one readable sentence."""
    bad = []
    if metrics["agreement"] < tol.min_agreement:
        bad.append(("agreement", f"prediction agreement {metrics['agreement']:.4f} < {tol.min_agreement:g}"))
    for name, layer in metrics["layers"].items():
        if layer["rel_diff"] > tol.max_count_rel_diff:
            bad.append(("spike_count", f"layer {name}: spike count {layer['target_spikes']} vs reference "
                        f"{layer['reference_spikes']} (rel. diff {layer['rel_diff']:.4f} > "
                        f"{tol.max_count_rel_diff:g})"))
    if metrics["rate_cosine"] < tol.min_rate_cosine:
        bad.append(("rate_cosine", f"firing-rate cosine ({metrics['rate_basis']}) {metrics['rate_cosine']:.6f} < "
                    f"{tol.min_rate_cosine:g}"))
    if tol.max_accuracy_drop is not None and "accuracy_target" in metrics:
        drop = metrics["accuracy_reference"] - metrics["accuracy_target"]
        if drop > tol.max_accuracy_drop + 1e-12:
            bad.append(("accuracy", f"accuracy {metrics['accuracy_target']:.4f} is {drop:.4f} below the reference's "
                        f"{metrics['accuracy_reference']:.4f} (allowed {tol.max_accuracy_drop:g})"))
    return bad


def check(metrics: dict[str, Any], tol: Tolerances) -> list[str]:
    """The tolerances ``metrics`` (from :func:`compare`) break, each as one readable line; empty if none."""
    return [line for _, line in violations(metrics, tol)]


def agreement_undecided(metrics: dict[str, Any], tol: Tolerances) -> bool:
    """Whether the samples are too few to decide the agreement tolerance either way.

    True when they are fewer than :func:`samples_for_agreement` asks (the :func:`sample_size_note` case) and the
    agreement's 95 % interval still reaches the tolerance; an agreement whose whole interval lies below it is a
    clear miss however few the samples. Never for an exact comparison (equality needs no sample count).
    """
    need = samples_for_agreement(tol.min_agreement)
    n = metrics["samples"]
    if not need or n >= need:
        return False
    hi = (metrics.get("agreement_ci95") or wilson_interval(round(metrics["agreement"] * n), n))[1]
    return hi >= tol.min_agreement


#: the verdicts of one comparison, as ``parity.json``'s ``status`` spells them (``verdict``: upper case)
VERDICTS = ("ok", "inconclusive", "fail", "error")


def verdict(metrics: dict[str, Any], tol: Tolerances) -> str:
    """``ok`` within every tolerance; ``inconclusive`` when the agreement tolerance is the only one broken and the
    samples are too few to decide it (:func:`agreement_undecided`); ``fail`` otherwise."""
    gates = {gate for gate, _ in violations(metrics, tol)}
    if not gates:
        return "ok"
    if gates == {"agreement"} and agreement_undecided(metrics, tol):
        return "inconclusive"
    return "fail"


def parse_names(text: str | Iterable[str]) -> list[str]:
    """``"a,b , c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return [s.strip() for s in items if s and s.strip()]
