"""One reader per event-file format (a suffix -> reader table), and the checks every file's events pass.

A reader returns :class:`RawEvents`: the x, y, t, p columns as stored, plus what the format itself says
about the sensor (``sensor``) and the time unit (``time_unit``; None: the user's ``--time-unit``, default us).

========================  ====================================================================================
``.npy``                  a structured array with fields x, y, t, p (any order, any numeric or bool types)
``.bin``                  N-MNIST / ATIS 40-bit events (``tonic.io.read_mnist_file``); microseconds
``.aedat4``               the first event stream, read with the ``aedat`` package as ``tonic.io.read_aedat4``
                          does; sensor from the stream info; microseconds
``.h5`` / ``.hdf5``       datasets x, y, t, p at the top level or in a group ``events``; optional attributes
                          ``sensor_size`` (W, H[, P]) and ``time_unit``
``.csv``                  a header naming x, y, t, p (any order), or four columns x, y, t, p without header
``.raw`` ``.dat`` ``.es``  cameras' own formats (Prophesee EVT 2.0 / 2.1 / 3.0 and DAT, Event Stream, jAER AEDAT
``.aedat`` ``.npz``       2.0 / 3.1, numpy archives): :mod:`neuromoco.train.data.camera_readers`
========================  ====================================================================================

:func:`to_events` turns them into the pipeline's events (:data:`EVENT_DTYPE`, microseconds, p 0/1) and
raises a one-line :class:`UserError` naming the file for negative or unsorted timestamps, bad polarities,
or coordinates outside the sensor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from neuromoco.errors import UserError
from neuromoco.train.data.base import EVENT_DTYPE
from neuromoco.train.data.camera_readers import CAMERA_READERS, read_prophesee_h5
from neuromoco.train.data.raw_events import FIELDS, TIME_UNITS, RawEvents

__all__ = ["FIELDS", "READERS", "TIME_UNITS", "RawEvents", "read_events", "read_raw", "to_events"]



def _structured(path: Path, arr: np.ndarray, what: str) -> RawEvents:
    names = arr.dtype.names or ()
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise UserError(f"{path}: {what} has fields {list(names)}, not x, y, t, p (missing {', '.join(missing)})")
    return RawEvents({f: np.asarray(arr[f]).reshape(-1) for f in FIELDS})


def read_npy(path: Path) -> RawEvents:
    arr = np.load(path, allow_pickle=False)
    if arr.dtype.names is None:
        raise UserError(f"{path}: a plain {arr.dtype} array of shape {list(arr.shape)}, not a structured array "
                        "with fields x, y, t, p")
    return _structured(path, arr, "the array")


ATIS_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def read_bin(path: Path) -> RawEvents:
    from tonic.io import read_mnist_file

    size = path.stat().st_size
    if size % 5:
        raise UserError(f"{path}: {size} bytes is not a whole number of 40-bit N-MNIST/ATIS events")
    ev = read_mnist_file(str(path), dtype=ATIS_DTYPE)
    return RawEvents({f: ev[f] for f in FIELDS}, time_unit="us")


def read_aedat4(path: Path) -> RawEvents:
    try:
        import aedat
    except ImportError:
        raise UserError(f"{path}: reading .aedat4 needs the 'aedat' package (pip install aedat)") from None
    decoder = aedat.Decoder(str(path))
    streams = {i: s for i, s in decoder.id_to_stream().items() if s.get("type") == "events"}
    if not streams:
        raise UserError(f"{path}: the file holds no event stream")
    target = min(streams)
    info = streams[target]
    packets = [pk["events"] for pk in decoder if pk["stream_id"] == target]
    ev = np.concatenate(packets) if packets else np.zeros(0, dtype=[(f, "<i8") for f in FIELDS])
    sensor = (int(info["width"]), int(info["height"]), 2) if info.get("width") and info.get("height") else None
    try:  # aedat names the polarity "on" (with the title "p")
        cols = {f: np.asarray(ev[f]).reshape(-1) for f in FIELDS}
    except (KeyError, ValueError):
        raise UserError(f"{path}: the event stream has fields {list(ev.dtype.names or ())}, not t, x, y, p") from None
    return RawEvents(cols, sensor, "us")


def read_h5(path: Path) -> RawEvents:
    import h5py

    with h5py.File(path, "r") as f:
        prophesee = read_prophesee_h5(f, path)
        if prophesee is not None:
            return prophesee
        group = f["events"] if "events" in f and isinstance(f["events"], h5py.Group) else f
        missing = [k for k in FIELDS if k not in group]
        if missing:
            raise UserError(f"{path}: no datasets {', '.join(missing)} (needs x, y, t, p at the top level or in "
                            "a group 'events')")
        cols = {k: np.asarray(group[k][()]).reshape(-1) for k in FIELDS}
        attrs = {**dict(f.attrs), **dict(group.attrs)}
    sensor = None
    if "sensor_size" in attrs:
        size = [int(v) for v in np.asarray(attrs["sensor_size"]).reshape(-1)]
        if len(size) not in (2, 3):
            raise UserError(f"{path}: attribute sensor_size {size} is not (W, H) or (W, H, P)")
        sensor = (size[0], size[1], size[2] if len(size) == 3 else 2)
    unit = attrs.get("time_unit")
    unit = unit.decode() if isinstance(unit, bytes) else (str(unit) if unit is not None else None)
    if unit is not None and unit not in TIME_UNITS:
        raise UserError(f"{path}: attribute time_unit {unit!r} is not one of {', '.join(TIME_UNITS)}")
    return RawEvents(cols, sensor, unit)


def read_csv(path: Path) -> RawEvents:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    cells = [c.strip().lower() for c in first.replace(";", ",").split(",")]
    try:
        [float(c) for c in cells]
        names, skip = list(FIELDS), 0
    except ValueError:
        names, skip = cells, 1
    missing = [f for f in FIELDS if f not in names]
    if missing or (skip == 0 and len(cells) != 4):
        raise UserError(f"{path}: needs a header naming x, y, t, p or four columns x, y, t, p; first line "
                        f"{first.strip()!r}")
    table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    if table.size == 0:
        table = np.zeros((0, len(names)))
    return RawEvents({f: table[:, names.index(f)] for f in FIELDS})


READERS: dict[str, Callable[[Path], RawEvents]] = {
    ".npy": read_npy, ".bin": read_bin, ".aedat4": read_aedat4, ".h5": read_h5, ".hdf5": read_h5, ".csv": read_csv,
    **CAMERA_READERS,
}


def is_event_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in READERS and not path.name.startswith(".")


def read_raw(path: Path) -> RawEvents:
    """The columns of one file, by its suffix; any failure becomes one line naming the file."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: unknown event-file format (readable: {', '.join(READERS)})")
    try:
        return reader(path)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged file of any format: one line naming it
        raise UserError(f"{path}: cannot read as {path.suffix} events: {type(err).__name__}: {err}") from None


def _integers(path: Path, name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f" and (not np.all(np.isfinite(values)) or np.any(values != np.round(values))):
        raise UserError(f"{path}: {name} holds non-integer values")
    return values.astype(np.int64)


def _microseconds(path: Path, t: np.ndarray, unit: str) -> np.ndarray:
    factor = TIME_UNITS[unit]
    if t.dtype.kind == "f":
        if not np.all(np.isfinite(t)):
            raise UserError(f"{path}: timestamps are not finite")
        return np.round(t * factor).astype(np.int64)
    t = t.astype(np.int64)
    return t * int(factor) if factor >= 1 else t // round(1 / factor)


def to_events(raw: RawEvents, path: Path, time_unit: str = "us",
              sensor: tuple[int, int, int] | None = None, outside_hint: str = "") -> np.ndarray:
    """Checked events in :data:`EVENT_DTYPE` (t in us, p 0/1); ``sensor`` (W, H, P) bounds the coordinates
    (``outside_hint`` ends the message of events outside it: where the size came from, how to set it)."""
    cols = raw.columns
    n = len(cols["t"])
    if any(len(cols[f]) != n for f in FIELDS):
        raise UserError(f"{path}: x, y, t, p have different lengths {[len(cols[f]) for f in FIELDS]}")
    out = np.empty(n, dtype=EVENT_DTYPE)
    out["t"] = _microseconds(path, np.asarray(cols["t"]), raw.time_unit or time_unit)
    out["x"] = _integers(path, "x", np.asarray(cols["x"]))
    out["y"] = _integers(path, "y", np.asarray(cols["y"]))
    p = _integers(path, "p", np.asarray(cols["p"]))
    if n:
        if p.min() < 0:  # -1/+1 polarities
            if not np.all((p == -1) | (p == 1)):
                raise UserError(f"{path}: polarities must be 0/1 or -1/+1, found values in [{p.min()}, {p.max()}]")
            p = (p > 0).astype(np.int64)
        elif p.max() > 1:
            raise UserError(f"{path}: polarities must be 0/1 or -1/+1, found values in [{p.min()}, {p.max()}]")
        t = out["t"]
        if t.min() < 0:
            raise UserError(f"{path}: negative timestamps (first at event {int(np.argmax(t < 0))}: {int(t.min())})")
        step = np.diff(t)
        if np.any(step < 0):
            raise UserError(f"{path}: timestamps are not sorted (event {int(np.argmax(step < 0)) + 1} is earlier "
                            "than the one before)")
        if out["x"].min() < 0 or out["y"].min() < 0:
            raise UserError(f"{path}: negative coordinates (x from {out['x'].min()}, y from {out['y'].min()})")
        if sensor is not None and (out["x"].max() >= sensor[0] or out["y"].max() >= sensor[1]):
            raise UserError(f"{path}: coordinates outside the {sensor[0]}x{sensor[1]} sensor: x up to "
                            f"{out['x'].max()}, y up to {out['y'].max()}{outside_hint}")
    out["p"] = p
    return out


def read_events(path: Path, time_unit: str = "us", sensor: tuple[int, int, int] | None = None,
                outside_hint: str = "") -> np.ndarray:
    """One file's checked events (see :func:`to_events`)."""
    return to_events(read_raw(path), path, time_unit, sensor, outside_hint)
