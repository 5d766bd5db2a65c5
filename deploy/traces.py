"""A recorded run (a *trace*) on disk: NIR's own graph data (``nir.data_ir``) or the project's ``.npz`` layout.

A trace holds what :class:`~neuromoco.deploy.result.RunResult` holds, per sample and time step, plus what a later
comparison needs to know about the run (:class:`TraceInfo`: the target that produced it and its options, the
model, dataset, split, dt, and per sample a key of its frames and its label). ``deploy run --trace nir|npz``
writes one, ``deploy parity --trace nir|npz`` one per compared run, both streamed (:class:`TraceWriter` appends
batch by batch and holds no more than the batch at hand); ``deploy parity --targets trace:FILE`` reads one back
as one more target.

NIR graph data (``.nir``, ``.h5``, ``.hdf5``; read by ``nir.read_data``): per spiking node ``spikes`` as
``TimeGriddedData`` of bool ``[samples, steps, neurons]`` (neurons flattened in C order; ``dt`` from the model
card), ``v`` where the run has membrane voltages (the target's units: float, or a fixed-point target's
integers), and on the graph's Output node ``output`` (float64 ``[samples, steps, n_out]``); every dataset
gzip-compressed, as ``nir.write_data`` writes them, and growing along the sample axis. What NIR has no place for
lives in a ``neuromoco`` group beside NIR's ``nodes`` group, which ``nir.read_data`` ignores: an ``info``
attribute (JSON), ``labels`` and ``sample_keys``. A trace written by another tool needs only the ``nodes`` part
(``EventData`` spikes are put on the time grid).

Project ``.npz``: the keys :meth:`RunResult.save` writes (``output [T, N, n_out]``, ``predictions``,
``spike_counts/<node> [T, N]``, ``labels``) plus ``spikes/<node> [T, N, *shape]`` (uint8),
``voltages/<node>``, ``sample_keys`` and ``trace_info`` (JSON). A ``predictions.npz`` of ``deploy run`` reads
as a trace with per-layer counts only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.deploy.result import RunResult
from neuromoco.errors import UserError
from neuromoco.io import atomic_write, publish, temporary_beside

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
    voltages: dict[str, np.ndarray] = field(default_factory=dict)  # [T, N, *shape] per node, with result.voltages

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
    """Write ``trace`` to ``path`` atomically, in the format its suffix names (one :class:`TraceWriter` batch)."""
    writer = TraceWriter(path, trace.info)
    try:
        writer.append(trace.result, trace.labels, trace.sample_keys, trace.voltages)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


class TraceWriter:
    """A trace written batch by batch: only the batch being appended is ever in memory.

    ``append(result, labels, sample_keys, voltages)`` adds one batch of samples (records ``[T, B, ...]`` as
    runners give them; every batch with the same records); ``close()`` completes the file and renames it over
    ``path`` (until then it is a temporary file beside it, so a trace is whole or absent); ``abort()`` removes
    it. NIR graph data goes into resizable HDF5 datasets laid out as ``nir.write_data`` lays them out (gzip, as
    it compresses by default; the sample axis grows); the ``.npz`` layout spools each batch's arrays to ``.npy``
    files in a folder beside ``path`` and streams them into the (deflated) zip at close, slice by slice.
    ``info`` is completed from the records (the nodes' shapes; the output node) and written at close.
    """

    def __init__(self, path: str | Path, info: TraceInfo | None = None) -> None:
        self.path = Path(path)
        self.format = trace_format(path)
        self.info = TraceInfo(**asdict(info)) if info is not None else TraceInfo()
        self.samples = 0
        self._records: tuple[str, ...] | None = None  # the first batch's record names: every batch has them
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink: _NirSink | _NpzSink = (_NirSink(self.path, self.info) if self.format == "nir"
                                           else _NpzSink(self.path))

    @property
    def temporary(self) -> Path:
        """Where the records are until :meth:`close` (the HDF5 file, or the ``.npz`` spool folder)."""
        return self._sink.tmp

    def append(self, result: RunResult, labels: np.ndarray | None = None, sample_keys: list[str] | None = None,
               voltages: dict[str, np.ndarray] | None = None) -> None:
        """One batch: ``result`` over ``B`` samples, their labels and frame keys, voltages ``[T, B, *shape]``
        (besides ``result.voltages``)."""
        volts = {**result.voltages, **(voltages or {})}
        timed = [a for a in (result.output, *result.spikes.values(), *volts.values()) if a.size]
        if not timed:
            return  # nothing recorded (an empty batch)
        B = int(timed[0].shape[1])
        for what, per_sample in (("labels", labels), ("sample keys", sample_keys)):
            if per_sample is not None and len(per_sample) != B:
                raise ValueError(f"{len(per_sample)} {what} for a batch of {B} samples")
        for k, a in {**result.spikes, **volts}.items():
            self.info.shapes[k] = list(a.shape[2:])
        records = (self._nir_records if self.format == "nir" else self._npz_records)(result, labels, sample_keys,
                                                                                      volts)
        names = tuple(records)
        if self._records is None:
            self._records = names
        elif names != self._records:
            raise ValueError(f"trace {self.path}: this batch records {', '.join(names)}, the first recorded "
                             f"{', '.join(self._records)}")
        self._sink.append(records)
        self.samples += B

    def _nir_records(self, r: RunResult, labels: np.ndarray | None, keys: list[str] | None,
                     volts: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, int]]:
        missing = [k for k in r.spike_counts if k not in r.spikes]
        if missing:
            raise UserError(f"a NIR trace holds spikes, and this run recorded only counts of {', '.join(missing)} "
                            "(run with record_spikes, or write the .npz layout)")
        out = self.info.output_node or OUTPUT
        if out in r.spikes or out in volts:
            raise UserError(f"node {out!r} is both a spiking node and the output node")
        self.info.output_node = out
        rec: dict[str, tuple[np.ndarray, int]] = {}
        for k in dict.fromkeys([*r.spikes, *volts]):
            if k in r.spikes:
                rec[f"nodes/{k}/{SPIKES}"] = (_per_sample(r.spikes[k]).astype(bool), 0)
            if k in volts:
                rec[f"nodes/{k}/{VOLTAGE}"] = (_per_sample(volts[k]), 0)
        if r.output.size:
            rec[f"nodes/{out}/{OUTPUT}"] = (_per_sample(np.asarray(r.output, np.float64)), 0)
        if labels is not None:
            rec["labels"] = (np.asarray(labels), 0)
        if keys is not None:
            rec["sample_keys"] = (_keys(keys).astype("S40"), 0)
        return rec

    @staticmethod
    def _npz_records(r: RunResult, labels: np.ndarray | None, keys: list[str] | None,
                     volts: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, int]]:
        rec: dict[str, tuple[np.ndarray, int]] = {}
        if r.output.size:
            rec.update(output=(r.output, 1), predictions=(r.predictions, 0))
        rec.update({f"spike_counts/{k}": (v, 1) for k, v in r.spike_counts.items()})
        rec.update({f"spikes/{k}": (v, 1) for k, v in r.spikes.items()})
        rec.update({f"voltages/{k}": (v, 1) for k, v in volts.items()})
        if labels is not None:
            rec["labels"] = (np.asarray(labels), 0)
        if keys is not None:
            rec["sample_keys"] = (_keys(keys), 0)
        return rec

    def close(self) -> Path:
        """Complete the file (the info, written last) and move it to :attr:`path`; returns the path."""
        if self.samples == 0:
            self.abort()
            raise UserError(f"trace {self.path}: no samples were recorded")
        try:
            if isinstance(self._sink, _NirSink):
                self._sink.finish(self.info)
                publish(self._sink.tmp, self.path)
            else:
                atomic_write(self.path, lambda tmp: self._sink.zip_to(tmp, self.info))  # type: ignore[union-attr]
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Drop what was written (the temporary file or spool); the trace file is not made."""
        self._sink.discard()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, kind: Any, err: Any, tb: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _keys(keys: list[str]) -> np.ndarray:
    """Frame keys as a fixed-width array (a key is a 40-digit SHA-1, :func:`sample_key`)."""
    a = np.array(keys, dtype="U40")
    if any(len(k) > 40 for k in keys):
        raise ValueError("a sample key is longer than 40 characters (a SHA-1 of the frames)")
    return a


def _per_sample(a: np.ndarray) -> np.ndarray:
    """``[T, N, *shape]`` -> NIR's ``[N, T, neurons]``."""
    return np.ascontiguousarray(np.swapaxes(a.reshape(a.shape[0], a.shape[1], -1), 0, 1))


def _chunks(tail: tuple[int, ...], itemsize: int, budget: int = 1 << 20) -> tuple[int, ...]:
    """HDF5 chunks of about ``budget`` bytes for a dataset ``[samples, *tail]``: whole samples where they fit,
    else a sample's leading axes cut (time first, then neurons)."""
    dims = [max(1, d) for d in tail]
    for i in range(len(dims)):
        rest = itemsize * int(np.prod(dims[i + 1:]))
        if rest * dims[i] <= budget:
            break
        dims[i] = max(1, budget // rest)
    return (max(1, budget // (itemsize * int(np.prod(dims)))), *dims)


class _NirSink:
    """NIR graph data in an HDF5 file that grows along the sample axis (``nir.write_data``'s groups and attrs:
    ``nodes/<node>/observables/<name>/data`` with ``__type__`` and ``dt``), the project's group beside it."""

    def __init__(self, path: Path, info: TraceInfo) -> None:
        import h5py

        self.tmp = temporary_beside(path)
        self.dt = float(info.dt) if info.dt else 1.0  # NIR needs a step; a graph without leaky neurons has none
        self.file: Any = h5py.File(self.tmp, "w")
        self.file.attrs["__type__"] = "NIRGraphData"
        self.file.create_group("nodes")
        self.file.create_group(_GROUP)

    @staticmethod
    def _where(name: str) -> str:
        """The HDF5 path of a record: ``nodes/<node>/<observable>`` -> NIR's ``.../observables/<name>/data``."""
        if not name.startswith("nodes/"):
            return f"{_GROUP}/{name}"
        _, node, obs = name.split("/")
        return f"nodes/{node}/observables/{obs}/data"

    def _dataset(self, name: str, like: np.ndarray) -> Any:
        f = self.file
        if not name.startswith("nodes/"):
            group, key = f[_GROUP], name
        else:
            _, node, obs = name.split("/")
            nodes = f["nodes"]
            if node not in nodes:
                nodes.create_group(node).attrs["__type__"] = "NIRNodeData"
                nodes[node].create_group("observables")
            group = nodes[node]["observables"].create_group(obs)
            group.attrs["__type__"] = "TimeGriddedData"
            group.attrs["dt"] = self.dt
            key = "data"
        tail = like.shape[1:]
        return group.create_dataset(key, shape=(0, *tail), maxshape=(None, *tail), dtype=like.dtype,
                                    chunks=_chunks(tail, like.dtype.itemsize), compression="gzip")

    def append(self, records: dict[str, tuple[np.ndarray, int]]) -> None:
        for name, (a, _) in records.items():
            where = self._where(name)
            ds = self.file[where] if where in self.file else self._dataset(name, a)
            n = ds.shape[0]
            ds.resize(n + a.shape[0], axis=0)
            ds[n:] = a
        self.file.flush()

    def finish(self, info: TraceInfo) -> None:
        self.file[_GROUP].attrs["info"] = json.dumps(asdict(info))
        self.file.close()

    def discard(self) -> None:
        if self.file.id.valid:
            self.file.close()
        self.tmp.unlink(missing_ok=True)


class _NpzSink:
    """The ``.npz`` layout spooled: each batch's arrays as ``.npy`` files in a folder, zipped at the end (a
    time-major record ``[T, B, ...]`` is joined along its sample axis one time step at a time)."""

    def __init__(self, path: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".spool"))
        self.parts: dict[str, int] = {}  # record name -> batches spooled
        self.axes: dict[str, int] = {}  # record name -> its sample axis (0 or 1)

    def _file(self, name: str, part: int) -> Path:
        return self.tmp / f"{list(self.parts).index(name)}-{part}.npy"

    def append(self, records: dict[str, tuple[np.ndarray, int]]) -> None:
        for name, (a, axis) in records.items():
            part = self.parts.setdefault(name, 0)
            self.axes[name] = axis
            np.save(self._file(name, part), np.ascontiguousarray(a), allow_pickle=False)
            self.parts[name] = part + 1

    def zip_to(self, target: str, info: TraceInfo) -> None:
        import zipfile

        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for name, count in self.parts.items():
                parts = [np.load(self._file(name, i), mmap_mode="r") for i in range(count)]
                axis = self.axes[name]
                shape = list(parts[0].shape)
                shape[axis] = sum(p.shape[axis] for p in parts)
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(parts[0].dtype),
                                                              "fortran_order": False, "shape": tuple(shape)})
                    for t in range(shape[0] if axis == 1 else 1):
                        for p in parts:
                            if p.size:
                                fh.write((p[t] if axis == 1 else p).tobytes())
                del parts
            with zf.open("trace_info.npy", "w") as fh:
                np.lib.format.write_array(fh, np.array(json.dumps(asdict(info))), allow_pickle=False)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


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

        voltages = group("voltages/")
        result = RunResult(output=z["output"], spike_counts=group("spike_counts/"), spikes=group("spikes/"),
                           voltages=voltages)
        return Trace(result, info, z["labels"] if "labels" in z else None,
                     [str(k) for k in z["sample_keys"]] if "sample_keys" in z else None, voltages)


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
    return Trace(RunResult(output=output, spike_counts=counts, spikes=spikes, voltages=voltages), info, labels, keys,
                 voltages)


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
