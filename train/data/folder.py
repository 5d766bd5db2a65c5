"""A folder of one's own recordings as a dataset: ``--dataset PATH``.

Layout: ``PATH/<class>/<files>`` (classes: the sub-folder names, sorted; the seeded 9:1 per-class split of
:mod:`neuromoco.train.data.splits`), or ``PATH/train/<class>/...`` and ``PATH/test/<class>/...`` (that split
as given). Files of any format in :data:`~neuromoco.train.data.readers.READERS` may be mixed; other files
are ignored. The sensor size is ``sensor_size`` when given, else what the files say (aedat4 stream info, an
h5 attribute), else ``(max x + 1, max y + 1, 2)`` over all files (every file is read once to find it): an
*inferred* size, said in one line on stderr and recorded as such (``sensor_size_inferred`` in the dataset recipe
and so in the model card), since a later recording reaching further is refused with a message saying the size
was inferred and that ``--sensor-size W,H,P`` sets it. Timestamps are in ``time_unit`` (default
microseconds) where the format does not fix them.

Every problem is one :class:`UserError` naming the folder or file: a missing folder, no event files, a class
folder without files, a test class absent from train, mixed sensor sizes, and (on reading) the checks of
:func:`~neuromoco.train.data.readers.to_events`.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from neuromoco.errors import UserError
from neuromoco.train.data.base import EventDataset
from neuromoco.train.data.readers import READERS, TIME_UNITS, is_event_file, read_events, read_raw, to_events
from neuromoco.train.data.registry import DatasetSpec
from neuromoco.train.data.splits import SPLIT_SEED, stratified_split

SPLIT_FOLDERS = ("train", "test")
#: the flag (and its syntax) that sets a recordings folder's sensor, as messages name it
SENSOR_FLAG = "--sensor-size W,H,P"


@dataclass(frozen=True)
class FolderRecipe:
    """What a folder dataset is: its spec (sensor, classes), its files per split, and how to read them."""

    spec: DatasetSpec
    files: dict[str, tuple[tuple[Path, int], ...]]  # "train"/"test"/"all" -> (file, label)
    time_unit: str
    fingerprint: str
    sensor_inferred: bool = False  # the sensor is (max x + 1, max y + 1, 2) of the events, not a known size

    def outside_hint(self) -> str:
        """What a message about events outside the sensor adds: where the size came from, how to set it."""
        if self.sensor_inferred:
            return (f"; that size was inferred from the recordings first read (max x/y + 1), not known: give the "
                    f"sensor's real size with {SENSOR_FLAG} (for a trained model: train again with it)")
        return f"; if the sensor is larger, give its size with {SENSOR_FLAG} (for a trained model: train again with it)"


def _class_folders(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_event_file(p))


def _listing(root: Path, classes: list[str] | None) -> tuple[list[str], list[tuple[Path, int]]]:
    folders = _class_folders(root)
    if not folders:
        raise UserError(f"{root}: no class sub-folders (expected {root}/<class>/<event files>, readable: "
                        f"{', '.join(READERS)})")
    names = [d.name for d in folders] if classes is None else classes
    files: list[tuple[Path, int]] = []
    for d in folders:
        if d.name not in names:
            raise UserError(f"{d}: class {d.name!r} is not among the training classes {names}")
        found = _files(d)
        if not found:
            raise UserError(f"{d}: class folder has no event files ({', '.join(READERS)})")
        files += [(p, names.index(d.name)) for p in found]
    return names, files


def _fingerprint(root: Path, files: list[tuple[Path, int]], extra: str) -> str:
    h = hashlib.sha1(f"{root}|{extra}".encode())
    for path, label in files:
        st = path.stat()
        h.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _scan_sensor(files: list[Path], time_unit: str) -> tuple[tuple[int, int, int], tuple[int, int] | None]:
    """The sensor the files say (all must agree) or (max x + 1, max y + 1, 2); every file is checked.
    The second value: ``(max x, max y)`` when the sensor is inferred from them, else None."""
    declared: dict[tuple[int, int, int], Path] = {}
    max_x = max_y = -1
    for path in files:
        raw = read_raw(path)
        ev = to_events(raw, path, time_unit, raw.sensor)
        if raw.sensor is not None:
            declared.setdefault(raw.sensor, path)
            if len(declared) > 1:
                (a, pa), (b, pb) = list(declared.items())[:2]
                raise UserError(f"mixed sensor sizes: {pa} is {a[0]}x{a[1]}x{a[2]} but {pb} is {b[0]}x{b[1]}x{b[2]}; "
                                "give --sensor-size W,H,P to use one for all")
        if len(ev):
            max_x, max_y = max(max_x, int(ev["x"].max())), max(max_y, int(ev["y"].max()))
    if declared:
        sensor = next(iter(declared))
        if max_x >= sensor[0] or max_y >= sensor[1]:
            raise UserError(f"coordinates up to x={max_x}, y={max_y} lie outside the {sensor[0]}x{sensor[1]} "
                            f"sensor that {declared[sensor]} declares")
        return sensor, None
    if max_x < 0:
        raise UserError(f"no events in any of the {len(files)} files (first: {files[0]})")
    return (max_x + 1, max_y + 1, 2), (max_x, max_y)


def inferred_message(root: Path, sensor: tuple[int, int, int], max_xy: tuple[int, int]) -> str:
    """The one line said when a folder's sensor size is inferred from its events."""
    w, h, p = sensor
    return (f"{root}: sensor size inferred as {w}x{h}x{p} from the events (max x {max_xy[0]} + 1, max y "
            f"{max_xy[1]} + 1; no file states it) and recorded as inferred; if the sensor is larger, give its "
            f"size with {SENSOR_FLAG}")


_RECIPES: dict[tuple, FolderRecipe] = {}


def open_folder(name: str, sensor_size: tuple[int, int, int] | list[int] | None = None,
                time_unit: str | None = None, sensor_inferred: bool = False) -> FolderRecipe:
    """The recipe of the folder ``name`` (memoised per process on the folder's file list, sizes and times).

    ``sensor_inferred``: the ``sensor_size`` given was itself inferred (a model recorded it so), which the
    recipe keeps and an out-of-sensor message says."""
    root = Path(name).expanduser().resolve()
    unit = time_unit or "us"
    if unit not in TIME_UNITS:
        raise UserError(f"--time-unit must be one of {', '.join(TIME_UNITS)}, got {unit!r}")
    if not root.is_dir():
        what = (f"{root} is a file, not a folder" if root.is_file() else
                f"dataset {'file' if root.suffix else 'folder'} {root} does not exist")
        raise UserError(f"{what} (--dataset takes a dataset name, tonic:ClassName, or a folder with one sub-folder "
                        "per class; deploy commands also take a frames .npz file)")
    subs = {d.name.lower(): d for d in _class_folders(root)}
    if all(s in subs for s in SPLIT_FOLDERS):
        classes, train = _listing(subs["train"], None)
        _, test = _listing(subs["test"], classes)
        files = {"train": tuple(train), "test": tuple(test)}
        everything = train + test
    else:
        classes, everything = _listing(root, None)
        files = {"all": tuple(everything)}
    sensor = tuple(int(v) for v in sensor_size) if sensor_size else None
    if sensor is not None and (len(sensor) != 3 or min(sensor) < 1):
        raise UserError(f"--sensor-size must be three positive integers W,H,P, got {list(sensor)}")
    fp = _fingerprint(root, everything, f"{sensor}|{unit}")
    inferred = bool(sensor_inferred) and sensor is not None
    key = (str(root), fp, inferred)
    if key in _RECIPES:
        return _RECIPES[key]
    if sensor is None:
        sensor, max_xy = _scan_sensor([p for p, _ in everything], unit)
        if max_xy is not None:
            inferred = True
            print(inferred_message(root, cast("tuple[int, int, int]", sensor), max_xy), file=sys.stderr)
    layout = "train/ and test/ sub-folders as given" if "train" in files else "a seeded 9:1 split per class"
    spec = DatasetSpec(  # sensor: three ints (checked above, or _scan_sensor's)
        name=str(root), title=f"own recordings in {root}", sensor_size=cast("tuple[int, int, int]", sensor),
        num_classes=len(classes), class_names=tuple(classes), official_split="train" in files,
        files=f"{root}/<class>/<event files> ({layout})", hflip_preserves_label=False)
    recipe = FolderRecipe(spec, files, unit, fp, inferred)
    _RECIPES[key] = recipe
    return recipe


def folder_spec(name: str, sensor_size=None, time_unit: str | None = None, sensor_inferred: bool = False,
                **_: object) -> DatasetSpec:
    return open_folder(name, sensor_size, time_unit, sensor_inferred).spec


class FolderEvents(EventDataset):
    """One split of a folder dataset: ``(events, label)``, events checked on every read."""

    def __init__(self, name: str, split: str = "train", sensor_size=None, time_unit: str | None = None,
                 sensor_inferred: bool = False) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        recipe = open_folder(name, sensor_size, time_unit, sensor_inferred)
        self.recipe, self.spec, self.split = recipe, recipe.spec, split
        if "all" in recipe.files:
            files = list(recipe.files["all"])
            if split != "all":
                keep = stratified_split(np.array([lab for _, lab in files], dtype=np.int64), seed=SPLIT_SEED)[split]
                files = [files[i] for i in keep]
        else:
            files = list(recipe.files["train"] + recipe.files["test"]) if split == "all" else list(recipe.files[split])
        if not files:
            raise UserError(f"{recipe.spec.name}: the {split} split has no files")
        self.paths = [p for p, _ in files]
        self.labels = np.array([lab for _, lab in files], dtype=np.int64)
        w, h, p = recipe.spec.sensor_size
        self.version = f"folder{recipe.fingerprint}-{w}x{h}x{p}-{recipe.time_unit}-split{SPLIT_SEED}-n{len(files)}"

    def events(self, index: int) -> np.ndarray:
        return read_events(self.paths[index], self.recipe.time_unit, self.spec.sensor_size,
                           self.recipe.outside_hint())
