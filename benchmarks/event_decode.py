"""Decode speed of event-file readers: the maintained libraries against each other and the project's readers.

One recording of ``--events`` random events (640x480, sorted microsecond timestamps) is written in every format
(faery's writers, or bytes per the format's specification from ``tests/camera_files.py``), then each reader that
reads the format decodes it ``--repeats`` times; the figure is the median in millions of events per second.
Readers: ``faery`` (0.7), ``expelliarmus`` (1.1; tonic's dependency), ``aedat`` (the ``.aedat4`` reader
before faery), ``evlib`` (0.13, where importable: it pulls polars, pyarrow and pandera, so it is not a
dependency; ``PYTHONPATH`` can point at a separate install), and ``project``: the project's own reader for the
suffix (:func:`neuromoco.train.data.readers.read_raw`, which is the library above it or the hand-written
decoder where no chosen library reads the format). Every reader's events are checked equal to the source.
Writes ``benchmarks/results/event_decode.json``.

    python benchmarks/event_decode.py [--events 2000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import RESULTS, ROOT, machine_info, now, write_json

sys.path.insert(0, str(ROOT / "tests"))
from camera_files import (  # noqa: E402
    write_aedat2_dvs128,
    write_aedat31,
    write_dat,
    write_evt2,
    write_evt3,
    write_evt21,
)

SIZE = (640, 480)


def source_events(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    ev["t"] = np.sort(rng.integers(0, n // 2, n))  # about 2 events per microsecond
    ev["x"], ev["y"], ev["p"] = rng.integers(0, size[0], n), rng.integers(0, size[1], n), rng.integers(0, 2, n)
    return ev


def write_aedat4(path: Path, ev: np.ndarray) -> None:
    import faery

    out = np.zeros(len(ev), dtype=faery.EVENTS_DTYPE)
    out["t"], out["x"], out["y"], out["on"] = ev["t"], ev["x"], ev["y"], ev["p"].astype(bool)
    faery.events_stream_from_array(out, dimensions=SIZE).to_file(str(path), zero_t0=False)


def _faery(path: Path) -> dict[str, np.ndarray]:
    import faery

    ev = np.concatenate(list(faery.events_stream_from_file(path)))
    return {"x": ev["x"], "y": ev["y"], "t": ev["t"], "p": ev["on"]}


def _expelliarmus(encoding: str) -> Callable[[Path], dict[str, np.ndarray]]:
    def read(path: Path) -> dict[str, np.ndarray]:
        from expelliarmus import Wizard

        ev = Wizard(encoding=encoding).read(str(path))
        return {f: ev[f] for f in ("x", "y", "t", "p")}
    return read


def _aedat(path: Path) -> dict[str, np.ndarray]:
    import aedat

    dec = aedat.Decoder(str(path))
    ev = np.concatenate([pk["events"] for pk in dec if "events" in pk])
    return {"x": ev["x"], "y": ev["y"], "t": ev["t"], "p": ev["on"]}


def _evlib(path: Path) -> dict[str, np.ndarray]:
    import evlib

    df = evlib.load_events(str(path)).collect()
    t = df["t"]
    t_us = (t.dt.total_microseconds() if hasattr(t, "dt") and str(t.dtype).startswith("Duration") else t).to_numpy()
    return {"x": df["x"].to_numpy(), "y": df["y"].to_numpy(), "t": t_us, "p": (df["polarity"].to_numpy() > 0)}


def _project(path: Path) -> dict[str, np.ndarray]:
    from neuromoco.train.data.readers import read_events

    ev = read_events(path)
    return {f: ev[f] for f in ("x", "y", "t", "p")}


FORMATS: dict[str, tuple[str, Callable[[Path, np.ndarray], None], dict[str, Callable[[Path], Any]]]] = {
    "evt2": (".raw", lambda p, e: write_evt2(p, e, SIZE),
             {"faery": _faery, "expelliarmus": _expelliarmus("evt2"), "evlib": _evlib, "project": _project}),
    "evt2.1": (".raw", lambda p, e: write_evt21(p, e, SIZE), {"evlib": _evlib, "project": _project}),
    "evt3": (".raw", lambda p, e: write_evt3(p, e, SIZE),
             {"faery": _faery, "expelliarmus": _expelliarmus("evt3"), "evlib": _evlib, "project": _project}),
    "dat": (".dat", lambda p, e: write_dat(p, e, SIZE),
            {"faery": _faery, "expelliarmus": _expelliarmus("dat"), "project": _project}),
    "aedat4": (".aedat4", write_aedat4, {"faery": _faery, "aedat": _aedat, "evlib": _evlib, "project": _project}),
    "aedat3.1": (".aedat", lambda p, e: write_aedat31(p, e, per_packet=4096), {"project": _project}),
    "aedat2 (DVS128)": (".aedat", write_aedat2_dvs128, {"project": _project}),
}


def _same(got: dict[str, np.ndarray], ev: np.ndarray) -> bool:
    return all(np.array_equal(np.asarray(got[f]).astype(np.int64), ev[f]) for f in ("x", "y", "t", "p"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000, help="events per recording")
    ap.add_argument("--repeats", type=int, default=3, help="decodes per reader (median)")
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (suffix, write, readers) in FORMATS.items():
            size = (128, 128) if name.startswith("aedat2") else SIZE
            ev = source_events(args.events, size)
            path = Path(tmp) / f"{name.split()[0]}{suffix}"
            write(path, ev)
            row: dict[str, Any] = {"file_mb": round(path.stat().st_size / 1e6, 2)}
            for reader, fn in readers.items():
                try:
                    got = fn(path)
                except ImportError as err:
                    row[reader] = f"not importable: {err}"
                    continue
                except Exception as err:  # noqa: BLE001 - a library that cannot read it: recorded, not fatal
                    row[reader] = f"failed: {type(err).__name__}: {str(err)[:120]}"
                    continue
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    fn(path)
                    times.append(time.perf_counter() - t0)
                row[reader] = {"mev_per_s": round(args.events / statistics.median(times) / 1e6, 2),
                               "identical": _same(got, ev)}
            results[name] = row
            print(name, row, flush=True)
    out = write_json(RESULTS / "event_decode.json", {"when": now(), "machine": machine_info(),
                                                     "events": args.events, "repeats": args.repeats,
                                                     "formats": results})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
