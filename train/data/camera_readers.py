"""Readers of cameras' own file formats, through maintained libraries where one reads the format.

========================  ====================================================================================
``.raw``                  Prophesee EVT 2.0 / 3.0 (read by ``faery``) and EVT 2.1 (read here: faery 0.7 does not
                          decode it, and evlib, which does, pulls polars, pyarrow and pandera); sensor from the
                          header
``.dat``                  Prophesee DAT 1 / 2 (the ATIS/Prophesee format of N-CARS; ``faery``); sensor from the
                          header's ``% Width`` / ``% Height`` where it has them
``.es``                   Event Stream (``faery``); sensor from the header
``.aedat``                jAER AEDAT 2.0 (DVS128-family chips: MNIST-DVS, CIFAR10-DVS's original release) and
                          AEDAT 3.1 (polarity packets: DVS128 Gesture's release) read here (no maintained
                          library reads them right: ``tonic.io.read_dvs_128`` fails on its own header reader's
                          three return values and ``get_aer_events_from_file`` reads every 3.1 packet as 8-byte
                          polarity events); an AEDAT 4 file named ``.aedat`` goes to the ``.aedat4`` reader
``.npz``                  a structured array ``events`` (fields x, y, t, p), or arrays x, y, t, p
``.h5`` (Prophesee)       ``/CD/events`` as Metavision writes it (read by the ``.h5`` reader through
                          :func:`read_prophesee_h5`; its ECF codec needs Prophesee's HDF5 plugin)
========================  ====================================================================================

Why ``faery`` (docs/datasets.md has the measurement): it decodes every Prophesee and Event Stream format,
writes them too (the tests make their files with it), depends on numpy only, and is the fastest of the
libraries measured by ``benchmarks/event_decode.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.errors import UserError
from neuromoco.train.data.raw_events import FIELDS, RawEvents

#: faery's stand-in width/height for a file whose header has none (any real sensor is smaller)
_NO_SIZE = (65535, 65535)


def read_faery(path: Path) -> RawEvents:
    """Prophesee ``.raw`` / ``.dat`` and Event Stream ``.es`` through ``faery``: microseconds, p 0/1
    (a ``.raw`` whose header says EVT 2.1 goes to :func:`read_evt21`)."""
    if path.suffix.lower() == ".raw":
        header, _ = _prophesee_header(_head(path))
        if re.search(r"^% evt 2\.1\b|EVT21|EVT2\.1", header, re.MULTILINE):
            return read_evt21(path)
    try:
        import faery
    except ImportError:
        raise UserError(f"{path}: reading {path.suffix} needs the 'faery' package (pip install faery)") from None
    stream = faery.events_stream_from_file(path, dimensions_fallback=_NO_SIZE)
    chunks = list(stream)
    ev = np.concatenate(chunks) if chunks else np.zeros(0, dtype=faery.EVENTS_DTYPE)
    width, height = stream.dimensions()
    sensor = None if (width, height) == _NO_SIZE else (int(width), int(height), 2)
    cols = {"x": ev["x"], "y": ev["y"], "t": ev["t"], "p": ev["on"].astype(np.int8)}
    return RawEvents(cols, sensor, "us")


def _head(path: Path, size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes of a file (where its text header is), without reading the rest."""
    with open(path, "rb") as f:
        return f.read(size)


def _prophesee_header(data: bytes) -> tuple[str, int]:
    """The ``% ...`` header lines of a Prophesee file and where its binary data starts."""
    pos = 0
    while data[pos:pos + 1] == b"%":
        end = data.find(b"\n", pos)
        if end < 0:
            break
        pos = end + 1
        if data[pos - 6:pos] == b"% end\n":
            break
    return data[:pos].decode("latin-1"), pos


def _header_size(header: str) -> tuple[int, int, int] | None:
    """(W, H, 2) from ``% format ...;width=W;height=H`` or ``% geometry WxH``."""
    w = re.search(r"width=(\d+)", header)
    h = re.search(r"height=(\d+)", header)
    if w and h:
        return int(w.group(1)), int(h.group(1)), 2
    g = re.search(r"^% geometry (\d+)x(\d+)", header, re.MULTILINE)
    return (int(g.group(1)), int(g.group(2)), 2) if g else None


#: EVT 2.1 word types (the 4 most significant bits of a little-endian 64-bit word)
EVT21_NEG, EVT21_POS, EVT21_TIME_HIGH = 0x0, 0x1, 0x8


def read_evt21(path: Path) -> RawEvents:
    """Prophesee EVT 2.1: 64-bit words; ``TIME_HIGH`` (type 8) carries the timestamp's bits 6-33 in its bits
    32-59; ``EVT_NEG`` / ``EVT_POS`` (0 / 1) carry the timestamp's 6 low bits (54-59), x of a 32-pixel group
    (43-53), y (32-42) and a 32-bit mask whose bit ``i`` is an event at ``x + i``. Other types (triggers,
    continued, others) carry no pixel and are skipped."""
    data = path.read_bytes()
    header, start = _prophesee_header(data)
    body = data[start:]
    if len(body) % 8:
        raise UserError(f"{path}: {len(body)} data bytes is not a whole number of 64-bit EVT 2.1 words")
    w = np.frombuffer(body, dtype="<u8")
    kind = (w >> np.uint64(60)).astype(np.int8)
    is_high = kind == EVT21_TIME_HIGH
    last_high = np.maximum.accumulate(np.where(is_high, np.arange(len(w)), -1))
    high = np.where(last_high >= 0, (w[np.maximum(last_high, 0)] >> np.uint64(32)) & np.uint64(0xFFFFFFF), 0)
    cd = (kind == EVT21_NEG) | (kind == EVT21_POS)
    wc, hc = w[cd], high[cd].astype(np.int64)
    t = (hc << 6) | ((wc >> np.uint64(54)) & np.uint64(63)).astype(np.int64)
    x0 = ((wc >> np.uint64(43)) & np.uint64(0x7FF)).astype(np.int64)
    y = ((wc >> np.uint64(32)) & np.uint64(0x7FF)).astype(np.int64)
    mask = np.unpackbits((wc & np.uint64(0xFFFFFFFF)).astype("<u4").view(np.uint8).reshape(-1, 4), axis=1,
                         bitorder="little").astype(bool)  # [words, 32]: bit i of each word's mask
    word, bit = np.nonzero(mask)
    cols = {"x": x0[word] + bit, "y": y[word], "t": t[word], "p": (kind[cd][word] == EVT21_POS).astype(np.int8)}
    return RawEvents(cols, _header_size(header), "us")


# ------------------------------------------------------------------------------------ jAER AEDAT 2.0 / 3.1

#: AEDAT 2.0 chips whose 32-bit address is the DVS128's (jAER's ``DVS128`` extractor): polarity bit 0 (1: OFF),
#: x bits 1-7 mirrored (``127 - x``), y bits 8-14; an address above 0x7FFF is a special (sync) event
DVS128_CHIPS = ("DVS128", "Tmpdiff128", "DVS128_PAER")
#: AEDAT 3.1 sources and their sensors
SOURCE_SIZES = {"DVS128": (128, 128), "DAVIS240": (240, 180), "DAVIS346": (346, 260), "DAVIS640": (640, 480),
                "DVXPLORER": (640, 480), "DVXPLORER_LITE": (320, 240)}
_POLARITY_EVENT = 1  # AEDAT 3.1 packet type of polarity events
_HEADER_3 = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"),
                      ("ts_overflow", "<i4"), ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4")])


def _aedat_header(data: bytes, path: Path) -> tuple[str, list[str], int]:
    """The ``#!AER-DATx.y`` version, the header's comment lines and where the binary data starts."""
    lines, pos = [], 0
    while pos < len(data) and data[pos:pos + 1] == b"#":
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        lines.append(data[pos:end].decode("latin-1").strip())
        pos = end
    match = re.match(r"#!AER-DAT(\d+\.\d+)", lines[0]) if lines else None
    if match is None:
        raise UserError(f"{path}: no '#!AER-DAT' version line: not a jAER/cAER .aedat file")
    return match.group(1), lines, pos


def read_aedat(path: Path) -> RawEvents:
    """jAER ``.aedat``: version 2.0 (DVS128-family chips) or 3.1 (polarity packets); 4.x is AEDAT 4."""
    if _head(path, 16).startswith(b"#!AER-DAT4"):
        from neuromoco.train.data.readers import read_aedat4

        return read_aedat4(path)
    data = path.read_bytes()
    version, lines, start = _aedat_header(data, path)
    if version.startswith("2."):
        return _aedat2(data[start:], lines, path)
    if version.startswith("3."):
        return _aedat3(data[start:], lines, path)
    raise UserError(f"{path}: AEDAT {version} is not read (AEDAT 2.0, 3.1 and 4 are)")


def _aedat2(body: bytes, lines: list[str], path: Path) -> RawEvents:
    chip = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("# aechip:")), "")
    name = chip.rsplit(".", 1)[-1]
    if chip and name not in DVS128_CHIPS:
        raise UserError(f"{path}: AEDAT 2.0 from chip {chip!r}: only DVS128-family address layouts are read "
                        f"({', '.join(DVS128_CHIPS)}); convert it with jAER to AEDAT 3.1 or 4")
    if len(body) % 8:
        raise UserError(f"{path}: {len(body)} data bytes is not a whole number of 8-byte AEDAT 2.0 events")
    ev = np.frombuffer(body, dtype=[("address", ">u4"), ("t", ">u4")])
    ev = ev[ev["address"] <= 0x7FFF]  # special (sync) events carry no pixel
    addr = ev["address"].astype(np.int64)
    cols = {"x": 127 - ((addr >> 1) & 0x7F), "y": (addr >> 8) & 0x7F, "t": ev["t"].astype(np.int64),
            "p": 1 - (addr & 1)}
    return RawEvents(cols, (128, 128, 2), "us")


def _aedat3(body: bytes, lines: list[str], path: Path) -> RawEvents:
    """AEDAT 3.1: packets of a 28-byte header and ``capacity`` events of ``size`` bytes; polarity events are
    ``(data, timestamp)`` int32 pairs with valid bit 0, polarity bit 1, y bits 2-16, x bits 17-31, and the
    packet's overflow as the timestamp's bits 31 and up."""
    pos, parts = 0, []
    while pos + _HEADER_3.itemsize <= len(body):
        head = np.frombuffer(body, _HEADER_3, count=1, offset=pos)[0]
        size, capacity = int(head["size"]), int(head["capacity"])
        pos += _HEADER_3.itemsize
        end = pos + size * capacity
        if size <= 0 or capacity < 0 or end > len(body):
            raise UserError(f"{path}: AEDAT 3.1 packet at byte {pos - _HEADER_3.itemsize} is damaged or cut off")
        if int(head["type"]) == _POLARITY_EVENT:
            if size != 8:
                raise UserError(f"{path}: AEDAT 3.1 polarity events of {size} bytes (8 expected)")
            ev = np.frombuffer(body, dtype=[("data", "<u4"), ("t", "<u4")], count=capacity, offset=pos)
            ev = ev[(ev["data"] & 1) == 1]
            data = ev["data"].astype(np.int64)
            t = ev["t"].astype(np.int64) | (int(head["ts_overflow"]) << 31)
            parts.append(np.stack([(data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, t, (data >> 1) & 1]))
        pos = end
    if pos != len(body):
        raise UserError(f"{path}: {len(body) - pos} bytes after the last whole AEDAT 3.1 packet (cut off?)")
    x, y, t, p = np.concatenate(parts, axis=1) if parts else np.zeros((4, 0), dtype=np.int64)
    source = next((ln.split(":", 1)[1].strip() for ln in lines if re.match(r"#-?Source \d+:", ln)), "")
    size_wh = SOURCE_SIZES.get(source.upper().replace(" ", "_"))
    return RawEvents({"x": x, "y": y, "t": t, "p": p}, (*size_wh, 2) if size_wh else None, "us")


# ---------------------------------------------------------------------------------------- Prophesee HDF5

def read_prophesee_h5(f: Any, path: Path) -> RawEvents | None:
    """Prophesee's HDF5 (``/CD/events``: a compound dataset x, y, p, t in microseconds; ``geometry``
    attribute ``WxH``), or None when ``f`` (an open ``h5py.File``) is not one. Metavision compresses the
    events with its ECF codec, which h5py reads only with Prophesee's plugin on ``HDF5_PLUGIN_PATH``."""
    cd = f.get("CD")
    if cd is None or "events" not in cd:
        return None
    try:
        ev = cd["events"][()]
    except OSError as err:
        if "filter" in str(err).lower():
            raise UserError(f"{path}: Prophesee HDF5 compressed with the ECF codec: install Prophesee's HDF5 ECF "
                            "plugin (HDF5_PLUGIN_PATH), or convert the recording to .raw") from None
        raise
    names = ev.dtype.names or ()
    if any(k not in names for k in FIELDS):
        raise UserError(f"{path}: /CD/events has fields {list(names)}, not x, y, p, t")
    geometry = f.attrs.get("geometry", b"")
    geometry = geometry.decode() if isinstance(geometry, bytes) else str(geometry)
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", geometry)
    sensor = (int(match.group(1)), int(match.group(2)), 2) if match else None
    return RawEvents({k: np.asarray(ev[k]).reshape(-1) for k in FIELDS}, sensor, "us")


# ------------------------------------------------------------------------------------------------ numpy

def read_npz(path: Path) -> RawEvents:
    """An ``.npz`` with a structured array ``events`` (fields x, y, t, p), or four arrays x, y, t, p."""
    with np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        if "events" in names and z["events"].dtype.names:
            arr = z["events"]
            missing = [f for f in FIELDS if f not in (arr.dtype.names or ())]
            if missing:
                raise UserError(f"{path}: 'events' has fields {list(arr.dtype.names or ())}, not x, y, t, p")
            return RawEvents({f: np.asarray(arr[f]).reshape(-1) for f in FIELDS})
        missing = [f for f in FIELDS if f not in names]
        if missing:
            raise UserError(f"{path}: holds {names}: needs a structured array 'events' or arrays x, y, t, p")
        return RawEvents({f: np.asarray(z[f]).reshape(-1) for f in FIELDS})


#: the suffixes these readers add to :data:`neuromoco.train.data.readers.READERS`
CAMERA_READERS = {".raw": read_faery, ".dat": read_faery, ".es": read_faery, ".aedat": read_aedat,
                  ".npz": read_npz}
