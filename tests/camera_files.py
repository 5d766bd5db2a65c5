"""Writers of cameras' own event files: with ``faery`` where it writes the format, else bytes laid out per the
format's specification (EVT 2.1, jAER AEDAT 2.0 and 3.1), independently of the project's readers.

``ev`` is a structured array with x, y, t (microseconds, sorted) and p (0/1) fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _faery(path: Path, ev: np.ndarray, size: tuple[int, int], version: str | None) -> None:
    import faery

    out = np.zeros(len(ev), dtype=faery.EVENTS_DTYPE)
    out["t"], out["x"], out["y"], out["on"] = ev["t"], ev["x"], ev["y"], np.asarray(ev["p"]).astype(bool)
    faery.events_stream_from_array(out, dimensions=size).to_file(str(path), version=version, zero_t0=False)


def write_evt2(path: Path, ev: np.ndarray, size: tuple[int, int] = (34, 34)) -> None:
    _faery(path, ev, size, "evt2")


def write_evt3(path: Path, ev: np.ndarray, size: tuple[int, int] = (34, 34)) -> None:
    _faery(path, ev, size, "evt3")


def write_dat(path: Path, ev: np.ndarray, size: tuple[int, int] = (34, 34)) -> None:
    _faery(path, ev, size, "dat2")


def write_es(path: Path, ev: np.ndarray, size: tuple[int, int] = (34, 34)) -> None:
    _faery(path, ev, size, None)


def write_evt21(path: Path, ev: np.ndarray, size: tuple[int, int] = (34, 34)) -> None:
    """Prophesee EVT 2.1 (little-endian 64-bit words): a TIME_HIGH word (type 8, timestamp bits 6-33 in bits
    32-59) whenever they change, then one event word per event (type 0 OFF / 1 ON; timestamp bits 0-5 in bits
    54-59; x rounded down to 32 in bits 43-53; y in 32-42; bit ``x % 32`` of the valid mask set)."""
    t = np.asarray(ev["t"], dtype=np.uint64)
    x = np.asarray(ev["x"], dtype=np.uint64)
    words = []
    last = None
    for ti, xi, yi, pi in zip(t.tolist(), x.tolist(), np.asarray(ev["y"]).tolist(), np.asarray(ev["p"]).tolist(),
                              strict=True):
        if ti >> 6 != last:
            last = ti >> 6
            words.append((0x8 << 60) | (last << 32))
        words.append((int(pi) << 60) | ((ti & 63) << 54) | ((xi & ~31) << 43) | (int(yi) << 32) | (1 << (xi & 31)))
    words.append((0xA << 60) | 5)  # an external trigger: no pixel
    header = f"% evt 2.1\n% format EVT21;height={size[1]};width={size[0]}\n% end\n".encode()
    path.write_bytes(header + np.array(words, dtype="<u8").tobytes())


def write_aedat2_dvs128(path: Path, ev: np.ndarray) -> None:
    """jAER AEDAT 2.0 from a DVS128: big-endian (address, timestamp) pairs; address bit 0 is 1 for OFF, bits 1-7
    hold ``127 - x``, bits 8-14 y; a special (sync) event with bit 15 set is mixed in."""
    addr = ((127 - np.asarray(ev["x"], np.int64)) << 1) | (np.asarray(ev["y"], np.int64) << 8) \
        | (1 - np.asarray(ev["p"], np.int64))
    t = np.asarray(ev["t"], np.int64)
    rows = np.empty(len(ev) + 1, dtype=[("address", ">u4"), ("t", ">u4")])
    rows["address"] = np.insert(addr, len(ev) // 2, 0x8000)
    rows["t"] = np.insert(t, len(ev) // 2, t[len(ev) // 2])
    header = (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
              b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
              b"# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n")
    path.write_bytes(header + rows.tobytes())


def write_aedat31(path: Path, ev: np.ndarray, source: str = "DVS128", per_packet: int = 7) -> None:
    """cAER AEDAT 3.1: packets of a 28-byte little-endian header (type, source, event size, timestamp offset,
    timestamp overflow, capacity, number, valid) and polarity events (data: valid bit 0, polarity bit 1, y bits
    2-16, x bits 17-31; int32 timestamp, the overflow its bits 31 and up). A special-event packet and an
    invalid polarity event are mixed in; timestamps of 2**31 and more go into the overflow."""
    t = np.asarray(ev["t"], np.int64)
    data = (1 | (np.asarray(ev["p"], np.int64) << 1) | (np.asarray(ev["y"], np.int64) << 2)
            | (np.asarray(ev["x"], np.int64) << 17))
    head = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("ts_offset", "<i4"),
                     ("ts_overflow", "<i4"), ("capacity", "<i4"), ("number", "<i4"), ("valid", "<i4")])
    out = [f"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: {source}\r\n#!END-HEADER\r\n".encode()]
    special = np.zeros(1, dtype=head)
    special[0] = (0, 1, 8, 4, 0, 1, 1, 1)
    out += [special.tobytes(), np.array([(0x3, 0)], dtype=[("d", "<u4"), ("t", "<u4")]).tobytes()]
    for start in range(0, len(ev), per_packet):
        d, tt = data[start:start + per_packet], t[start:start + per_packet]
        overflow = int(tt[0] >> 31)
        assert np.all(tt >> 31 == overflow), "a packet must not straddle an overflow"
        rows = np.zeros(len(d) + 1, dtype=[("d", "<u4"), ("t", "<u4")])
        rows["d"][:-1], rows["t"][:-1] = d, tt & 0x7FFFFFFF
        rows[-1] = (int(d[-1]) & ~1, int(tt[-1]) & 0x7FFFFFFF)  # an invalid event: dropped by readers
        h = np.zeros(1, dtype=head)
        h[0] = (1, 1, 8, 4, overflow, len(rows), len(rows), len(d))
        out += [h.tobytes(), rows.tobytes()]
    path.write_bytes(b"".join(out))


def write_npz(path: Path, ev: np.ndarray) -> None:
    np.savez(path, x=np.asarray(ev["x"]), y=np.asarray(ev["y"]), t=np.asarray(ev["t"]), p=np.asarray(ev["p"]))


#: a writer per suffix for own-folder tests (``.aedat`` as AEDAT 3.1 of an unnamed source: sensor from events)
CAMERA_WRITERS = {".raw": write_evt3, ".dat": write_dat, ".es": write_es,
                  ".aedat": lambda p, ev: write_aedat31(p, ev, source="neuromoco-test"), ".npz": write_npz}
