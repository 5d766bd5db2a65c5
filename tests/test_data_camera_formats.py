"""Cameras' own formats: each file written independently of the readers (faery's writers, or bytes per the
format's specification) must give back exactly the events it was made from, with the sensor from its header."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from camera_files import (
    write_aedat2_dvs128,
    write_aedat31,
    write_dat,
    write_es,
    write_evt2,
    write_evt3,
    write_evt21,
    write_npz,
)

from neuromoco.errors import UserError
from neuromoco.train.data.readers import read_events, read_raw


def _events(n: int = 400, size: tuple[int, int] = (34, 34), t0: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    ev["t"] = t0 + np.sort(rng.integers(0, 300_000, n))
    ev["x"], ev["y"] = rng.integers(0, size[0], n), rng.integers(0, size[1], n)
    ev["p"] = rng.integers(0, 2, n)
    ev["x"][:2], ev["y"][:2] = [0, size[0] - 1], [size[1] - 1, 0]  # the sensor's corners
    return ev


def _same(got: np.ndarray, ev: np.ndarray) -> None:
    for f in ("x", "y", "t", "p"):
        assert np.array_equal(got[f], ev[f]), f


@pytest.mark.parametrize("suffix,write", [(".raw", write_evt2), (".raw", write_evt3), (".raw", write_evt21),
                                          (".dat", write_dat), (".es", write_es)])
def test_prophesee_and_event_stream_files_give_back_their_events_and_sensor(tmp_path, suffix, write):
    ev = _events(size=(40, 30))
    path = tmp_path / f"rec{suffix}"
    write(path, ev, (40, 30))
    assert read_raw(path).sensor == (40, 30, 2)
    _same(read_events(path), ev)


def test_evt21_groups_of_32_pixels_and_a_hand_computed_word(tmp_path):
    """One EVT 2.1 word with mask 0b101 at x=64, y=7, t=(3 << 6) | 5: events at x 64 and 66, both ON."""
    header = b"% evt 2.1\n% format EVT21;height=100;width=100\n% end\n"
    words = np.array([(0x8 << 60) | (3 << 32), (0x1 << 60) | (5 << 54) | (64 << 43) | (7 << 32) | 0b101],
                     dtype="<u8")
    (tmp_path / "w.raw").write_bytes(header + words.tobytes())
    ev = read_events(tmp_path / "w.raw")
    assert ev["x"].tolist() == [64, 66] and ev["y"].tolist() == [7, 7]
    assert ev["t"].tolist() == [197, 197] and ev["p"].tolist() == [1, 1]


def test_a_dat_without_size_in_its_header_has_no_sensor(tmp_path):
    ev = _events()
    write_dat(tmp_path / "a.dat", ev)
    data = (tmp_path / "a.dat").read_bytes()
    (tmp_path / "b.dat").write_bytes(data.replace(b"% Width 34\n", b"").replace(b"% Height 34\n", b""))
    assert read_raw(tmp_path / "b.dat").sensor is None
    _same(read_events(tmp_path / "b.dat"), ev)


def test_jaer_aedat2_dvs128_addresses(tmp_path):
    """x mirrored (127 - address bits 1-7), OFF when bit 0 is set, the sync event dropped; 128x128."""
    ev = _events(size=(128, 128))
    write_aedat2_dvs128(tmp_path / "mnist_dvs.aedat", ev)
    assert read_raw(tmp_path / "mnist_dvs.aedat").sensor == (128, 128, 2)
    _same(read_events(tmp_path / "mnist_dvs.aedat"), ev)


def test_jaer_aedat2_from_another_chip_is_refused_by_name(tmp_path):
    write_aedat2_dvs128(tmp_path / "a.aedat", _events())
    data = (tmp_path / "a.aedat").read_bytes().replace(b"retina.DVS128", b"davis.Davis240C")
    (tmp_path / "b.aedat").write_bytes(data)
    with pytest.raises(UserError, match="chip 'ch.unizh.ini.jaer.chip.davis.Davis240C'"):
        read_raw(tmp_path / "b.aedat")


def test_aedat31_packets_overflow_and_invalid_events(tmp_path):
    """Polarity packets between a special packet, invalid events dropped, timestamps past 2**31 rebuilt from the
    packets' overflow; the DVS128 source gives the sensor."""
    early = _events(n=49, size=(128, 128), seed=1)
    late = _events(n=49, size=(128, 128), t0=2 ** 31 + 10, seed=2)
    ev = np.concatenate([early, late])
    write_aedat31(tmp_path / "gesture.aedat", ev, per_packet=7)  # 49 = 7 * 7: no packet straddles 2**31
    raw = read_raw(tmp_path / "gesture.aedat")
    assert raw.sensor == (128, 128, 2)
    _same(read_events(tmp_path / "gesture.aedat"), ev)
    write_aedat31(tmp_path / "other.aedat", early, source="prototype")
    assert read_raw(tmp_path / "other.aedat").sensor is None


def test_damaged_aedat31_is_one_line(tmp_path):
    write_aedat31(tmp_path / "a.aedat", _events())
    data = (tmp_path / "a.aedat").read_bytes()
    (tmp_path / "cut.aedat").write_bytes(data[:-5])
    with pytest.raises(UserError, match="cut off"):
        read_raw(tmp_path / "cut.aedat")
    (tmp_path / "none.aedat").write_bytes(b"\x00\x01binary")
    with pytest.raises(UserError, match="#!AER-DAT"):
        read_raw(tmp_path / "none.aedat")


def test_npz_arrays_or_a_structured_events_array(tmp_path):
    ev = _events()
    write_npz(tmp_path / "a.npz", ev)
    _same(read_events(tmp_path / "a.npz"), ev)
    np.savez(tmp_path / "b.npz", events=ev)
    _same(read_events(tmp_path / "b.npz"), ev)
    np.savez(tmp_path / "c.npz", frames=np.zeros(3))
    with pytest.raises(UserError, match="needs a structured array 'events' or arrays x, y, t, p"):
        read_raw(tmp_path / "c.npz")


def test_without_faery_the_message_says_how_to_install_it(tmp_path, monkeypatch):
    write_evt3(tmp_path / "a.raw", _events())
    monkeypatch.setitem(sys.modules, "faery", None)
    with pytest.raises(UserError, match=r"pip install faery"):
        read_raw(Path(tmp_path / "a.raw"))


def test_prophesee_hdf5_layout(tmp_path):
    """``/CD/events`` (x, y, p, t) with a ``geometry`` attribute, as Metavision lays it out (uncompressed here:
    its ECF codec needs Prophesee's plugin, which the message names)."""
    import h5py

    ev = _events(size=(40, 30))
    table = np.zeros(len(ev), dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])
    for f in ("x", "y", "p", "t"):
        table[f] = ev[f]
    with h5py.File(tmp_path / "rec.hdf5", "w") as f:
        f.attrs["geometry"] = "40x30"
        f.create_group("CD").create_dataset("events", data=table)
    assert read_raw(tmp_path / "rec.hdf5").sensor == (40, 30, 2)
    _same(read_events(tmp_path / "rec.hdf5"), ev)


@pytest.mark.parametrize("variant", ["evt2", "evt2.1", "aedat2", "prophesee-h5"])
def test_format_variants_give_the_npy_frames_from_an_own_folder(tmp_path, variant):
    """The variants the own-folder tests' one writer per suffix does not cover, framed from a folder: the same
    frames as the same events saved as ``.npy`` (with the sensor the variant's header states)."""
    import h5py
    from own_recordings import write_npy

    from neuromoco.train.data import get_dataset

    size = (128, 128) if variant == "aedat2" else (34, 34)

    def write(path: Path, ev: np.ndarray) -> None:
        if variant == "evt2":
            write_evt2(path.with_suffix(".raw"), ev, size)
        elif variant == "evt2.1":
            write_evt21(path.with_suffix(".raw"), ev, size)
        elif variant == "aedat2":
            write_aedat2_dvs128(path.with_suffix(".aedat"), ev)
        else:
            table = np.zeros(len(ev), dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])
            for f in ("x", "y", "p", "t"):
                table[f] = ev[f]
            with h5py.File(path.with_suffix(".hdf5"), "w") as f:
                f.attrs["geometry"] = f"{size[0]}x{size[1]}"
                f.create_group("CD").create_dataset("events", data=table)

    frames = {}
    for kind, writer in (("npy", lambda p, e: write_npy(p.with_suffix(".npy"), e)), (variant, write)):
        root = tmp_path / kind
        for label in range(2):
            (root / f"c{label}").mkdir(parents=True)
            for i in range(2):
                writer(root / f"c{label}" / f"{i}", _events(n=300, size=size, seed=10 * label + i))
        ds = get_dataset(str(root), "all", tmp_path / "data", time_steps=3, cache=False,
                         sensor_size=[*size, 2] if kind == "npy" else None)
        frames[kind] = np.stack([ds.frames(i) for i in range(len(ds))])
    assert frames["npy"].shape[-2:] == size[::-1]
    assert np.array_equal(frames[variant], frames["npy"])
