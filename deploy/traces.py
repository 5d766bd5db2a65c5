"""A recorded run (a *trace*) on disk: NIR's own graph data (``nir.data_ir``) or the project's ``.npz`` layout.

A trace holds what :class:`~neuromoco.deploy.result.RunResult` holds, per sample and time step, plus what a later
comparison needs to know about the run (:class:`TraceInfo`: the target that produced it and its options, the
model, dataset, split, dt, and per sample a key of its frames and its label). ``deploy run --trace nir|npz``
writes one; ``deploy parity --targets trace:FILE`` reads one back as one more target.

NIR graph data (``.nir``, ``.h5``, ``.hdf5``; read by ``nir.read_data``): per spiking node ``spikes`` as
``TimeGriddedData`` of bool ``[samples, steps, neurons]`` (neurons flattened in C order; ``dt`` from the model
card), ``v`` (float) where the run has membrane voltages, and on the graph's Output node ``output``
(float64 ``[samples, steps, n_out]``). What NIR has no place for lives in a ``neuromoco`` group beside NIR's
``nodes`` group, which ``nir.read_data`` ignores: an ``info`` attribute (JSON), ``labels`` and ``sample_keys``.
A trace written by another tool needs only the ``nodes`` part (``EventData`` spikes are put on the time grid).

Project ``.npz``: the keys :meth:`RunResult.save` writes (``output [T, N, n_out]``, ``predictions``,
``spike_counts/<node> [T, N]``, ``labels``) plus ``spikes/<node> [T, N, *shape]`` (uint8),
``voltages/<node>``, ``sample_keys`` and ``trace_info`` (JSON). A ``predictions.npz`` of ``deploy run`` reads
as a trace with per-layer counts only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.result import RunResult
from neuromoco.errors import UserError

#: file suffix -> trace format
SUFFIXES: dict[str, str] = {".nir": "nir", ".h5": "nir", ".hdf5": "nir", ".npz": "npz"}
#: the observable names in NIR graph data
SPIKES, VOLTAGE, OUTPUT = "spikes", "v", "output"
_GROUP = "neuromoco"  # the group beside NIR's ``nodes`` with what NIR has no place for


@dataclass
class TraceInfo:
    """What a comparison needs to know about a recorded run (all optional: a foreign trace may lack it)."""

    target: str | None = None  # the target that produced the run (its facts judge the trace in ``deploy parity``)
    options: dict[str, Any] = field(default_factory=dict)  # that target's options
    model: str | None = None
    dataset: str | None = None
    split: str | None = None
    dt: float | None = None  # the Euler step of the run (the model card's)
    output_node: str | None = None  # the graph's Output node (its ``output`` observable is the run's output)
    shapes: dict[str, list[int]] = field(default_factory=dict)  # per spiking node, its shape (NIR data is flat)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceInfo:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Trace:
    """A recorded run over ``N`` samples: its result, voltages where known, labels and per-sample frame keys."""

    result: RunResult
    info: TraceInfo = field(default_factory=TraceInfo)
    labels: np.ndarray | None = None
    sample_keys: list[str] | None = None  # :func:`sample_key` of each sample's frames, to find them again
    voltages: dict[str, np.ndarray] = field(default_factory=dict)  # per spiking node ``[T, N, *shape]``

    @property
    def samples(self) -> int:
        return int(self._timed().shape[1])

    @property
    def time_steps(self) -> int:
        return int(self._timed().shape[0])

    def _timed(self) -> np.ndarray:
        """A ``[T, N, ...]`` record: the output, or (a trace with spikes only) the first layer's spikes."""
        r = self.result
        return r.output if r.output.size or not r.spikes else next(iter(r.spikes.values()))


def sample_key(frames: np.ndarray) -> str:
    """A key of one sample's frames ``[T, *input_shape]`` (SHA-1 of its float32 values): same sample, same key."""
    return hashlib.sha1(np.ascontiguousarray(frames, dtype=np.float32).tobytes()).hexdigest()


def trace_format(path: str | Path) -> str:
    """``"nir"`` or ``"npz"`` by the file's suffix (anything else is a UserError)."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"trace {path}: unknown suffix {Path(path).suffix!r}; use {', '.join(SUFFIXES)}")
    return fmt


# ------------------------------------------------------------------------------------------------ write

def write(path: str | Path, trace: Trace) -> Path:
    """Write ``trace`` to ``path`` atomically, in the format its suffix names."""
    from neuromoco.io import atomic_write

    fmt = trace_format(path)
    info = _completed_info(trace)
    if fmt == "npz":
        return _write_npz(Path(path), trace, info)
    return atomic_write(path, lambda tmp: _write_nir(tmp, trace, info))


def _completed_info(trace: Trace) -> TraceInfo:
    """``trace.info`` with the spiking nodes' shapes filled in from the records."""
    shapes = {**trace.info.shapes, **{k: list(v.shape[2:]) for k, v in trace.result.spikes.items()}}
    return TraceInfo(**{**asdict(trace.info), "shapes": shapes})


def _write_npz(path: Path, trace: Trace, info: TraceInfo) -> Path:
    from neuromoco.io import atomic_write_npz

    r = trace.result
    arrays: dict[str, np.ndarray] = {"output": r.output, "predictions": r.predictions,
                                     "trace_info": np.array(json.dumps(asdict(info)))}
    arrays.update({f"spike_counts/{k}": v for k, v in r.spike_counts.items()})
    arrays.update({f"spikes/{k}": v for k, v in r.spikes.items()})
    arrays.update({f"voltages/{k}": v for k, v in trace.voltages.items()})
    if trace.labels is not None:
        arrays["labels"] = np.asarray(trace.labels)
    if trace.sample_keys is not None:
        arrays["sample_keys"] = np.array(trace.sample_keys)
    return atomic_write_npz(path, arrays)


def _per_sample(a: np.ndarray) -> np.ndarray:
    """``[T, N, *shape]`` -> NIR's ``[N, T, neurons]``."""
    return np.ascontiguousarray(np.swapaxes(a.reshape(a.shape[0], a.shape[1], -1), 0, 1))


def _write_nir(tmp: str, trace: Trace, info: TraceInfo) -> None:
    import h5py
    import nir

    r = trace.result
    missing = [k for k in r.spike_counts if k not in r.spikes]
    if missing:
        raise UserError(f"a NIR trace holds spikes, and this run recorded only counts of {', '.join(missing)} "
                        "(run with record_spikes, or write the .npz layout)")
    dt = float(info.dt) if info.dt else 1.0  # NIR needs a step; a graph without leaky neurons has none
    nodes: dict[str, Any] = {}
    for k, s in r.spikes.items():
        obs = {SPIKES: nir.TimeGriddedData(_per_sample(s).astype(bool), dt)}
        if k in trace.voltages:
            obs[VOLTAGE] = nir.TimeGriddedData(_per_sample(trace.voltages[k]), dt)
        nodes[k] = nir.NIRNodeData(obs)
    out = info.output_node or OUTPUT
    if out in nodes:
        raise UserError(f"node {out!r} is both a spiking node and the output node")
    nodes[out] = nir.NIRNodeData({OUTPUT: nir.TimeGriddedData(_per_sample(np.asarray(r.output, np.float64)), dt)})
    nir.write_data(tmp, nir.NIRGraphData(nodes))
    with h5py.File(tmp, "a") as f:
        g = f.create_group(_GROUP)
        g.attrs["info"] = json.dumps({**asdict(info), "output_node": out})
        if trace.labels is not None:
            g.create_dataset("labels", data=np.asarray(trace.labels))
        if trace.sample_keys is not None:
            g.create_dataset("sample_keys", data=np.array(trace.sample_keys, dtype="S40"))


# ------------------------------------------------------------------------------------------------- read

def read_info(path: str | Path) -> TraceInfo:
    """Only the :class:`TraceInfo` of a trace (cheap: no records are read)."""
    path = _existing(path)
    if trace_format(path) == "npz":
        with np.load(path) as z:
            return TraceInfo.from_dict(json.loads(str(z["trace_info"]))) if "trace_info" in z else TraceInfo()
    import h5py

    with _opened(path, h5py.File) as f:
        return TraceInfo.from_dict(json.loads(f[_GROUP].attrs["info"])) if _GROUP in f else TraceInfo()


def read(path: str | Path) -> Trace:
    """The trace in ``path`` (either format), spikes as uint8 ``[T, N, *shape]`` as runners give them."""
    path = _existing(path)
    return _read_npz(path) if trace_format(path) == "npz" else _read_nir(path)


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"trace file not found: {p}")
    return p


def _opened(path: Path, opener: Any) -> Any:
    try:
        return opener(path, "r")
    except OSError as err:
        raise UserError(f"trace {path} is not a readable HDF5 file ({err})") from None


def _read_npz(path: Path) -> Trace:
    with np.load(path) as z:
        if "output" not in z:
            raise UserError(f"trace {path} has no 'output' array: not a run's record")
        info = TraceInfo.from_dict(json.loads(str(z["trace_info"]))) if "trace_info" in z else TraceInfo()

        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}

        result = RunResult(output=z["output"], spike_counts=group("spike_counts/"), spikes=group("spikes/"))
        return Trace(result, info, z["labels"] if "labels" in z else None,
                     [str(k) for k in z["sample_keys"]] if "sample_keys" in z else None, group("voltages/"))


def _read_nir(path: Path) -> Trace:
    import h5py
    import nir

    with _opened(path, h5py.File) as f:
        extra = f[_GROUP] if _GROUP in f else None
        info = TraceInfo.from_dict(json.loads(extra.attrs["info"])) if extra is not None else TraceInfo()
        labels = extra["labels"][()] if extra is not None and "labels" in extra else None
        keys = ([k.decode() for k in extra["sample_keys"][()]] if extra is not None and "sample_keys" in extra
                else None)
    try:
        data = nir.read_data(str(path))
    except (KeyError, ValueError) as err:
        raise UserError(f"trace {path} is not NIR graph data ({err})") from None
    spikes: dict[str, np.ndarray] = {}
    voltages: dict[str, np.ndarray] = {}
    output = None
    for name, node in data.nodes.items():
        if not isinstance(node, nir.NIRNodeData):
            raise UserError(f"trace {path}: node {name!r} is a nested graph; inline it (one level of nodes)")
        obs = node.observables
        if SPIKES in obs:
            spikes[name] = _time_major(_gridded(obs[SPIKES], info.dt, path, name), info.shapes.get(name), np.uint8)
        if VOLTAGE in obs:
            voltages[name] = _time_major(_gridded(obs[VOLTAGE], info.dt, path, name), info.shapes.get(name), None)
        if OUTPUT in obs and (info.output_node in (None, name)):
            output = _time_major(_gridded(obs[OUTPUT], info.dt, path, name), None, np.float64)
    if output is None:
        output = np.zeros((0, 0, 0))  # none recorded: a runner that knows the graph may derive it (see trace target)
    counts = {k: s.reshape(s.shape[0], s.shape[1], -1).sum(axis=-1, dtype=np.int64) for k, s in spikes.items()}
    return Trace(RunResult(output=output, spike_counts=counts, spikes=spikes), info, labels, keys, voltages)


def _gridded(obs: Any, dt: float | None, path: Path, name: str) -> np.ndarray:
    """An observable's values ``[N, T, n]`` on the time grid (event data is put on it with the run's dt)."""
    import nir

    if isinstance(obs, nir.TimeGriddedData):
        return obs.data
    if dt is None:
        raise UserError(f"trace {path}: node {name!r} holds event data and the trace states no dt to grid it")
    return obs.to_time_gridded(dt).data


def _time_major(a: np.ndarray, shape: list[int] | None, dtype: Any) -> np.ndarray:
    """NIR's ``[N, T, n]`` -> ``[T, N, *shape]``."""
    t = np.swapaxes(a, 0, 1)
    if shape is not None:
        t = t.reshape(t.shape[0], t.shape[1], *shape)
    return np.ascontiguousarray(t, dtype=dtype)
